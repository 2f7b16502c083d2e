package frames

import (
	"math"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/podwire/podwire/agent/stats"
)

// frameFor finds the frame of one metric whose label key has value v.
func frameFor(t *testing.T, fs data.Frames, metric, key, v string) *data.Frame {
	t.Helper()
	for _, f := range fs {
		if len(f.Fields) == 2 && f.Fields[1].Name == metric && f.Fields[1].Labels[key] == v {
			return f
		}
	}
	t.Fatalf("no %s frame with %s=%s", metric, key, v)
	return nil
}

func TestMetricsStepFilling(t *testing.T) {
	ss := MergeMetrics(sampleMetrics())
	fs := Metrics(ss, "workload", time.Minute, t0, t0.Add(10*time.Minute))
	if len(fs) != 2*5 {
		t.Fatalf("%d frames, want 10 (2 groups x 5 metrics)", len(fs))
	}
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Meta == nil || f.Meta.Type != data.FrameTypeTimeSeriesMulti || f.Meta.TypeVersion != (data.FrameTypeVersion{0, 1}) {
			t.Errorf("frame %q meta %+v", f.Name, f.Meta)
		}
		if len(f.Fields) != 2 || f.Fields[0].Type() != data.FieldTypeTime || !f.Fields[1].Type().Numeric() {
			t.Fatalf("frame %q is not one time and one number field", f.Name)
		}
		if f.Rows() != 10 {
			t.Errorf("frame %q has %d rows, want one per step (10)", f.Name, f.Rows())
		}
		for k := range f.Rows() {
			if got := f.Fields[0].At(k).(time.Time); !got.Equal(t0.Add(time.Duration(k) * time.Minute)) {
				t.Errorf("frame %q row %d at %v", f.Name, k, got)
			}
		}
		// Alerting needs every series told apart by its labels.
		key := f.Fields[1].Labels.String()
		if seen[key] {
			t.Errorf("two series with labels %s", key)
		}
		seen[key] = true
	}

	req := frameFor(t, fs, MetricRequests, "workload", "cart")
	if l := req.Fields[1].Labels; l["namespace"] != "shop" || l["metric"] != MetricRequests {
		t.Errorf("labels %v", l)
	}
	if u := req.Fields[1].Config.Unit; u != "reqps" {
		t.Errorf("unit %q", u)
	}
	// Minute 1: 60 requests; minute 2: 120 + 60 from two agents; minute
	// 7: 30; the rest 0.
	want := []float64{0, 1, 3, 0, 0, 0, 0, 0.5, 0, 0}
	for k, w := range want {
		if got := req.Fields[1].At(k).(float64); got != w {
			t.Errorf("requests/s at step %d = %v, want %v", k, got, w)
		}
	}
	failed := frameFor(t, fs, MetricFailed, "workload", "cart")
	if got := failed.Fields[1].At(2).(float64); got != 1 {
		t.Errorf("failed/s at step 2 = %v, want 1", got)
	}

	p95 := frameFor(t, fs, MetricP95, "workload", "cart")
	if u := p95.Fields[1].Config.Unit; u != "ms" {
		t.Errorf("unit %q", u)
	}
	var h stats.Histogram
	for _, v := range append(spread(120, 5, 50), spread(60, 200, 400)...) {
		h.Add(v)
	}
	for k := range 10 {
		v := p95.Fields[1].At(k).(*float64)
		switch k {
		case 1, 2, 7:
			if v == nil {
				t.Errorf("p95 at step %d is null", k)
			}
		default:
			if v != nil {
				t.Errorf("p95 at step %d = %v, want null (no traffic)", k, *v)
			}
		}
	}
	if got := *p95.Fields[1].At(2).(*float64); math.Abs(got-h.Quantile(0.95)) > 0.0005 {
		t.Errorf("p95 at step 2 = %v, want the merged histogram's %v", got, h.Quantile(0.95))
	}

	ext := frameFor(t, fs, MetricRequests, "workload", "198.51.100.7")
	if _, ok := ext.Fields[1].Labels["namespace"]; ok {
		t.Errorf("external series has a namespace label: %v", ext.Fields[1].Labels)
	}
}

func TestMetricsStepEdges(t *testing.T) {
	s := []*Series{{Group: "shop/cart", Name: "cart", Namespace: "shop", Points: []Point{
		{Time: t0.Add(-time.Minute), Requests: 99},                  // before the range: dropped
		{Time: t0.Add(90 * time.Second), Requests: 30},              // not on a step: counts in step 1
		{Time: t0.Add(100 * time.Second), Requests: 30},             // same step
		{Time: t0.Add(150 * time.Second), Requests: 15, Failed: 15}, // at the range's end: outside [from, to)
		{Time: t0.Add(140 * time.Second), Requests: 15, Failed: 15}, // the short last step
	}}}
	s[0].Points[1].Latency.MergeProto(hist(10))
	s[0].Points[2].Latency.MergeProto(hist(20))
	fs := Metrics(s, "workload", time.Minute, t0, t0.Add(150*time.Second))
	req := frameFor(t, fs, MetricRequests, "workload", "cart")
	if req.Rows() != 3 {
		t.Fatalf("%d rows, want 3 (the last step is 30 s)", req.Rows())
	}
	for k, w := range []float64{0, 1, 0.5} {
		if got := req.Fields[1].At(k).(float64); got != w {
			t.Errorf("step %d: %v req/s, want %v", k, got, w)
		}
	}
	// Two points in one step: their histograms merge.
	p99 := frameFor(t, fs, MetricP99, "workload", "cart")
	if v := p99.Fields[1].At(1).(*float64); v == nil || *v < 19 {
		t.Errorf("p99 of two points = %v, want the larger latency's bucket", v)
	}
	// The caller's points are not changed by the merge.
	if s[0].Points[1].Latency.Count != 1 {
		t.Error("Metrics changed its input histogram")
	}
}

func TestMetricsLimits(t *testing.T) {
	s := []*Series{{Group: "a", Name: "a"}}
	// A step finer than MaxSteps allows is widened.
	fs := Metrics(s, "node", time.Millisecond, t0, t0.Add(time.Hour))
	if n := fs[0].Rows(); n > MaxSteps || n < MaxSteps-1 {
		t.Errorf("%d rows for a 1 ms step over an hour, want about %d", n, MaxSteps)
	}
	// No step: 100 steps.
	if n := Metrics(s, "node", 0, t0, t0.Add(time.Hour))[0].Rows(); n != 100 {
		t.Errorf("%d rows for step 0, want 100", n)
	}
	// No series: one typed empty frame.
	fs = Metrics(nil, "workload", time.Minute, t0, t0.Add(time.Hour))
	if len(fs) != 1 || fs[0].Meta.Type != data.FrameTypeTimeSeriesMulti || len(fs[0].Fields) != 0 {
		t.Errorf("empty metrics: %d frames", len(fs))
	}
	// A reversed range has no steps.
	if n := Metrics(s, "node", time.Minute, t0, t0.Add(-time.Hour))[0].Rows(); n != 0 {
		t.Errorf("%d rows for a reversed range", n)
	}
}

func TestMetricsLabels(t *testing.T) {
	for _, tc := range []struct {
		groupBy string
		s       Series
		want    data.Labels
	}{
		{"workload", Series{Group: "shop/cart", Name: "cart", Namespace: "shop"}, data.Labels{"workload": "cart", "namespace": "shop"}},
		{"", Series{Group: "shop/cart", Name: "cart", Namespace: "shop"}, data.Labels{"workload": "cart", "namespace": "shop"}},
		{"service", Series{Group: "shop/cart", Namespace: "shop"}, data.Labels{"service": "cart", "namespace": "shop"}},
		{"pod", Series{Group: "process:curl", Name: "curl"}, data.Labels{"pod": "process:curl"}},
		{"namespace", Series{Group: "shop", Name: "shop", Namespace: "shop"}, data.Labels{"namespace": "shop"}},
		{"protocol", Series{Group: "grpc", Name: "grpc"}, data.Labels{"protocol": "grpc"}},
		{"status", Series{Group: "503", Name: "503"}, data.Labels{"status": "503"}},
		{"none", Series{}, data.Labels{}},
	} {
		t.Run(tc.groupBy, func(t *testing.T) {
			s := tc.s
			s.Points = []Point{{Time: t0, Requests: 1}}
			fs := Metrics([]*Series{&s}, tc.groupBy, time.Minute, t0, t0.Add(time.Minute))
			got := fs[0].Fields[1].Labels.Copy()
			if got["metric"] != MetricRequests {
				t.Errorf("metric label %q", got["metric"])
			}
			delete(got, "metric")
			if !got.Equals(tc.want) {
				t.Errorf("labels %v, want %v", got, tc.want)
			}
		})
	}
}
