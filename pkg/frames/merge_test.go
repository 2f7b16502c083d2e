package frames

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func ids(es []*podwirev1.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.GetId()
	}
	return out
}

func TestMergeEntries(t *testing.T) {
	s := time.Second
	a := []*podwirev1.Entry{at("a-9", 9*s), at("a-5", 5*s), at("a-1", 1*s)}
	b := []*podwirev1.Entry{at("b-8", 8*s), at("b-7", 7*s), at("b-6", 6*s), at("b-2", 2*s)}
	c := []*podwirev1.Entry{at("c-10", 10*s)}
	for _, tc := range []struct {
		name  string
		lists [][]*podwirev1.Entry
		limit int
		want  []string
	}{
		{"interleaved", [][]*podwirev1.Entry{a, b, c}, 0,
			[]string{"c-10", "a-9", "b-8", "b-7", "b-6", "a-5", "b-2", "a-1"}},
		{"limit applies after the merge", [][]*podwirev1.Entry{a, b, c}, 4,
			[]string{"c-10", "a-9", "b-8", "b-7"}},
		{"limit above total", [][]*podwirev1.Entry{a, c}, 100, []string{"c-10", "a-9", "a-5", "a-1"}},
		{"duplicate ids from two agents kept once", [][]*podwirev1.Entry{a, a, {at("a-5", 5*s)}}, 0,
			[]string{"a-9", "a-5", "a-1"}},
		{"duplicates do not use up the limit", [][]*podwirev1.Entry{a, a}, 3, []string{"a-9", "a-5", "a-1"}},
		{"nil lists and entries", [][]*podwirev1.Entry{nil, {nil, at("x", 3*s), nil}, {}}, 0, []string{"x"}},
		{"unsorted agent list is sorted", [][]*podwirev1.Entry{{at("u-1", 1*s), at("u-3", 3*s), at("u-2", 2*s)}, c}, 0,
			[]string{"c-10", "u-3", "u-2", "u-1"}},
		{"equal times order by id", [][]*podwirev1.Entry{{at("n1-5", 5*s)}, {at("n2-5", 5*s)}}, 0,
			[]string{"n2-5", "n1-5"}},
		{"sub-second order", [][]*podwirev1.Entry{{at("late", 1500*time.Millisecond)}, {at("early", 1200*time.Millisecond)}}, 0,
			[]string{"late", "early"}},
		{"nothing", nil, 10, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(MergeEntries(tc.lists, tc.limit))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// The caller's lists are not reordered.
	u := []*podwirev1.Entry{at("u-1", 1*s), at("u-3", 3*s)}
	MergeEntries([][]*podwirev1.Entry{u}, 0)
	if u[0].GetId() != "u-1" {
		t.Error("MergeEntries reordered its input")
	}
}

func TestMergeEntriesLarge(t *testing.T) {
	// 8 agents of 5000 entries, times interleaved: the merge is newest
	// first and the limit takes the newest overall.
	var lists [][]*podwirev1.Entry
	for a := range 8 {
		var l []*podwirev1.Entry
		for i := 4999; i >= 0; i-- {
			l = append(l, at(string(rune('a'+a))+"-"+time.Duration(i).String(), time.Duration(i*8+a)*time.Millisecond))
		}
		lists = append(lists, l)
	}
	got := MergeEntries(lists, 1000)
	if len(got) != 1000 {
		t.Fatalf("got %d entries, want 1000", len(got))
	}
	for i, e := range got {
		want := t0.Add(time.Duration(39999-i) * time.Millisecond)
		if !e.GetTime().AsTime().Equal(want) {
			t.Fatalf("entry %d at %v, want %v", i, e.GetTime().AsTime(), want)
		}
	}
}

func TestMergeServiceMap(t *testing.T) {
	m := MergeServiceMap(sampleMaps())
	var nodeIDs []string
	byID := map[string]*Node{}
	for _, n := range m.Nodes {
		nodeIDs = append(nodeIDs, n.ID)
		byID[n.ID] = n
	}
	if want := []string{"198.51.100.7", "data/redis", "process:curl", "shop/cart", "shop/web"}; !slices.Equal(nodeIDs, want) {
		t.Fatalf("nodes %v, want %v", nodeIDs, want)
	}
	cart := byID["shop/cart"]
	if cart.Requests != 150 || cart.Failed != 25 || cart.Sent != 60 || cart.Latency.Count != 150 {
		t.Errorf("cart: requests %d failed %d sent %d latency count %d, want 150 25 60 150",
			cart.Requests, cart.Failed, cart.Sent, cart.Latency.Count)
	}
	if web := byID["shop/web"]; web.Requests != 30 || web.Sent != 100 || web.Kind != "Deployment" {
		t.Errorf("web: %+v", web)
	}

	// The merged percentile is the one of all latencies together, not an
	// average of the agents' percentiles.
	var all stats.Histogram
	for _, v := range append(spread(100, 2, 40), spread(50, 100, 300)...) {
		all.Add(v)
	}
	for _, q := range []float64{0.5, 0.95, 0.99} {
		if got, want := cart.Latency.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("cart p%v = %v, want %v", q*100, got, want)
		}
	}
	var a1, a2 stats.Histogram
	a1.MergeProto(hist(spread(100, 2, 40)...))
	a2.MergeProto(hist(spread(50, 100, 300)...))
	if avg := (a1.Quantile(0.95) + a2.Quantile(0.95)) / 2; math.Abs(avg-cart.Latency.Quantile(0.95)) < 1 {
		t.Errorf("fixture too weak: averaged p95 %v is close to merged %v", avg, cart.Latency.Quantile(0.95))
	}
	if math.Abs(cart.Latency.SumMs-all.SumMs) > 1e-6 {
		t.Errorf("sum %v, want %v", cart.Latency.SumMs, all.SumMs)
	}

	if len(m.Edges) != 4 {
		t.Fatalf("%d edges, want 4", len(m.Edges))
	}
	var curl *Edge
	for _, e := range m.Edges {
		if e.Source == "process:curl" {
			curl = e
		}
	}
	if curl == nil || curl.Protocols["http"] != 45 || curl.Protocols["grpc"] != 5 ||
		!slices.Equal(curl.Services, []string{"cart", "cart-grpc"}) {
		t.Errorf("curl edge: %+v", curl)
	}
	if m.Matched != 340 || m.Scanned != 1400 {
		t.Errorf("matched %d scanned %d, want 340 1400", m.Matched, m.Scanned)
	}
	if want := t0.Add(-30 * time.Minute); !m.Oldest.Equal(want) {
		t.Errorf("oldest %v, want %v (the newest of the agents' oldest)", m.Oldest, want)
	}
}

func TestMergeServiceMapEdgesAcrossAgents(t *testing.T) {
	// The same edge seen by two agents adds up; an edge whose ends no agent
	// described still gets nodes.
	e := func(req, failed uint64, services ...string) *podwirev1.ServiceMapResponse {
		return &podwirev1.ServiceMapResponse{Edges: []*podwirev1.MapEdge{{
			Source: "shop/web", Target: "shop/cart", Requests: req, Failed: failed,
			Latency: hist(spread(int(req), 1, 10)...), Protocols: map[string]uint64{"http": req}, Services: services}}}
	}
	m := MergeServiceMap([]*podwirev1.ServiceMapResponse{e(10, 1, "cart"), nil, e(20, 2, "cart", "cart-v2"), {}})
	if len(m.Edges) != 1 {
		t.Fatalf("%d edges, want 1", len(m.Edges))
	}
	got := m.Edges[0]
	if got.Requests != 30 || got.Failed != 3 || got.Latency.Count != 30 || got.Protocols["http"] != 30 ||
		!slices.Equal(got.Services, []string{"cart", "cart-v2"}) {
		t.Errorf("edge %+v", got)
	}
	if len(m.Nodes) != 2 || m.Nodes[0].Name != "cart" || m.Nodes[0].Namespace != "shop" || m.Nodes[1].Name != "web" {
		t.Errorf("nodes from edge ends: %+v %+v", m.Nodes[0], m.Nodes[1])
	}
}

func TestMergeMetrics(t *testing.T) {
	ss := MergeMetrics(sampleMetrics())
	if len(ss) != 2 || ss[0].Group != "198.51.100.7" || ss[1].Group != "shop/cart" {
		t.Fatalf("series %+v", ss)
	}
	cart := ss[1]
	var times []int
	for _, p := range cart.Points {
		times = append(times, int(p.Time.Sub(t0)/time.Minute))
	}
	if !slices.Equal(times, []int{1, 2, 7}) {
		t.Fatalf("points at minutes %v, want [1 2 7]", times)
	}
	p := cart.Points[1]
	if p.Requests != 180 || p.Failed != 60 || p.Latency.Count != 180 {
		t.Errorf("minute 2: %d requests %d failed %d latencies, want 180 60 180", p.Requests, p.Failed, p.Latency.Count)
	}
	if cart.Name != "cart" || cart.Namespace != "shop" {
		t.Errorf("names %q %q", cart.Name, cart.Namespace)
	}
	if MergeMetrics([]*podwirev1.MetricsResponse{nil, {Series: []*podwirev1.MetricsSeries{nil}}}) == nil {
		t.Error("nil answers should merge to an empty list, not nil")
	}
}
