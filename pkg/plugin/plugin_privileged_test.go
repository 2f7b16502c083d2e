package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	"github.com/podwire/podwire/internal/plugintest"
)

// node is one capturing agent with its own cgroup subtree: a "node".
type node struct {
	name  string
	cg    *agenttest.Cgroup
	agent *agenttest.Agent
}

func startNode(t *testing.T, name string, opts daemon.Options) *node {
	t.Helper()
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-plugin-"+name+"-"))
	opts.CgroupRoot, opts.NodeName = cg.Path, name
	if opts.Version == "" {
		opts.Version = "v-" + name
	}
	return &node{name: name, cg: cg, agent: agenttest.StartAgent(t, opts)}
}

// startPeer starts a Go peer of agenttest (the test binary itself) in the
// node's cgroup; killed at cleanup.
func (n *node) startPeer(t *testing.T, role string) {
	t.Helper()
	cmd := n.cg.Peer(role)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && out.Len() > 0 {
			t.Logf("peer %s: %s", role, out.String())
		}
	})
}

// runPeer runs a Go peer to completion.
func (n *node) runPeer(t *testing.T, role string) {
	t.Helper()
	cmd := n.cg.Peer(role)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peer %s: %v\n%s", role, err, out)
	}
}

// curl fetches the URLs with curl in the node's cgroup.
func (n *node) curl(t *testing.T, urls ...string) {
	t.Helper()
	args := []string{"-sS"}
	for _, u := range urls {
		args = append(args, "-o", "/dev/null", u)
	}
	n.cg.Run(t, "curl", args...)
}

// twoNodes starts two capturing agents and real peers: node-a has curl
// against a Go HTTP server and redis-cli against redis-server; node-b has
// curl against another HTTP server and a grpc-go client against a grpc-go
// server. It waits until both agents have stored the traffic.
func twoNodes(t *testing.T) (a, b *node) {
	t.Helper()
	a, b = startNode(t, "node-a", daemon.Options{}), startNode(t, "node-b", daemon.Options{})

	httpA := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(t))
	a.startPeer(t, "http-server "+httpA)
	redisPort := agenttest.FreePort(t)
	a.cg.Start(t, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	httpB := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(t))
	b.startPeer(t, "http-server "+httpB)
	grpcB := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(t))
	b.startPeer(t, "grpc-server "+grpcB)
	for _, addr := range []string{httpA, fmt.Sprintf("127.0.0.1:%d", redisPort), httpB, grpcB} {
		agenttest.WaitListening(t, addr)
	}

	a.curl(t, "http://"+httpA+"/api/cart", "http://"+httpA+"/status/503", "http://"+httpA+"/status/200")
	rp := strconv.Itoa(redisPort)
	a.cg.Run(t, "redis-cli", "-p", rp, "SET", "cart:1", "apple")
	a.cg.Run(t, "redis-cli", "-p", rp, "GET", "cart:1")
	b.curl(t, "http://"+httpB+"/api/pay", "http://"+httpB+"/status/500")
	b.runPeer(t, "grpc-client "+grpcB+" 2")

	a.agent.WaitEntries(t, `http`, 3, 30*time.Second)
	a.agent.WaitEntries(t, `redis && method in ["SET", "GET"]`, 2, 30*time.Second)
	b.agent.WaitEntries(t, `http`, 2, 30*time.Second)
	b.agent.WaitEntries(t, `grpc`, 2, 30*time.Second)
	return a, b
}

func TestTwoCapturingAgents(t *testing.T) {
	agenttest.RequireRoot(t)
	a, b := twoNodes(t)
	p := plugintest.Start(t, plugintest.Options{})
	pc := dataSource(a.agent.Addr(), b.agent.Addr()).PluginContext()
	query := func(t *testing.T, model map[string]any) data.Frames {
		t.Helper()
		qq := q("A", model)
		qq.From, qq.To = time.Now().Add(-10*time.Minute), time.Now().Add(time.Minute)
		qq.Interval = time.Second
		return mustFrames(t, queryOne(t, p, pc, qq))
	}

	t.Run("CheckHealth", func(t *testing.T) {
		h, err := p.CheckHealth(ctxT(t), pc)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != backend.HealthStatusOk || !strings.HasPrefix(h.Message, "2 of 2 agents answer") {
			t.Fatalf("health %v %q", h.Status, h.Message)
		}
		d := details(t, h)
		for i, n := range []*node{a, b} {
			got := d.Agents[slices.IndexFunc(d.Agents, func(x agentHealth) bool { return x.Address == n.agent.Addr() })]
			if got.Node != n.name || got.Version != "v-"+n.name || got.Capture != "running" {
				t.Errorf("agent %d: %+v", i, got)
			}
			if _, ok := got.Counters["bpf_ringbuf_full"]; !ok {
				t.Errorf("agent %d: no bpf_ringbuf_full counter in %v", i, got.Counters)
			}
			if !strings.Contains(h.Message, n.name+" at "+n.agent.Addr()+" (version v-"+n.name+", capture running") {
				t.Errorf("message %q does not describe %s", h.Message, n.name)
			}
		}
	})

	t.Run("traffic", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "traffic", "filter": "http || grpc || redis"})
		f := frs[0]
		nodes := strings.Join(stringValues(field(t, f, "node")), " ")
		protos := strings.Join(stringValues(field(t, f, "protocol")), " ")
		paths := strings.Join(stringValues(field(t, f, "path")), " ")
		for _, w := range []string{"node-a", "node-b"} {
			if !strings.Contains(nodes, w) {
				t.Errorf("no entry from %s: %s", w, nodes)
			}
		}
		for _, w := range []string{"http", "grpc", "redis"} {
			if !strings.Contains(protos, w) {
				t.Errorf("no %s entry: %s", w, protos)
			}
		}
		for _, w := range []string{"/api/cart", "/api/pay", "/status/503", "cart:1", "/podwire.test.Echo/Unary"} {
			if !strings.Contains(paths, w) {
				t.Errorf("no %s: %s", w, paths)
			}
		}
		times := field(t, f, "time")
		for i := 1; i < times.Len(); i++ {
			if times.At(i).(time.Time).After(times.At(i - 1).(time.Time)) {
				t.Fatalf("row %d is newer than row %d: not newest first", i, i-1)
			}
		}
		if u := field(t, f, "latency").Config.Unit; u != "ms" {
			t.Errorf("latency unit %q", u)
		}
		if l := field(t, f, "id").Config.Links; len(l) == 0 || l[0].Internal == nil || l[0].Internal.Query == nil {
			t.Errorf("id links %+v", l)
		}
	})

	t.Run("logs", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "logs", "filter": "http"})
		f := frs[0]
		if f.Meta == nil || f.Meta.Type != data.FrameTypeLogLines {
			t.Fatalf("meta %+v", f.Meta)
		}
		bodies := strings.Join(stringValues(field(t, f, "body")), "\n")
		for _, w := range []string{"GET /api/cart -> 200", "GET /status/503 -> 503", "GET /api/pay -> 200"} {
			if !strings.Contains(bodies, w) {
				t.Errorf("no log line %q in\n%s", w, bodies)
			}
		}
		sev := strings.Join(stringValues(field(t, f, "severity")), " ")
		if !strings.Contains(sev, "error") {
			t.Errorf("severities %s: the 503 is not an error", sev)
		}
	})

	t.Run("serviceMap", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "serviceMap"})
		if len(frs) != 2 || frs[0].Name != "nodes" || frs[1].Name != "edges" {
			t.Fatalf("frames %v", frs)
		}
		for _, f := range frs {
			if f.Meta == nil || f.Meta.PreferredVisualization != data.VisTypeNodeGraph {
				t.Errorf("%s: meta %+v", f.Name, f.Meta)
			}
		}
		ids := strings.Join(stringValues(field(t, frs[0], "id")), " ")
		// Without Kubernetes, local sockets are grouped by their process's
		// cgroup: one group per node here, merged from both agents.
		for _, n := range []*node{a, b} {
			if w := "process:" + filepath.Base(n.cg.Path); !strings.Contains(ids, w) {
				t.Errorf("nodes %s: no %s", ids, w)
			}
		}
		if frs[1].Rows() < 2 {
			t.Errorf("%d edges, want one on each node", frs[1].Rows())
		}
		if u := field(t, frs[0], "mainstat").Config.Unit; u != "reqps" {
			t.Errorf("mainstat unit %q", u)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "metrics", "groupBy": "protocol"})
		var names []string
		for _, f := range frs {
			names = append(names, f.Name)
		}
		all := strings.Join(names, "|")
		for _, w := range []string{"http", "grpc", "redis"} {
			if !strings.Contains(all, w) {
				t.Errorf("no %s series: %s", w, all)
			}
		}
	})

	t.Run("values", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "values", "field": "protocol"})
		vals := stringValues(field(t, frs[0], "value"))
		for _, w := range []string{"http", "grpc", "redis"} {
			if !slices.Contains(vals, w) {
				t.Errorf("values %v lack %s", vals, w)
			}
		}
	})

	id := a.agent.Query(t, `redis && method == "SET"`, 1, 0)[0].Id
	t.Run("entry", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "entry", "entryId": id})
		var all []string
		for _, f := range frs {
			all = append(all, f.Name)
			for _, fd := range f.Fields {
				all = append(all, stringValues(fd)...)
			}
		}
		joined := strings.Join(all, " ")
		if !strings.Contains(joined, "cart:1") || !strings.Contains(joined, "SET") {
			t.Errorf("entry frames do not show the SET of cart:1: %s", joined)
		}
	})

	t.Run("resources", func(t *testing.T) {
		r, err := p.CallResource(ctxT(t), pc, "GET", "entries/"+id, nil)
		if err != nil || r.Status != 200 {
			t.Fatalf("entries: %v %+v", err, r)
		}
		var e map[string]any
		if err := json.Unmarshal(r.Body, &e); err != nil || e["id"] != id || e["node"] != "node-a" || e["protocol"] != "redis" {
			t.Errorf("entry %s: %v", r.Body, err)
		}
		r, err = p.CallResource(ctxT(t), pc, "GET", "complete?field=protocol&prefix=gr", nil)
		if err != nil || r.Status != 200 || !bytes.Contains(r.Body, []byte(`"value":"grpc"`)) {
			t.Errorf("complete: %v %d %s", err, r.Status, r.Body)
		}
		r, err = p.CallResource(ctxT(t), pc, "GET", "tag-values?key=method", nil)
		if err != nil || r.Status != 200 || !bytes.Contains(r.Body, []byte(`{"text":"GET"}`)) || !bytes.Contains(r.Body, []byte(`{"text":"SET"}`)) {
			t.Errorf("tag-values: %v %d %s", err, r.Status, r.Body)
		}
		r, err = p.CallResource(ctxT(t), pc, "POST", "validate", []byte(`{"filter":"redis && methd == \"GET\""}`))
		if err != nil || r.Status != 200 || !bytes.Contains(r.Body, []byte(`"column":10`)) {
			t.Errorf("validate: %v %d %s", err, r.Status, r.Body)
		}
		for _, path := range []string{"fields", "tag-keys"} {
			if r, err := p.CallResource(ctxT(t), pc, "GET", path, nil); err != nil || r.Status != 200 || !bytes.Contains(r.Body, []byte("dst.namespace")) {
				t.Errorf("%s: %v %+v", path, err, r)
			}
		}
	})

	t.Run("bad filter in one query", func(t *testing.T) {
		resp, err := p.QueryData(ctxT(t), pc,
			q("bad", map[string]any{"queryType": "traffic", "filter": `redis && methd == "GET"`}),
			q("good", map[string]any{"queryType": "traffic", "filter": `redis`}))
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.Responses["bad"].Error; e == nil || !strings.Contains(e.Error(), "filter:1:10:") {
			t.Errorf("bad query's error %v, want the position 1:10", e)
		}
		if rows := mustFrames(t, resp.Responses["good"])[0].Rows(); rows < 2 {
			t.Errorf("good query: %d rows", rows)
		}
	})

	t.Run("live tail", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "traffic", "filter": `path.startsWith("/live/")`, "live": true})
		path, ok := plugintest.ChannelPath(frs[0].Meta.Channel, "podwire-uid")
		if !ok {
			t.Fatalf("channel %q", frs[0].Meta.Channel)
		}
		if r, err := p.SubscribeStream(ctxT(t), pc, path); err != nil || r.Status != backend.SubscribeStreamStatusOK {
			t.Fatalf("subscribe: %v %v", r, err)
		}
		s, err := p.RunStream(ctxT(t), pc, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		waitAgentWatchers(t, 1, a, b)
		a.curl(t, "http://"+httpAddrOf(t, a)+"/live/a")
		b.curl(t, "http://"+httpAddrOf(t, b)+"/live/b")
		seen := map[string]bool{}
		for !seen["/live/a"] || !seen["/live/b"] {
			f, err := s.Next()
			if err != nil {
				t.Fatalf("stream: %v (seen %v)", err, seen)
			}
			for _, p := range stringValues(field(t, f, "path")) {
				seen[p] = true
			}
		}
		s.Close()
		waitAgentWatchers(t, 0, a, b)
	})

	// One agent goes away: the other's data still answers, with a warning.
	b.agent.Stop()
	t.Run("agent stopped", func(t *testing.T) {
		frs := query(t, map[string]any{"queryType": "traffic", "filter": "http"})
		nodes := strings.Join(stringValues(field(t, frs[0], "node")), " ")
		if !strings.Contains(nodes, "node-a") || strings.Contains(nodes, "node-b") {
			t.Errorf("nodes %s, want node-a's entries only", nodes)
		}
		n := noticeTexts(frs)
		if !strings.Contains(n, "warning") || !strings.Contains(n, b.agent.Addr()+" (node-b)") {
			t.Errorf("notices %q do not warn about node-b", n)
		}
		h, err := p.CheckHealth(ctxT(t), pc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Message, "1 of 2 agents answer") || !strings.Contains(h.Message, b.agent.Addr()) {
			t.Errorf("health %v %q", h.Status, h.Message)
		}
		for _, qt := range []map[string]any{{"queryType": "serviceMap"}, {"queryType": "metrics"}, {"queryType": "values", "field": "protocol"}} {
			frs := query(t, qt)
			if !strings.Contains(noticeTexts(frs), b.agent.Addr()) {
				t.Errorf("%s: no warning about node-b: %q", qt["queryType"], noticeTexts(frs))
			}
		}
	})
}

// httpAddrOf finds the node's HTTP server from its stored entries.
func httpAddrOf(t *testing.T, n *node) string {
	t.Helper()
	es := n.agent.Query(t, `http && path == "/api/cart" || path == "/api/pay"`, 1, 0)
	if len(es) == 0 {
		t.Fatal("no HTTP entry")
	}
	return fmt.Sprintf("%s:%d", es[0].GetDst().GetIp(), es[0].GetDst().GetPort())
}

// waitAgentWatchers waits until each node's agent serves n live watches.
func waitAgentWatchers(t *testing.T, n uint64, nodes ...*node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range nodes {
		for {
			got := nd.agent.Status(t).GetCounters()["watchers"]
			if got == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s serves %d live watches, want %d", nd.name, got, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
