package frames

import (
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/podwire/podwire/agent/stats"
)

// Metric names: the value field's name and the "metric" label of every
// metrics series, so series of one group stay apart for alerting.
const (
	MetricRequests = "requestsPerSecond"
	MetricFailed   = "failedPerSecond"
	MetricP50      = "latencyP50"
	MetricP95      = "latencyP95"
	MetricP99      = "latencyP99"
)

// MaxSteps bounds the points of one series: a finer step is widened to
// fit, as the agents do.
const MaxSteps = 11000

// metric is one number per step of a series.
type metric struct {
	name, display, unit string
	// rate, when set, is the metric as a rate over secs seconds;
	// otherwise quantile q of the step's latency.
	rate func(requests, failed uint64, secs float64) float64
	q    float64
}

var metrics = []metric{
	{name: MetricRequests, display: "requests/s", unit: "reqps",
		rate: func(r, _ uint64, s float64) float64 { return float64(r) / s }},
	{name: MetricFailed, display: "failed/s", unit: "reqps",
		rate: func(_, f uint64, s float64) float64 { return float64(f) / s }},
	{name: MetricP50, display: "p50 latency", unit: "ms", q: 0.5},
	{name: MetricP95, display: "p95 latency", unit: "ms", q: 0.95},
	{name: MetricP99, display: "p99 latency", unit: "ms", q: 0.99},
}

// seriesLabels returns a series' labels and display name for a grouping:
// Kubernetes groups as {<groupBy>: name, namespace: ns}, other groups
// (external addresses, processes, nodes, protocols, ...) as {<groupBy>: id}.
func seriesLabels(s *Series, groupBy string) (data.Labels, string) {
	switch groupBy {
	case "none":
		return data.Labels{}, ""
	case "namespace":
		v := first(s.Namespace, first(s.Name, s.Group))
		return data.Labels{"namespace": v}, v
	case "", "workload", "service", "pod":
		key := first(groupBy, "workload")
		if s.Namespace != "" {
			name := s.Name
			if name == "" {
				_, name = splitID(s.Group)
			}
			return data.Labels{key: name, "namespace": s.Namespace}, s.Namespace + "/" + name
		}
		v := first(s.Group, s.Name)
		return data.Labels{key: v}, v
	}
	v := first(s.Group, s.Name)
	return data.Labels{groupBy: v}, v
}

// Metrics returns time series frames for the range with the given step, in
// Grafana's timeseries-multi format: per group and metric one frame with a
// time field and a number field labelled with the group and the metric.
// Every step in [from, to) has a point: rates are 0 where there was no
// traffic, latencies null. Rates are per second over the step (the last
// step may be shorter); percentiles come from the step's merged histogram.
// A step <= 0 is (to-from)/100; more than MaxSteps steps widen it.
func Metrics(s []*Series, groupBy string, step time.Duration, from, to time.Time) data.Frames {
	span := to.Sub(from)
	if span <= 0 {
		span = 0
	}
	if step <= 0 {
		step = max(span/100, time.Millisecond)
	}
	n := int((span + step - 1) / step)
	if n > MaxSteps {
		step = (span + MaxSteps - 1) / MaxSteps
		n = int((span + step - 1) / step)
	}
	times := make([]time.Time, n)
	secs := make([]float64, n)
	for k := range times {
		times[k] = from.Add(time.Duration(k) * step)
		secs[k] = min(step, to.Sub(times[k])).Seconds()
	}

	out := make(data.Frames, 0, len(s)*len(metrics))
	for _, sr := range s {
		if sr == nil {
			continue
		}
		labels, group := seriesLabels(sr, groupBy)
		reqs, failed := make([]uint64, n), make([]uint64, n)
		// hists[k] is step k's histogram: the point's own when one point
		// falls in the step (the usual case), a merged copy otherwise.
		hists := make([]*stats.Sparse, n)
		merged := map[int]*stats.Sparse{}
		for i := range sr.Points {
			p := &sr.Points[i]
			if p.Time.Before(from) || !p.Time.Before(to) {
				continue
			}
			k := int(p.Time.Sub(from) / step)
			reqs[k] += p.Requests
			failed[k] += p.Failed
			switch {
			case hists[k] == nil:
				hists[k] = &p.Latency
			case merged[k] == nil:
				h := &stats.Sparse{}
				h.Merge(hists[k])
				h.Merge(&p.Latency)
				merged[k], hists[k] = h, h
			default:
				merged[k].Merge(&p.Latency)
			}
		}
		for _, m := range metrics {
			l := labels.Copy()
			l["metric"] = m.name
			display := m.display
			if group != "" {
				display = group + " " + m.display
			}
			var values *data.Field
			if m.rate != nil {
				v := make([]float64, n)
				for k := range v {
					v[k] = m.rate(reqs[k], failed[k], secs[k])
				}
				values = data.NewField(m.name, l, v)
			} else {
				v := make([]*float64, n)
				for k, h := range hists {
					if h != nil {
						v[k] = quantile(h, m.q)
					}
				}
				values = data.NewField(m.name, l, v)
			}
			values.SetConfig(cfg(display, m.unit))
			ts := make([]time.Time, n)
			copy(ts, times)
			f := data.NewFrame(display, data.NewField("time", nil, ts), values)
			f.Meta = timeSeriesMeta()
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		// No traffic at all: one typed frame without fields, as the data
		// plane contract wants for an empty time series response.
		f := data.NewFrame("no traffic")
		f.Meta = timeSeriesMeta()
		out = append(out, f)
	}
	return out
}

func timeSeriesMeta() *data.FrameMeta {
	return &data.FrameMeta{
		Type:        data.FrameTypeTimeSeriesMulti,
		TypeVersion: data.FrameTypeVersion{0, 1},
	}
}
