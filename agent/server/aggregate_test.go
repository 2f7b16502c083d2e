package server_test

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/server/servertest"
	"github.com/podwire/podwire/agent/stats"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Identities of a small shop: web (two pods, no Service) calls cart
// through its Service; a node process and an outside address call web;
// web calls an address outside the cluster.
var (
	web1    = &entry.Identity{Pod: "web-1", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment", Node: "n1"}
	web2    = &entry.Identity{Pod: "web-2", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment", Node: "n2"}
	cart0   = &entry.Identity{Pod: "cart-0", Namespace: "shop", Workload: "cart", WorkloadKind: "StatefulSet", Service: "cart", Node: "n1"}
	kubelet = &entry.Identity{Process: "kubelet", Node: "n1"}
)

func ep(ip string, port uint16, who *entry.Identity) entry.Endpoint {
	return entry.Endpoint{IP: netip.MustParseAddr(ip), Port: port, Who: who}
}

// exchange is an entry from src to dst at t0+at.
func exchange(at time.Duration, src, dst entry.Endpoint, proto string, status int32, failed bool, latency time.Duration) *entry.Entry {
	e := newEntry(t0.Add(at), "GET", "/p", status)
	e.Src, e.Dst, e.Protocol, e.Failed, e.Latency = src, dst, proto, failed, latency
	return e
}

// shopStore holds the shop's traffic, in t0 .. t0+1m, and one entry an
// hour earlier.
func shopStore(t *testing.T) *store.Store {
	t.Helper()
	st := newStore(8)
	webA, webB := ep("10.1.0.5", 40000, web1), ep("10.1.0.6", 40001, web2)
	cart := ep("10.1.0.9", 8080, cart0)
	for _, e := range []*entry.Entry{
		exchange(1*time.Second, webA, cart, entry.ProtoHTTP, 200, false, 1*time.Millisecond),
		exchange(2*time.Second, webB, cart, entry.ProtoHTTP, 503, true, 2*time.Millisecond),
		exchange(3*time.Second, webA, cart, entry.ProtoGRPC, 0, false, 100*time.Millisecond),
		exchange(4*time.Second, ep("203.0.113.7", 5000, nil), ep("10.1.0.5", 80, web1), entry.ProtoHTTP, 200, false, 5*time.Millisecond),
		exchange(5*time.Second, ep("10.0.0.1", 6000, kubelet), ep("10.1.0.6", 80, web2), entry.ProtoHTTP, 200, false, 1*time.Millisecond),
		exchange(6*time.Second, webA, ep("198.51.100.9", 6379, nil), entry.ProtoRedis, 1, true, 3*time.Millisecond),
		exchange(-time.Hour, webA, cart, entry.ProtoHTTP, 200, false, time.Millisecond),
	} {
		st.Add(e)
	}
	return st
}

// bigAnswers lets a client take the largest answers the bounds allow.
var bigAnswers = grpc.MaxCallRecvMsgSize(64 << 20)

func serviceMap(t *testing.T, c podwirev1.AgentClient, req *podwirev1.ServiceMapRequest) (*podwirev1.ServiceMapResponse, metadata.MD) {
	t.Helper()
	var tr metadata.MD
	resp, err := c.ServiceMap(ctxT(t), req, grpc.Trailer(&tr), bigAnswers)
	if err != nil {
		t.Fatalf("ServiceMap(%v): %v", req, err)
	}
	return resp, tr
}

// nodeLine and edgeLine render what a test compares, latency aside.
func nodeLine(n *podwirev1.MapNode) string {
	return fmt.Sprintf("%s name=%s ns=%s kind=%s req=%d failed=%d sent=%d",
		n.GetId(), n.GetName(), n.GetNamespace(), n.GetKind(), n.GetRequests(), n.GetFailed(), n.GetSent())
}

func edgeLine(e *podwirev1.MapEdge) string {
	var protos []string
	for p, n := range e.GetProtocols() {
		protos = append(protos, fmt.Sprintf("%s:%d", p, n))
	}
	slices.Sort(protos)
	return fmt.Sprintf("%s -> %s req=%d failed=%d protos=%s services=%s",
		e.GetSource(), e.GetTarget(), e.GetRequests(), e.GetFailed(), strings.Join(protos, ","), strings.Join(e.GetServices(), ","))
}

func lines[T any](items []T, f func(T) string) string {
	var out []string
	for _, it := range items {
		out = append(out, f(it))
	}
	return strings.Join(out, "\n")
}

func TestServiceMapGrouping(t *testing.T) {
	c := servertest.Client(t, servertest.Start(t, shopStore(t), server.Config{}))
	from, to := timestamppb.New(t0), timestamppb.New(t0.Add(time.Minute))
	tests := []struct {
		groupBy      string
		nodes, edges string
	}{
		{
			groupBy: "", // workload
			nodes: `198.51.100.9 name=198.51.100.9 ns= kind=external req=1 failed=1 sent=0
203.0.113.7 name=203.0.113.7 ns= kind=external req=0 failed=0 sent=1
process:kubelet name=kubelet ns= kind=process req=0 failed=0 sent=1
shop/cart name=cart ns=shop kind=StatefulSet req=3 failed=1 sent=0
shop/web name=web ns=shop kind=Deployment req=2 failed=0 sent=4`,
			edges: `203.0.113.7 -> shop/web req=1 failed=0 protos=http:1 services=
process:kubelet -> shop/web req=1 failed=0 protos=http:1 services=
shop/web -> 198.51.100.9 req=1 failed=1 protos=redis:1 services=
shop/web -> shop/cart req=3 failed=1 protos=grpc:1,http:2 services=cart`,
		},
		{
			groupBy: "namespace",
			nodes: `198.51.100.9 name=198.51.100.9 ns= kind=external req=1 failed=1 sent=0
203.0.113.7 name=203.0.113.7 ns= kind=external req=0 failed=0 sent=1
process:kubelet name=kubelet ns= kind=process req=0 failed=0 sent=1
shop name=shop ns=shop kind=Namespace req=5 failed=1 sent=4`,
			edges: `203.0.113.7 -> shop req=1 failed=0 protos=http:1 services=
process:kubelet -> shop req=1 failed=0 protos=http:1 services=
shop -> 198.51.100.9 req=1 failed=1 protos=redis:1 services=
shop -> shop req=3 failed=1 protos=grpc:1,http:2 services=cart`,
		},
		{
			// web has no Service: its pods are grouped by address.
			groupBy: "service",
			nodes: `10.1.0.5 name=10.1.0.5 ns= kind=external req=1 failed=0 sent=3
10.1.0.6 name=10.1.0.6 ns= kind=external req=1 failed=0 sent=1
198.51.100.9 name=198.51.100.9 ns= kind=external req=1 failed=1 sent=0
203.0.113.7 name=203.0.113.7 ns= kind=external req=0 failed=0 sent=1
process:kubelet name=kubelet ns= kind=process req=0 failed=0 sent=1
shop/cart name=cart ns=shop kind=Service req=3 failed=1 sent=0`,
			edges: `10.1.0.5 -> 198.51.100.9 req=1 failed=1 protos=redis:1 services=
10.1.0.5 -> shop/cart req=2 failed=0 protos=grpc:1,http:1 services=cart
10.1.0.6 -> shop/cart req=1 failed=1 protos=http:1 services=cart
203.0.113.7 -> 10.1.0.5 req=1 failed=0 protos=http:1 services=
process:kubelet -> 10.1.0.6 req=1 failed=0 protos=http:1 services=`,
		},
		{
			groupBy: "pod",
			nodes: `198.51.100.9 name=198.51.100.9 ns= kind=external req=1 failed=1 sent=0
203.0.113.7 name=203.0.113.7 ns= kind=external req=0 failed=0 sent=1
process:kubelet name=kubelet ns= kind=process req=0 failed=0 sent=1
shop/cart-0 name=cart-0 ns=shop kind=Pod req=3 failed=1 sent=0
shop/web-1 name=web-1 ns=shop kind=Pod req=1 failed=0 sent=3
shop/web-2 name=web-2 ns=shop kind=Pod req=1 failed=0 sent=1`,
			edges: `203.0.113.7 -> shop/web-1 req=1 failed=0 protos=http:1 services=
process:kubelet -> shop/web-2 req=1 failed=0 protos=http:1 services=
shop/web-1 -> 198.51.100.9 req=1 failed=1 protos=redis:1 services=
shop/web-1 -> shop/cart-0 req=2 failed=0 protos=grpc:1,http:1 services=cart
shop/web-2 -> shop/cart-0 req=1 failed=1 protos=http:1 services=cart`,
		},
	}
	for _, tc := range tests {
		t.Run("by "+tc.groupBy, func(t *testing.T) {
			resp, _ := serviceMap(t, c, &podwirev1.ServiceMapRequest{From: from, To: to, GroupBy: tc.groupBy})
			if got := lines(resp.GetNodes(), nodeLine); got != tc.nodes {
				t.Errorf("nodes:\n%s\nwant:\n%s", got, tc.nodes)
			}
			if got := lines(resp.GetEdges(), edgeLine); got != tc.edges {
				t.Errorf("edges:\n%s\nwant:\n%s", got, tc.edges)
			}
			if resp.GetMatched() != 6 || resp.GetScanned() != 6 {
				t.Errorf("matched %d scanned %d, want 6 and 6 (one entry is outside the range)", resp.GetMatched(), resp.GetScanned())
			}
			if !resp.GetOldest().AsTime().Equal(t0.Add(-time.Hour)) {
				t.Errorf("oldest %v", resp.GetOldest().AsTime())
			}
		})
	}

	t.Run("latency", func(t *testing.T) {
		resp, _ := serviceMap(t, c, &podwirev1.ServiceMapRequest{From: from, To: to})
		for _, e := range resp.GetEdges() {
			if e.GetTarget() != "shop/cart" {
				continue
			}
			var h stats.Histogram
			h.MergeProto(e.GetLatency())
			if h.Count != 3 || math.Abs(h.SumMs-103) > 1e-9 {
				t.Errorf("edge histogram count %d sum %v, want 3 and 103 ms", h.Count, h.SumMs)
			}
			// Latencies 1, 2 and 100 ms: the median is 2 ms, the max 100,
			// each within a bucket's width.
			if p50 := h.Quantile(0.5); p50 < 2/1.1 || p50 > 2*1.1 {
				t.Errorf("p50 %v ms, want about 2", p50)
			}
			if p99 := h.Quantile(0.99); p99 < 100/1.1 || p99 > 100*1.1 {
				t.Errorf("p99 %v ms, want about 100", p99)
			}
		}
		for _, n := range resp.GetNodes() {
			var h stats.Histogram
			h.MergeProto(n.GetLatency())
			if h.Count != n.GetRequests() {
				t.Errorf("node %s: histogram holds %d, requests %d", n.GetId(), h.Count, n.GetRequests())
			}
		}
	})

	t.Run("filter", func(t *testing.T) {
		resp, _ := serviceMap(t, c, &podwirev1.ServiceMapRequest{Filter: "failed", From: from, To: to})
		want := "shop/web -> 198.51.100.9 req=1 failed=1 protos=redis:1 services=\nshop/web -> shop/cart req=1 failed=1 protos=http:1 services=cart"
		if got := lines(resp.GetEdges(), edgeLine); got != want || resp.GetMatched() != 2 || resp.GetScanned() != 6 {
			t.Errorf("edges:\n%s\nmatched %d scanned %d", got, resp.GetMatched(), resp.GetScanned())
		}
	})

	t.Run("filter on headers", func(t *testing.T) {
		// newEntry's request has a body; a filter on it reads whole entries.
		resp, _ := serviceMap(t, c, &podwirev1.ServiceMapRequest{Filter: `request.body == "request body" && grpc`, From: from, To: to})
		if got := lines(resp.GetEdges(), edgeLine); got != "shop/web -> shop/cart req=1 failed=0 protos=grpc:1 services=cart" {
			t.Errorf("edges:\n%s", got)
		}
	})

	t.Run("unbounded range", func(t *testing.T) {
		resp, tr := serviceMap(t, c, &podwirev1.ServiceMapRequest{})
		if resp.GetMatched() != 7 || len(tr.Get(server.TruncatedTrailer)) != 0 {
			t.Errorf("matched %d, trailer %v", resp.GetMatched(), tr)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, req := range []*podwirev1.ServiceMapRequest{
			{GroupBy: "node"}, // Metrics only
			{GroupBy: "Workload"},
			{From: to, To: from},
			{From: from, To: from},
		} {
			_, err := c.ServiceMap(ctxT(t), req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%v: %v, want InvalidArgument", req, err)
			}
		}
		_, err := c.ServiceMap(ctxT(t), &podwirev1.ServiceMapRequest{GroupBy: "nope"})
		if msg := status.Convert(err).Message(); !strings.Contains(msg, `"nope"`) || !strings.Contains(msg, "workload, service, namespace, pod") {
			t.Errorf("message %q should name the group and the choices", msg)
		}
	})
}

func metrics(t *testing.T, c podwirev1.AgentClient, req *podwirev1.MetricsRequest) (*podwirev1.MetricsResponse, metadata.MD) {
	t.Helper()
	var tr metadata.MD
	resp, err := c.Metrics(ctxT(t), req, grpc.Trailer(&tr), bigAnswers)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	return resp, tr
}

func seriesLine(s *podwirev1.MetricsSeries) string {
	var pts []string
	for _, p := range s.GetPoints() {
		var h stats.Histogram
		h.MergeProto(p.GetLatency())
		pts = append(pts, fmt.Sprintf("+%v:%d/%d/%d", p.GetTime().AsTime().Sub(t0), p.GetRequests(), p.GetFailed(), h.Count))
	}
	return fmt.Sprintf("%s (%s, %s) %s", s.GetGroup(), s.GetName(), s.GetNamespace(), strings.Join(pts, " "))
}

func TestMetricsSteps(t *testing.T) {
	st := newStore(8)
	cart := ep("10.1.0.9", 8080, cart0)
	webA := ep("10.1.0.5", 40000, web1)
	for _, e := range []*entry.Entry{
		exchange(-time.Nanosecond, webA, cart, entry.ProtoHTTP, 200, false, time.Millisecond), // before from
		exchange(0, webA, cart, entry.ProtoHTTP, 200, false, time.Millisecond),
		exchange(10*time.Second-time.Nanosecond, webA, cart, entry.ProtoHTTP, 503, true, time.Millisecond),
		exchange(10*time.Second, webA, cart, entry.ProtoHTTP, 200, false, time.Millisecond),
		exchange(35*time.Second, webA, ep("10.1.0.6", 80, web2), entry.ProtoHTTP, 404, false, time.Millisecond),
		exchange(60*time.Second, webA, cart, entry.ProtoHTTP, 200, false, time.Millisecond), // at to
	} {
		st.Add(e)
	}
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	from, to := timestamppb.New(t0), timestamppb.New(t0.Add(time.Minute))
	step := durationpb.New(10 * time.Second)

	tests := []struct {
		groupBy string
		want    string
	}{
		{"workload", "shop/cart (cart, shop) +0s:2/1/2 +10s:1/0/1\nshop/web (web, shop) +30s:1/0/1"},
		{"status", "200 (200, ) +0s:1/0/1 +10s:1/0/1\n404 (404, ) +30s:1/0/1\n503 (503, ) +0s:1/1/1"},
		{"none", " (, ) +0s:2/1/2 +10s:1/0/1 +30s:1/0/1"},
		{"node", "node-a (node-a, ) +0s:2/1/2 +10s:1/0/1 +30s:1/0/1"},
		{"protocol", "http (http, ) +0s:2/1/2 +10s:1/0/1 +30s:1/0/1"},
		{"method", "GET (GET, ) +0s:2/1/2 +10s:1/0/1 +30s:1/0/1"},
		{"path", "/p (/p, ) +0s:2/1/2 +10s:1/0/1 +30s:1/0/1"},
		{"pod", "shop/cart-0 (cart-0, shop) +0s:2/1/2 +10s:1/0/1\nshop/web-2 (web-2, shop) +30s:1/0/1"},
	}
	for _, tc := range tests {
		t.Run(tc.groupBy, func(t *testing.T) {
			resp, _ := metrics(t, c, &podwirev1.MetricsRequest{From: from, To: to, Step: step, GroupBy: tc.groupBy})
			if got := lines(resp.GetSeries(), seriesLine); got != tc.want {
				t.Errorf("series:\n%s\nwant:\n%s", got, tc.want)
			}
			if resp.GetMatched() != 4 || resp.GetStep().AsDuration() != 10*time.Second {
				t.Errorf("matched %d, step %v", resp.GetMatched(), resp.GetStep().AsDuration())
			}
		})
	}

	t.Run("default step", func(t *testing.T) {
		resp, _ := metrics(t, c, &podwirev1.MetricsRequest{From: from, To: to, GroupBy: "none"})
		if got := resp.GetStep().AsDuration(); got != 600*time.Millisecond {
			t.Errorf("step %v, want a minute / 100", got)
		}
		// 9.999999999s and 10s both fall in [9.6s, 10.2s).
		want := " (, ) +0s:1/0/1 +9.6s:2/1/2 +34.8s:1/0/1"
		if got := lines(resp.GetSeries(), seriesLine); got != want {
			t.Errorf("series %s, want %s", got, want)
		}
	})

	t.Run("filter", func(t *testing.T) {
		resp, _ := metrics(t, c, &podwirev1.MetricsRequest{Filter: "status == 404", From: from, To: to, Step: step, GroupBy: "none"})
		if got := lines(resp.GetSeries(), seriesLine); got != " (, ) +30s:1/0/1" {
			t.Errorf("series %s", got)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for name, req := range map[string]*podwirev1.MetricsRequest{
			"no from":         {To: to},
			"no to":           {From: from},
			"from after to":   {From: to, To: from},
			"from is to":      {From: from, To: from},
			"too many steps":  {From: from, To: timestamppb.New(t0.Add((server.MaxSteps + 1) * time.Millisecond)), Step: durationpb.New(time.Millisecond)},
			"a step too many": {From: from, To: timestamppb.New(t0.Add(server.MaxSteps*time.Millisecond + 1)), Step: durationpb.New(time.Millisecond)},
			"negative step":   {From: from, To: to, Step: durationpb.New(-time.Second)},
			"unknown groupBy": {From: from, To: to, GroupBy: "color"},
			"range too long":  {From: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)), To: to},
		} {
			_, err := c.Metrics(ctxT(t), req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
		// Exactly MaxSteps steps is allowed.
		if _, err := c.Metrics(ctxT(t), &podwirev1.MetricsRequest{From: from, To: timestamppb.New(t0.Add(server.MaxSteps * time.Millisecond)), Step: durationpb.New(time.Millisecond)}); err != nil {
			t.Errorf("%d steps: %v", server.MaxSteps, err)
		}
	})
}

func TestValues(t *testing.T) {
	st := newStore(8)
	shop := ep("10.1.0.9", 8080, cart0)
	other := &entry.Identity{Pod: "api-1", Namespace: "Shipping", Workload: "api"}
	add := func(n int, src, dst entry.Endpoint, path string) {
		for range n {
			e := exchange(time.Second, src, dst, entry.ProtoHTTP, 200, false, time.Millisecond)
			e.Path = path
			st.Add(e)
		}
	}
	add(3, ep("10.1.0.5", 1, web1), shop, "/cart")                   // shop -> shop
	add(2, ep("10.2.0.1", 1, other), shop, "/cart/items")            // Shipping -> shop
	add(2, ep("10.1.0.5", 1, web1), ep("10.2.0.1", 80, other), "/x") // shop -> Shipping
	add(1, ep("203.0.113.7", 1, nil), ep("10.2.0.1", 80, other), "/y")
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))

	values := func(t *testing.T, req *podwirev1.ValuesRequest) string {
		t.Helper()
		resp, err := c.Values(ctxT(t), req)
		if err != nil {
			t.Fatalf("Values(%v): %v", req, err)
		}
		return lines(resp.GetValues(), func(v *podwirev1.ValueCount) string { return fmt.Sprintf("%s=%d", v.GetValue(), v.GetCount()) })
	}
	tests := []struct {
		name string
		req  *podwirev1.ValuesRequest
		want string
	}{
		// An entry counts once for a value at both ends.
		{"either end", &podwirev1.ValuesRequest{Field: "namespace"}, "shop=7\nShipping=5"},
		{"src", &podwirev1.ValuesRequest{Field: "src.namespace"}, "shop=5\nShipping=2"},
		{"dst", &podwirev1.ValuesRequest{Field: "dst.workload"}, "cart=5\napi=3"},
		{"prefix any case", &podwirev1.ValuesRequest{Field: "namespace", Prefix: "sH"}, "shop=7\nShipping=5"},
		{"prefix", &podwirev1.ValuesRequest{Field: "path", Prefix: "/CART/"}, "/cart/items=2"},
		{"limit, ties by value", &podwirev1.ValuesRequest{Field: "path", Limit: 3}, "/cart=3\n/cart/items=2\n/x=2"},
		{"addresses", &podwirev1.ValuesRequest{Field: "src.ip"}, "10.1.0.5=5\n10.2.0.1=2\n203.0.113.7=1"},
		{"address prefix", &podwirev1.ValuesRequest{Field: "src.ip", Prefix: "10.2"}, "10.2.0.1=2"},
		{"filter", &podwirev1.ValuesRequest{Field: "pod", Filter: `path == "/y"`}, "api-1=1"},
		{"no value", &podwirev1.ValuesRequest{Field: "service", Filter: `path == "/y"`}, ""},
		{"time range", &podwirev1.ValuesRequest{Field: "protocol", From: timestamppb.New(t0.Add(2 * time.Second))}, ""},
		{"node", &podwirev1.ValuesRequest{Field: "node"}, "node-a=8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := values(t, tc.req); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	t.Run("unknown field", func(t *testing.T) {
		_, err := c.Values(ctxT(t), &podwirev1.ValuesRequest{Field: "dst.color"})
		if s := status.Convert(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), "dst.workload") {
			t.Errorf("%v: want InvalidArgument listing the fields", err)
		}
	})
}

// TestAggregationOverManyBatches aggregates more entries than the store
// copies out at once, with names at shifting places in the copies: what
// an aggregation keeps must not point into the store's scan buffers.
func TestAggregationOverManyBatches(t *testing.T) {
	st := store.New(store.Config{Node: "node-a", MaxBytes: 256 << 20})
	const n = 20000
	want := map[string]int{}
	for i := range n {
		ns := fmt.Sprintf("ns-%d", i%7)
		e := exchange(time.Duration(i)*time.Millisecond,
			ep("10.1.0.5", 1, &entry.Identity{Namespace: ns, Workload: "w" + strings.Repeat("x", i%13)}),
			ep("10.1.0.9", 2, &entry.Identity{Namespace: "dst", Workload: "db"}),
			entry.ProtoHTTP, 200, false, time.Millisecond)
		e.Path = strings.Repeat("/p", i%11)
		st.Add(e)
		want[ns]++
	}
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	resp, err := c.Values(ctxT(t), &podwirev1.ValuesRequest{Field: "src.namespace"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetValues()) != len(want) {
		t.Errorf("%d values, want %d: %v", len(resp.GetValues()), len(want), resp.GetValues())
	}
	for _, v := range resp.GetValues() {
		if int(v.GetCount()) != want[v.GetValue()] {
			t.Errorf("%q: %d, want %d", v.GetValue(), v.GetCount(), want[v.GetValue()])
		}
	}
	m, _ := serviceMap(t, c, &podwirev1.ServiceMapRequest{GroupBy: "namespace"})
	if len(m.GetNodes()) != len(want)+1 || len(m.GetEdges()) != len(want) {
		t.Errorf("%d nodes, %d edges:\n%s", len(m.GetNodes()), len(m.GetEdges()), lines(m.GetEdges(), edgeLine))
	}
	for _, e := range m.GetEdges() {
		if e.GetTarget() != "dst" || int(e.GetRequests()) != want[e.GetSource()] {
			t.Errorf("edge %s", edgeLine(e))
		}
	}
	mt, _ := metrics(t, c, &podwirev1.MetricsRequest{From: timestamppb.New(t0), To: timestamppb.New(t0.Add(time.Minute)), GroupBy: "path"})
	if len(mt.GetSeries()) != 11 {
		t.Errorf("%d series by path, want 11", len(mt.GetSeries()))
	}
}

func TestAggregationBadFilter(t *testing.T) {
	c := servertest.Client(t, servertest.Start(t, shopStore(t), server.Config{}))
	from, to := timestamppb.New(t0), timestamppb.New(t0.Add(time.Minute))
	const bad = "http && nosuchfield"
	calls := map[string]func() error{
		"ServiceMap": func() error {
			_, err := c.ServiceMap(ctxT(t), &podwirev1.ServiceMapRequest{Filter: bad})
			return err
		},
		"Metrics": func() error {
			_, err := c.Metrics(ctxT(t), &podwirev1.MetricsRequest{Filter: bad, From: from, To: to})
			return err
		},
		"Values": func() error {
			_, err := c.Values(ctxT(t), &podwirev1.ValuesRequest{Filter: bad, Field: "path"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			s := status.Convert(call())
			if s.Code() != codes.InvalidArgument || !strings.HasPrefix(s.Message(), "filter:1:9: ") || !strings.Contains(s.Message(), "\n        ^") {
				t.Errorf("%v %q: want InvalidArgument at 1:9 with a caret", s.Code(), s.Message())
			}
		})
	}
}

func TestAggregationToken(t *testing.T) {
	c := servertest.Client(t, servertest.Start(t, shopStore(t), server.Config{Token: "s3cret"}))
	_, err1 := c.ServiceMap(ctxT(t), &podwirev1.ServiceMapRequest{})
	_, err2 := c.Metrics(ctxT(t), &podwirev1.MetricsRequest{})
	_, err3 := c.Values(ctxT(t), &podwirev1.ValuesRequest{Field: "path"})
	for _, err := range []error{err1, err2, err3} {
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%v, want Unauthenticated", err)
		}
	}
}

// truncated returns the truncation trailers: what was full and how many
// entries were left out.
func truncated(t *testing.T, tr metadata.MD) (string, int) {
	t.Helper()
	what := strings.Join(tr.Get(server.TruncatedTrailer), ",")
	n := 0
	if v := tr.Get(server.TruncatedEntriesTrailer); len(v) == 1 {
		var err error
		if n, err = strconv.Atoi(v[0]); err != nil {
			t.Fatalf("trailer %v", tr)
		}
	}
	return what, n
}

func TestAggregationBounds(t *testing.T) {
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}) }
	entryAt := func(at time.Duration, src, dst netip.Addr) *entry.Entry {
		e := newEntry(t0.Add(at), "GET", "/", 200)
		e.Src, e.Dst = entry.Endpoint{IP: src}, entry.Endpoint{IP: dst}
		return e
	}
	big := func() *store.Store { return store.New(store.Config{Node: "node-a", MaxBytes: 1 << 30}) }

	t.Run("nodes", func(t *testing.T) {
		st := big()
		// MaxMapNodes+1 clients of one server: the last two do not fit.
		for i := range server.MaxMapNodes + 1 {
			st.Add(entryAt(time.Duration(i), addr(i+1), addr(0)))
		}
		srv := servertest.Start(t, st, server.Config{})
		c := servertest.Client(t, srv)
		resp, tr := serviceMap(t, c, &podwirev1.ServiceMapRequest{})
		what, n := truncated(t, tr)
		if len(resp.GetNodes()) != server.MaxMapNodes || what != "nodes" || n != 2 {
			t.Errorf("%d nodes, trailer %q %d; want %d, nodes, 2", len(resp.GetNodes()), what, n, server.MaxMapNodes)
		}
		var sum uint64
		for _, e := range resp.GetEdges() {
			sum += e.GetRequests()
		}
		if resp.GetMatched() != uint64(server.MaxMapNodes+1) || sum != resp.GetMatched()-2 {
			t.Errorf("matched %d, edges hold %d", resp.GetMatched(), sum)
		}
		s, err := c.Status(ctxT(t), &podwirev1.StatusRequest{})
		if err != nil || s.GetCounters()["aggregate_truncated_entries"] != 2 {
			t.Errorf("status counters %v, %v", s.GetCounters(), err)
		}
	})

	t.Run("edges", func(t *testing.T) {
		st := big()
		// 224 clients x 224 servers: 50176 edges among 448 nodes.
		for i := range 224 {
			for j := range 224 {
				st.Add(entryAt(time.Duration(i*224+j), addr(i), addr(1000+j)))
			}
		}
		c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
		resp, tr := serviceMap(t, c, &podwirev1.ServiceMapRequest{})
		what, n := truncated(t, tr)
		if len(resp.GetEdges()) != server.MaxMapEdges || what != "edges" || n != 224*224-server.MaxMapEdges {
			t.Errorf("%d edges, trailer %q %d", len(resp.GetEdges()), what, n)
		}
	})

	t.Run("points", func(t *testing.T) {
		st := big()
		// 20 paths in each of MaxSteps steps: more points than allowed.
		const groups = 20
		for k := range server.MaxSteps {
			for g := range groups {
				e := entryAt(time.Duration(k)*time.Second, addr(1), addr(2))
				e.Path = fmt.Sprintf("/%d", g)
				st.Add(e)
			}
		}
		c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
		resp, tr := metrics(t, c, &podwirev1.MetricsRequest{
			From: timestamppb.New(t0), To: timestamppb.New(t0.Add(server.MaxSteps * time.Second)),
			Step: durationpb.New(time.Second), GroupBy: "path",
		})
		what, n := truncated(t, tr)
		points := 0
		for _, s := range resp.GetSeries() {
			points += len(s.GetPoints())
		}
		if points != server.MaxPoints || len(resp.GetSeries()) != groups || what != "points" || n != groups*server.MaxSteps-server.MaxPoints {
			t.Errorf("%d points in %d series, trailer %q %d", points, len(resp.GetSeries()), what, n)
		}
	})

	t.Run("series", func(t *testing.T) {
		st := big()
		for g := range server.MaxSeries + 3 {
			e := entryAt(time.Duration(g), addr(1), addr(2))
			e.Path = fmt.Sprintf("/%d", g)
			st.Add(e)
		}
		c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
		resp, tr := metrics(t, c, &podwirev1.MetricsRequest{
			From: timestamppb.New(t0), To: timestamppb.New(t0.Add(time.Second)), GroupBy: "path",
		})
		what, n := truncated(t, tr)
		if len(resp.GetSeries()) != server.MaxSeries || what != "series" || n != 3 {
			t.Errorf("%d series, trailer %q %d", len(resp.GetSeries()), what, n)
		}
		for _, s := range resp.GetSeries() {
			if len(s.GetPoints()) != 1 {
				t.Fatalf("series %s has %d points", s.GetGroup(), len(s.GetPoints()))
			}
		}
	})

	t.Run("values", func(t *testing.T) {
		st := big()
		for i := range server.MaxValues + 5 {
			e := entryAt(time.Duration(i), addr(1), addr(2))
			e.Path = fmt.Sprintf("/v/%d", i)
			st.Add(e)
		}
		c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
		var tr metadata.MD
		resp, err := c.Values(ctxT(t), &podwirev1.ValuesRequest{Field: "path", Limit: 5000}, grpc.Trailer(&tr))
		if err != nil {
			t.Fatal(err)
		}
		what, n := truncated(t, tr)
		if len(resp.GetValues()) != server.MaxValuesLimit || what != "values" || n != 5 {
			t.Errorf("%d values, trailer %q %d", len(resp.GetValues()), what, n)
		}
	})
}
