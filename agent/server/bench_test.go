package server

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// benchT0 is when the benchmark store's hour of traffic starts.
var benchT0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

const (
	benchEntries   = 1_000_000
	benchWorkloads = 50
	benchEdges     = 200
	benchSpan      = time.Hour
)

// benchWorkload is one workload of the benchmark cluster.
type benchWorkload struct {
	pods     []*entry.Identity
	ips      []netip.Addr
	protocol string
	paths    []string
	methods  []string
}

// fillBench fills st with n entries of a cluster of benchWorkloads
// workloads in 8 namespaces talking over benchEdges edges (a few from
// outside the cluster and from node processes), spread over benchSpan:
// mostly HTTP with headers and small bodies, some gRPC, Redis and DNS;
// latencies log-normal around a per-edge median, 2% failures.
func fillBench(st *store.Store, n int) {
	rng := rand.New(rand.NewPCG(7, 11))
	protos := []string{entry.ProtoHTTP, entry.ProtoHTTP, entry.ProtoHTTP, entry.ProtoGRPC, entry.ProtoRedis, entry.ProtoDNS}
	ws := make([]*benchWorkload, benchWorkloads)
	for i := range ws {
		w := &benchWorkload{protocol: protos[i%len(protos)]}
		ns := fmt.Sprintf("ns-%d", i%8)
		name := fmt.Sprintf("svc-%d", i)
		for p := range 3 {
			w.pods = append(w.pods, &entry.Identity{
				Pod: fmt.Sprintf("%s-7d9c4-%d", name, p), Namespace: ns, Workload: name, WorkloadKind: "Deployment",
				Service: name, Node: fmt.Sprintf("node-%d", p),
			})
			w.ips = append(w.ips, netip.AddrFrom4([4]byte{10, 1, byte(i), byte(p + 1)}))
		}
		for k := range 20 {
			switch w.protocol {
			case entry.ProtoGRPC:
				w.paths = append(w.paths, fmt.Sprintf("/shop.%s.v1.Api/Call%d", name, k))
				w.methods = []string{"POST"}
			case entry.ProtoRedis:
				w.paths = append(w.paths, fmt.Sprintf("cart:%d", k))
				w.methods = []string{"GET", "SET", "HGET"}
			case entry.ProtoDNS:
				w.paths = append(w.paths, fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local", k, k%8))
				w.methods = []string{"A", "AAAA"}
			default:
				w.paths = append(w.paths, fmt.Sprintf("/api/%s/items/%d", name, k))
				w.methods = []string{"GET", "GET", "GET", "POST", "PUT"}
			}
		}
		ws[i] = w
	}
	type edge struct {
		src    *benchWorkload // nil: external or process
		srcID  *entry.Identity
		srcIP  netip.Addr
		dst    *benchWorkload
		median float64 // ms
	}
	edges := make([]edge, benchEdges)
	for i := range edges {
		e := edge{dst: ws[rng.IntN(len(ws))], median: math.Exp(rng.Float64()*5) / 2}
		switch i % 20 {
		case 0:
			e.srcIP = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		case 1:
			e.srcID = &entry.Identity{Process: "kubelet", Node: "node-0"}
			e.srcIP = netip.AddrFrom4([4]byte{192, 168, 0, 10})
		default:
			e.src = ws[rng.IntN(len(ws))]
		}
		edges[i] = e
	}
	reqHeaders := []entry.Header{{Name: "host", Value: "svc"}, {Name: "user-agent", Value: "Go-http-client/1.1"},
		{Name: "accept", Value: "application/json"}, {Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	respHeaders := []entry.Header{{Name: "content-type", Value: "application/json"}, {Name: "content-length", Value: "120"}}
	body := []byte(`{"items":[{"id":1,"name":"apple","qty":2},{"id":2,"name":"pear","qty":1}],"total":3,"currency":"EUR"}`)
	for i := range n {
		ed := &edges[rng.IntN(len(edges))]
		e := &entry.Entry{
			Time:     benchT0.Add(time.Duration(i) * (benchSpan / time.Duration(n))),
			Protocol: ed.dst.protocol,
			Node:     "node-a",
			ConnID:   uint64(i / 20),
		}
		p := rng.IntN(3)
		e.Dst = entry.Endpoint{IP: ed.dst.ips[p], Port: 8080, Who: ed.dst.pods[p]}
		switch {
		case ed.src != nil:
			q := rng.IntN(3)
			e.Src = entry.Endpoint{IP: ed.src.ips[q], Port: uint16(30000 + i%30000), Who: ed.src.pods[q]}
		default:
			e.Src = entry.Endpoint{IP: ed.srcIP, Port: uint16(30000 + i%30000), Who: ed.srcID}
		}
		e.Method = ed.dst.methods[rng.IntN(len(ed.dst.methods))]
		e.Path = ed.dst.paths[rng.IntN(len(ed.dst.paths))]
		e.Latency = time.Duration(ed.median * math.Exp(rng.NormFloat64()*0.6) * float64(time.Millisecond))
		e.Failed = rng.IntN(50) == 0
		switch e.Protocol {
		case entry.ProtoHTTP, entry.ProtoGRPC:
			e.HTTPVersion = "1.1"
			e.Status = 200
			if e.Failed {
				e.Status = 503
			}
			if e.Protocol == entry.ProtoGRPC {
				e.HTTPVersion, e.Status = "2", 0
				if e.Failed {
					e.Status = 14
				}
			}
			e.Request = &entry.Message{Headers: reqHeaders, BodyBytes: 0}
			e.Response = &entry.Message{Headers: respHeaders, Body: body, BodyBytes: int64(len(body))}
		default:
			if e.Failed {
				e.Status = 1
			}
			e.Request = &entry.Message{Body: []byte(e.Path)}
			e.Response = &entry.Message{Body: []byte("+OK")}
		}
		st.Add(e)
	}
}

var benchStore = sync.OnceValue(func() *store.Store {
	st := store.New(store.Config{Node: "node-a", MaxBytes: 1 << 40})
	fillBench(st, benchEntries)
	return st
})

// reportCPU reports the process's CPU time per op since start (all
// threads: the scan, the garbage collector).
func reportCPU(b *testing.B, start int64) {
	if start > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func benchServer(b *testing.B) *Server {
	st := benchStore()
	if got := st.Stats().Entries; got != benchEntries {
		b.Fatalf("store holds %d entries", got)
	}
	return New(st, Config{Node: "node-a"})
}

// BenchmarkServiceMap1M builds the service map of 1,000,000 stored
// entries (50 workloads, 200 edges): without a filter, with one the
// summaries answer, and with one that needs whole entries (headers).
func BenchmarkServiceMap1M(b *testing.B) {
	s := benchServer(b)
	for _, tc := range []struct{ name, filter string }{
		{"all", ""},
		{"filter", `dst.namespace != "ns-3" && latency > duration("1ms")`},
		{"filter-headers", `request.headers["user-agent"].startsWith("Go")`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				resp, err := s.ServiceMap(context.Background(), &podwirev1.ServiceMapRequest{Filter: tc.filter})
				if err != nil {
					b.Fatal(err)
				}
				if resp.Scanned != benchEntries || resp.Matched == 0 || len(resp.Edges) < benchEdges/2 {
					b.Fatalf("scanned %d, matched %d, %d edges", resp.Scanned, resp.Matched, len(resp.Edges))
				}
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(benchEntries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
	// Two agents answering one plugin query at once, each over its own
	// 1M entries (here the same store, read by two servers), as on a
	// 2-core machine running both: the time is the slower answer's.
	b.Run("two-agents-parallel", func(b *testing.B) {
		s2 := New(benchStore(), Config{Node: "node-b"})
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			var wg sync.WaitGroup
			for _, srv := range []*Server{s, s2} {
				wg.Go(func() {
					if _, err := srv.ServiceMap(context.Background(), &podwirev1.ServiceMapRequest{}); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		reportCPU(b, cpu)
	})
}

// BenchmarkMetrics1M computes per-workload series over the same store, in
// 100 steps and in 3600 steps.
func BenchmarkMetrics1M(b *testing.B) {
	s := benchServer(b)
	for _, tc := range []struct {
		name    string
		step    time.Duration
		groupBy string
	}{
		{"workload-100steps", 0, "workload"},
		{"workload-3600steps", time.Second, "workload"},
		{"path-100steps", 0, "path"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := &podwirev1.MetricsRequest{From: timestamppb.New(benchT0), To: timestamppb.New(benchT0.Add(benchSpan)), GroupBy: tc.groupBy}
			if tc.step > 0 {
				req.Step = durationpb.New(tc.step)
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				resp, err := s.Metrics(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.Matched != benchEntries || len(resp.Series) == 0 {
					b.Fatalf("matched %d, %d series", resp.Matched, len(resp.Series))
				}
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(benchEntries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkValues lists values over the 1,000,000 entries: namespaces of
// either end, paths by prefix, and source addresses.
func BenchmarkValues(b *testing.B) {
	s := benchServer(b)
	for _, tc := range []struct{ name, field, prefix string }{
		{"namespace", "namespace", ""},
		{"path-prefix", "path", "/API/SVC-1"},
		{"src.ip", "src.ip", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				resp, err := s.Values(context.Background(), &podwirev1.ValuesRequest{Field: tc.field, Prefix: tc.prefix})
				if err != nil {
					b.Fatal(err)
				}
				if len(resp.Values) == 0 {
					b.Fatal("no values")
				}
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(benchEntries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
