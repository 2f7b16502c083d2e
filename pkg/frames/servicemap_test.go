package frames

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/podwire/podwire/agent/filter"
	"github.com/podwire/podwire/agent/server"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func fieldByName(t *testing.T, f *data.Frame, name string) *data.Field {
	t.Helper()
	fd, _ := f.FieldByName(name)
	if fd == nil {
		t.Fatalf("frame %q has no field %q", f.Name, name)
	}
	return fd
}

func TestServiceMapNodeGraphContract(t *testing.T) {
	m := MergeServiceMap(sampleMaps())
	nodes, edges := ServiceMap(m, "workload", t0, t0.Add(10*time.Second), testLinks)
	for _, f := range []*data.Frame{nodes, edges} {
		if f.Meta == nil || f.Meta.PreferredVisualization != data.VisTypeNodeGraph {
			t.Errorf("frame %q: meta %+v, want nodeGraph", f.Name, f.Meta)
		}
	}
	if nodes.Name != "nodes" || edges.Name != "edges" {
		t.Errorf("frame names %q %q", nodes.Name, edges.Name)
	}
	for _, name := range []string{"id", "title", "subtitle", "mainstat", "secondarystat", "arc__success", "arc__failed", "detail__namespace"} {
		fieldByName(t, nodes, name)
	}
	for _, name := range []string{"id", "source", "target", "mainstat", "secondarystat", "thickness"} {
		fieldByName(t, edges, name)
	}

	// Arcs sum to 1 for every node that answered requests, and are both 0
	// for pure clients.
	ok, bad, reqs := fieldByName(t, nodes, "arc__success"), fieldByName(t, nodes, "arc__failed"), fieldByName(t, nodes, "detail__requests")
	for i := range nodes.Rows() {
		s := ok.At(i).(float64) + bad.At(i).(float64)
		if reqs.At(i).(uint64) > 0 && math.Abs(s-1) > 1e-9 {
			t.Errorf("node %v: arcs sum to %v, want 1", nodes.Fields[0].At(i), s)
		}
		if reqs.At(i).(uint64) == 0 && s != 0 {
			t.Errorf("client node %v: arcs sum to %v, want 0", nodes.Fields[0].At(i), s)
		}
	}
	if ok.Config.Color["fixedColor"] != "green" || bad.Config.Color["fixedColor"] != "red" {
		t.Errorf("arc colours %v %v", ok.Config.Color, bad.Config.Color)
	}

	// cart answered 150 requests over 10 s, 25 failed: 15 req/s, 1/6 red.
	idx := map[string]int{}
	for i := range nodes.Rows() {
		idx[nodes.Fields[0].At(i).(string)] = i
	}
	c := idx["shop/cart"]
	if got := fieldByName(t, nodes, "mainstat").At(c).(float64); got != 15 {
		t.Errorf("cart mainstat %v, want 15", got)
	}
	if got := bad.At(c).(float64); math.Abs(got-25.0/150) > 1e-9 {
		t.Errorf("cart failed arc %v, want %v", got, 25.0/150)
	}
	p95 := fieldByName(t, nodes, "secondarystat").At(c).(*float64)
	if p95 == nil || math.Abs(*p95-m.Nodes[c].Latency.Quantile(0.95)) > 0.0005 {
		t.Errorf("cart p95 %v, want merged histogram's %v", p95, m.Nodes[c].Latency.Quantile(0.95))
	}
	if p := fieldByName(t, nodes, "secondarystat").At(idx["process:curl"]).(*float64); p != nil {
		t.Errorf("client p95 %v, want null", *p)
	}

	// The edge of 50 requests, 20 failed: 40 % errors.
	for i := range edges.Rows() {
		if edges.Fields[1].At(i) == "process:curl" {
			if got := fieldByName(t, edges, "secondarystat").At(i).(float64); got != 40 {
				t.Errorf("curl edge errors %v %%, want 40", got)
			}
			if got := fieldByName(t, edges, "detail__protocols").At(i).(string); got != "http 45, grpc 5" {
				t.Errorf("protocols %q", got)
			}
		}
		th := fieldByName(t, edges, "thickness").At(i).(float64)
		if th < 1 || th > 5 {
			t.Errorf("thickness %v outside [1, 5]", th)
		}
	}
}

// traffic builds entries from src to dst endpoints for filter checks.
func traffic(src, dst *podwirev1.Endpoint) *podwirev1.Entry {
	return &podwirev1.Entry{Id: "x", Time: ts(t0), Protocol: "http", Src: src, Dst: dst, Method: "GET", Path: "/"}
}

func TestLinkFilters(t *testing.T) {
	// Odd names: quotes, backslashes, "${", newlines and non-ASCII must
	// survive quoting and still select exactly the right entries.
	odd := &podwirev1.Endpoint{Ip: "10.9.9.9", Port: 80, Pod: "odd-0", Namespace: `we"ird\ns`,
		Workload: "${__value.raw}\n\tä", Service: `svc"x`}
	ext := &podwirev1.Endpoint{Ip: "2001:db8::7", Port: 443}
	ext4 := &podwirev1.Endpoint{Ip: "198.51.100.7", Port: 40000}
	proc := &podwirev1.Endpoint{Ip: "127.0.0.1", Port: 5000, Process: `my "tool"`}
	endpoints := []*podwirev1.Endpoint{web, cart, redis, odd, ext, ext4, proc}

	// node is how an agent groups an endpoint under groupBy.
	node := func(p *podwirev1.Endpoint, groupBy string) *Node {
		name := map[string]string{"workload": p.Workload, "service": p.Service, "pod": p.Pod, "namespace": p.Namespace}[groupBy]
		switch {
		case name != "" && groupBy == "namespace":
			return &Node{ID: name, Name: name, Namespace: name, Kind: "Namespace"}
		case name != "":
			return &Node{ID: p.Namespace + "/" + name, Name: name, Namespace: p.Namespace, Kind: "Deployment"}
		case p.Process != "":
			return &Node{ID: "process:" + p.Process, Name: p.Process, Kind: "process"}
		}
		return &Node{ID: p.Ip, Name: p.Ip, Kind: "external"}
	}
	for _, groupBy := range []string{"workload", "service", "namespace", "pod"} {
		t.Run(groupBy, func(t *testing.T) {
			for _, s := range endpoints {
				for _, d := range endpoints {
					sn, dn := node(s, groupBy), node(d, groupBy)
					expr := EdgeFilter(sn, dn, groupBy)
					f, err := filter.Compile(expr)
					if err != nil {
						t.Fatalf("edge filter %q does not compile: %v", expr, err)
					}
					if strings.Contains(expr, "${") {
						t.Errorf("edge filter %q would be interpolated by Grafana", expr)
					}
					for _, s2 := range endpoints {
						for _, d2 := range endpoints {
							want := node(s2, groupBy).ID == sn.ID && node(d2, groupBy).ID == dn.ID
							if got := f.Match(server.FromProto(traffic(s2, d2))); got != want {
								t.Errorf("filter %q on %s -> %s: match %v, want %v",
									expr, node(s2, groupBy).ID, node(d2, groupBy).ID, got, want)
							}
						}
					}
				}
				for _, side := range []string{"src", "dst"} {
					expr := NodeFilter(node(s, groupBy), side, groupBy)
					f, err := filter.Compile(expr)
					if err != nil {
						t.Fatalf("node filter %q does not compile: %v", expr, err)
					}
					e := traffic(s, s)
					if !f.Match(server.FromProto(e)) {
						t.Errorf("node filter %q does not match its own node", expr)
					}
				}
			}
		})
	}
}

func TestLinkFiltersAddressWithPort(t *testing.T) {
	// Agents that group external peers by ip:port get filters on both.
	n := &Node{ID: "[2001:db8::7]:443", Kind: "external"}
	expr := NodeFilter(n, "dst", "workload")
	f, err := filter.Compile(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	in := traffic(web, &podwirev1.Endpoint{Ip: "2001:db8::7", Port: 443})
	out := traffic(web, &podwirev1.Endpoint{Ip: "2001:db8::7", Port: 80})
	if !f.Match(server.FromProto(in)) || f.Match(server.FromProto(out)) {
		t.Errorf("filter %q: matches port 443 %v, port 80 %v", expr, f.Match(server.FromProto(in)), f.Match(server.FromProto(out)))
	}
}

func TestServiceMapLinks(t *testing.T) {
	nodes, edges := ServiceMap(MergeServiceMap(sampleMaps()), "workload", t0, t0.Add(time.Minute), testLinks)
	check := func(f *data.Frame, filterField string) {
		id := fieldByName(t, f, "id")
		found := false
		for _, l := range id.Config.Links {
			if l.Internal == nil || l.Internal.DatasourceUID != "podwire-uid" {
				t.Errorf("%s link %+v is not internal to the data source", f.Name, l)
				continue
			}
			q := l.Internal.Query.(map[string]any)
			if q["queryType"] != "traffic" {
				t.Errorf("%s link query %v", f.Name, q)
			}
			if q["filter"] == "${__data.fields."+filterField+"}" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no link to the filter in field %q", f.Name, filterField)
		}
		fd := fieldByName(t, f, filterField)
		for i := range fd.Len() {
			expr := fd.At(i).(string)
			if _, err := filter.Compile(expr); err != nil {
				t.Errorf("%s filter %q: %v", f.Name, expr, err)
			}
			if strings.Contains(expr, "${") {
				t.Errorf("%s filter %q would be interpolated by Grafana", f.Name, expr)
			}
		}
	}
	check(nodes, "filterTo")
	check(nodes, "filterFrom")
	check(edges, "filter")
}

func TestServiceMapEmptyAndNil(t *testing.T) {
	for _, m := range []*Map{nil, {}, MergeServiceMap(nil)} {
		nodes, edges := ServiceMap(m, "", t0, t0, testLinks)
		if nodes.Rows() != 0 || edges.Rows() != 0 {
			t.Errorf("empty map gave %d nodes %d edges", nodes.Rows(), edges.Rows())
		}
	}
}
