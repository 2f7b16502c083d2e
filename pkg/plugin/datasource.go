// Package plugin is the Podwire data source's backend: it fans every query
// out to the agents, merges their answers and turns them into frames
// (docs/plugin.md is the contract with the frontend).
package plugin

import (
	"context"
	"fmt"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/resource/httpadapter"

	"github.com/podwire/podwire/pkg/frames"
	"github.com/podwire/podwire/pkg/plugin/settings"
)

// Version is the plugin's version, sent to agents in the user agent; main
// sets it from the build.
var Version = "dev"

// Datasource is one configured Podwire data source. Grafana makes one per
// data source and replaces it (Dispose, then a new one) when its settings
// change.
type Datasource struct {
	uid   string
	links frames.Links
	// settingsErr is why the settings are unusable; every call answers
	// with it. s and pool are nil then.
	settingsErr error
	s           *settings.Settings
	pool        *pool

	resources backend.CallResourceHandler
	tails     *tailRegistry
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ backend.StreamHandler         = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource makes the instance for one data source. Bad settings do
// not fail here: the instance answers every query and health check with
// the settings error, so the user sees what to fix.
func NewDatasource(ctx context.Context, is backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	d := &Datasource{
		uid:   is.UID,
		links: frames.Links{DatasourceUID: is.UID, DatasourceName: is.Name},
		tails: newTailRegistry(),
	}
	d.resources = httpadapter.New(d.routes())
	s, err := settings.Parse(is.JSONData, is.DecryptedSecureJSONData)
	if err != nil {
		d.settingsErr = fmt.Errorf("data source settings: %w", err)
		backend.Logger.FromContext(ctx).Warn("unusable data source settings", "uid", is.UID, "err", err)
		return d, nil
	}
	p, err := newPool(s, dialOptions(s, "podwire-grafana/"+Version))
	if err != nil {
		d.settingsErr = fmt.Errorf("data source settings: %w", err)
		return d, nil
	}
	d.s, d.pool = s, p
	backend.Logger.FromContext(ctx).Debug("data source instance", "uid", is.UID, "agents", len(s.Agents), "dnsName", s.DNSName, "tls", s.TLS != nil, "token", s.Token != "")
	return d, nil
}

// Dispose closes the agent connections; the SDK calls it when the settings
// change or the data source is deleted.
func (d *Datasource) Dispose() {
	if d.pool != nil {
		d.pool.close()
	}
}

// agents returns the agents to ask, or why there are none.
func (d *Datasource) agents(ctx context.Context) ([]*agent, error, error) {
	if d.settingsErr != nil {
		return nil, nil, d.settingsErr
	}
	return d.pool.agents(ctx)
}
