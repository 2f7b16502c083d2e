package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"google.golang.org/grpc"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/store"
)

// benchWorkloads are the services of a made-up shop, with who calls whom.
var benchWorkloads = []struct {
	name, ns string
	calls    []string
}{
	{"frontend", "shop", []string{"cart", "catalog", "checkout", "recommend", "ads"}},
	{"checkout", "shop", []string{"cart", "payment", "shipping", "email", "currency"}},
	{"cart", "shop", []string{"redis-cart"}},
	{"recommend", "shop", []string{"catalog"}},
	{"catalog", "shop", []string{"postgres"}},
	{"payment", "payments", []string{"fraud", "ledger"}},
	{"shipping", "logistics", []string{"quote"}},
	{"ads", "marketing", nil}, {"email", "shop", nil}, {"currency", "shop", nil},
	{"redis-cart", "shop", nil}, {"postgres", "data", nil}, {"fraud", "payments", nil},
	{"ledger", "payments", nil}, {"quote", "logistics", nil},
}

// benchEntries makes n realistic entries over the last span on node: HTTP
// and gRPC calls along the shop's call graph, headers, small bodies,
// log-normal latencies and a few failures.
func benchEntries(n int, node string, span time.Duration, seed uint64) []*entry.Entry {
	r := rand.New(rand.NewPCG(seed, 7))
	idents := map[string]*entry.Identity{}
	for i, w := range benchWorkloads {
		idents[w.name] = &entry.Identity{Pod: fmt.Sprintf("%s-%x-%d", w.name, 0x5d9c+i, i%3), Namespace: w.ns,
			Workload: w.name, WorkloadKind: "Deployment", Service: w.name, Node: node}
	}
	var edges [][2]string
	for _, w := range benchWorkloads {
		for _, c := range w.calls {
			edges = append(edges, [2]string{w.name, c})
		}
	}
	paths := []string{"/api/cart", "/api/products/42", "/api/checkout", "/healthz", "/api/quote?zip=10115"}
	end := time.Now()
	out := make([]*entry.Entry, n)
	for i := range out {
		e := edges[r.IntN(len(edges))]
		at := end.Add(-time.Duration(float64(span) * float64(n-i) / float64(n)))
		lat := time.Duration(float64(time.Millisecond) * (0.3 + r.ExpFloat64()*8))
		status := int32(200)
		if r.IntN(50) == 0 {
			status = 503
		}
		proto, method, path := entry.ProtoHTTP, "GET", paths[r.IntN(len(paths))]
		if r.IntN(3) == 0 {
			proto, method, path = entry.ProtoGRPC, "/shop.v1."+e[1]+"/Get", "/shop.v1."+e[1]+"/Get"
			status = 0
			if r.IntN(50) == 0 {
				status = 14
			}
		}
		out[i] = &entry.Entry{
			Time: at, Protocol: proto, HTTPVersion: "1.1", Method: method, Path: path, Status: status,
			Failed:  status >= 500 || (proto == entry.ProtoGRPC && status != 0),
			Latency: lat, Node: node,
			Src: entry.Endpoint{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: uint16(30000 + i%30000), Who: idents[e[0]]},
			Dst: entry.Endpoint{IP: netip.AddrFrom4([4]byte{10, 2, 0, byte(len(e[1]))}), Port: 8080, Who: idents[e[1]]},
			Request: &entry.Message{Headers: []entry.Header{{Name: "host", Value: e[1]}, {Name: "user-agent", Value: "Go-http-client/1.1"},
				{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
				Body: []byte(`{"id":42}`), BodyBytes: 9, Start: at, End: at.Add(50 * time.Microsecond)},
			Response: &entry.Message{Headers: []entry.Header{{Name: "content-type", Value: "application/json"}, {Name: "content-length", Value: "27"}},
				Body: []byte(`{"ok":true,"items":[1,2,3]}`), BodyBytes: 27, Start: at.Add(lat / 2), End: at.Add(lat)},
		}
	}
	return out
}

// benchAgent serves a store filled with es on loopback.
func benchAgent(b *testing.B, node string, es []*entry.Entry) string {
	b.Helper()
	st := store.New(store.Config{Node: node, MaxBytes: 2 << 30})
	for _, e := range es {
		st.Add(e)
	}
	if got := st.Stats().Entries; got != uint64(len(es)) {
		b.Fatalf("store holds %d of %d entries", got, len(es))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	server.New(st, server.Config{Node: node}).Register(gs)
	go gs.Serve(lis)
	b.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func benchDatasource(b *testing.B, addrs ...string) *Datasource {
	// The SDK logs to stdout, which would interleave with the results.
	prev := backend.Logger
	backend.Logger = log.NewNullLogger()
	b.Cleanup(func() { backend.Logger = prev })
	js, _ := json.Marshal(map[string]any{"agents": addrs, "timeoutSeconds": 60})
	inst, err := NewDatasource(context.Background(), backend.DataSourceInstanceSettings{UID: "bench", Name: "Podwire", JSONData: js})
	if err != nil {
		b.Fatal(err)
	}
	d := inst.(*Datasource)
	if d.settingsErr != nil {
		b.Fatal(d.settingsErr)
	}
	b.Cleanup(d.Dispose)
	return d
}

// runQuery runs one query per iteration and reports the median latency.
func runQuery(b *testing.B, d *Datasource, q backend.DataQuery, check func(*backend.DataResponse)) {
	req := &backend.QueryDataRequest{Queries: []backend.DataQuery{q}}
	run := func() time.Duration {
		start := time.Now()
		resp, err := d.QueryData(context.Background(), req)
		el := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		r := resp.Responses[q.RefID]
		if r.Error != nil {
			b.Fatal(r.Error)
		}
		check(&r)
		return el
	}
	run() // connections up
	var times []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		times = append(times, run())
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2])/1e6, "median-ms")
}

// BenchmarkQueryTraffic10k: a traffic query answered with 10,000 rows
// merged from two agents holding 20,000 entries each.
func BenchmarkQueryTraffic10k(b *testing.B) {
	a1 := benchAgent(b, "node-a", benchEntries(20000, "node-a", time.Hour, 1))
	a2 := benchAgent(b, "node-b", benchEntries(20000, "node-b", time.Hour, 2))
	d := benchDatasource(b, a1, a2)
	qj, _ := json.Marshal(map[string]any{"queryType": "traffic", "limit": 10000})
	q := backend.DataQuery{RefID: "A", JSON: qj, TimeRange: backend.TimeRange{From: time.Now().Add(-2 * time.Hour), To: time.Now().Add(time.Minute)}}
	runQuery(b, d, q, func(r *backend.DataResponse) {
		if n := r.Frames[0].Rows(); n != 10000 {
			b.Fatalf("%d rows", n)
		}
	})
}

// BenchmarkQueryServiceMap1M: a service map over 1,000,000 stored entries,
// 500,000 on each of two agents.
func BenchmarkQueryServiceMap1M(b *testing.B) {
	a1 := benchAgent(b, "node-a", benchEntries(500000, "node-a", time.Hour, 1))
	a2 := benchAgent(b, "node-b", benchEntries(500000, "node-b", time.Hour, 2))
	d := benchDatasource(b, a1, a2)
	qj, _ := json.Marshal(map[string]any{"queryType": "serviceMap"})
	q := backend.DataQuery{RefID: "A", JSON: qj, TimeRange: backend.TimeRange{From: time.Now().Add(-2 * time.Hour), To: time.Now().Add(time.Minute)}}
	runQuery(b, d, q, func(r *backend.DataResponse) {
		if len(r.Frames) != 2 || r.Frames[0].Rows() != len(benchWorkloads) {
			b.Fatalf("frames %v", r.Frames)
		}
	})
}
