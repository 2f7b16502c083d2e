// Package frames merges the answers of several agents and turns them into
// Grafana data frames that follow Grafana's contracts: a traffic table, a
// log-lines frame, Node Graph nodes and edges, timeseries-multi metrics and
// the frames of one entry. Everything here is a pure function of its input.
package frames

import (
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Links says where data links point: internal links to this data source,
// opened in Explore.
type Links struct{ DatasourceUID, DatasourceName string }

// Query types the links open; they match docs/plugin.md.
const (
	queryTraffic = "traffic"
	queryEntry   = "entry"
)

// link returns an internal data link that opens query in Explore.
func (l Links) link(title string, query map[string]any) data.DataLink {
	return data.DataLink{
		Title: title,
		Internal: &data.InternalDataLink{
			DatasourceUID:  l.DatasourceUID,
			DatasourceName: l.DatasourceName,
			Query:          query,
		},
	}
}

// entryLink opens the entry whose id is the clicked value.
func (l Links) entryLink() data.DataLink {
	return l.link("Open entry", map[string]any{"queryType": queryEntry, "entryId": "${__value.raw}"})
}

// trafficLink opens the traffic whose filter is in the field named field
// of the clicked row.
func (l Links) trafficLink(title, field string) data.DataLink {
	return l.link(title, map[string]any{"queryType": queryTraffic, "filter": "${__data.fields." + field + "}"})
}

// cfg is a field config with a display name and a unit.
func cfg(display, unit string) *data.FieldConfig {
	return &data.FieldConfig{DisplayNameFromDS: display, Unit: unit}
}

// fixedColor is a field config colour of one named colour.
func fixedColor(c string) map[string]any {
	return map[string]any{"mode": "fixed", "fixedColor": c}
}

// tsTime returns a timestamp as a time, the zero time for nil.
func tsTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// Values returns a frame with one string field "value" (for variable
// queries).
func Values(values []string) *data.Frame {
	v := make([]string, len(values))
	copy(v, values)
	return data.NewFrame("values", data.NewField("value", nil, v))
}
