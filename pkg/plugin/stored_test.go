package plugin_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/internal/plugintest"
)

// These tests run the plugin executable against real agent API servers
// over stores of constructed entries: no capture, so no root needed. The
// privileged tests do the same with capturing agents and real peers.

// shopAgents starts two agents: node-a saw web -> cart, node-b cart -> pay.
func shopAgents(t *testing.T) (a, b *storeAgent) {
	web, cart, pay := ident("web", "Deployment", "web"), ident("cart", "StatefulSet", "cart"), ident("pay", "Deployment", "pay")
	a = startStoreAgent(t, "node-a", "",
		httpEntry(10*time.Minute, web, cart, "GET", "/api/cart", 200, 3*time.Millisecond),
		httpEntry(5*time.Minute, web, cart, "POST", "/api/checkout", 503, 120*time.Millisecond))
	b = startStoreAgent(t, "node-b", "",
		httpEntry(7*time.Minute, cart, pay, "POST", "/pay", 200, 40*time.Millisecond),
		httpEntry(2*time.Hour, cart, pay, "POST", "/old", 200, 40*time.Millisecond))
	return a, b
}

func TestStoredQueries(t *testing.T) {
	a, b := shopAgents(t)
	p := plugintest.Start(t, plugintest.Options{})
	pc := dataSource(a.Addr, b.Addr).PluginContext()

	t.Run("health", func(t *testing.T) {
		h, err := p.CheckHealth(ctxT(t), pc)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != backend.HealthStatusOk || !strings.HasPrefix(h.Message, "2 of 2 agents answer") {
			t.Errorf("health %v %q", h.Status, h.Message)
		}
		d := details(t, h)
		if d.Answering != 2 || d.Total != 2 || d.Agents[0].Version != "v-test" {
			t.Errorf("details %+v", d)
		}
		for _, n := range []string{"node-a", "node-b"} {
			if !strings.Contains(h.Message, n) {
				t.Errorf("health message does not name %s: %q", n, h.Message)
			}
		}
	})

	t.Run("traffic", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "traffic"})))
		if len(frs) != 1 {
			t.Fatalf("%d frames", len(frs))
		}
		f := frs[0]
		paths := stringValues(field(t, f, "path"))
		if want := "/api/checkout /pay /api/cart"; strings.Join(paths, " ") != want {
			t.Errorf("paths %v, want %s (newest first, both agents, within the range)", paths, want)
		}
		if u := field(t, f, "latency").Config.Unit; u != "ms" {
			t.Errorf("latency unit %q", u)
		}
		id := field(t, f, "id")
		if id.Config == nil || len(id.Config.Links) == 0 || id.Config.Links[0].Internal == nil ||
			id.Config.Links[0].Internal.DatasourceUID != "podwire-uid" {
			t.Errorf("id field has no internal link to this data source: %+v", id.Config)
		}
		if n := noticeTexts(frs); n != "" {
			t.Errorf("notices: %s", n)
		}
	})

	t.Run("limit after merge", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "traffic", "limit": 2})))
		if paths := stringValues(field(t, frs[0], "path")); strings.Join(paths, " ") != "/api/checkout /pay" {
			t.Errorf("paths %v, want the newest two of both agents", paths)
		}
		if !strings.Contains(noticeTexts(frs), "newest 2") {
			t.Errorf("no notice that the limit cut the answer: %q", noticeTexts(frs))
		}
	})

	t.Run("logs", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "logs", "filter": "failed"})))
		f := frs[0]
		if f.Meta == nil || f.Meta.Type != data.FrameTypeLogLines {
			t.Fatalf("meta %+v, want type log-lines", f.Meta)
		}
		bodies := stringValues(field(t, f, "body"))
		if len(bodies) != 1 || !strings.Contains(bodies[0], "/api/checkout") || !strings.Contains(bodies[0], "503") {
			t.Errorf("bodies %q", bodies)
		}
		field(t, f, "timestamp")
		field(t, f, "severity")
		field(t, f, "labels")
	})

	t.Run("serviceMap", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "serviceMap"})))
		if len(frs) != 2 {
			t.Fatalf("%d frames, want nodes and edges", len(frs))
		}
		nodes, edges := frs[0], frs[1]
		for _, f := range frs {
			if f.Meta == nil || f.Meta.PreferredVisualization != data.VisTypeNodeGraph {
				t.Errorf("frame %s meta %+v, want nodeGraph", f.Name, f.Meta)
			}
		}
		ids := strings.Join(stringValues(field(t, nodes, "id")), " ")
		for _, w := range []string{"shop/web", "shop/cart", "shop/pay"} {
			if !strings.Contains(ids, w) {
				t.Errorf("nodes %s lack %s (merged from both agents)", ids, w)
			}
		}
		field(t, nodes, "mainstat")
		field(t, nodes, "arc__failed")
		if n := edges.Rows(); n != 2 {
			t.Errorf("%d edges, want web->cart and cart->pay", n)
		}
		field(t, edges, "source")
		field(t, edges, "target")
	})

	t.Run("metrics", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "metrics", "groupBy": "workload"})))
		if len(frs) == 0 {
			t.Fatal("no frames")
		}
		var names []string
		for _, f := range frs {
			names = append(names, f.Name)
			if len(f.Fields) != 2 || f.Fields[0].Type() != data.FieldTypeTime {
				t.Errorf("frame %s: want a time and a value field", f.Name)
			}
		}
		joined := strings.Join(names, "|")
		for _, w := range []string{"cart", "pay"} {
			if !strings.Contains(joined, w) {
				t.Errorf("no series for %s: %s", w, joined)
			}
		}
	})

	t.Run("metrics, one metric for an alert rule", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "metrics", "groupBy": "workload", "metric": "latencyP95"})))
		groups := map[string]bool{}
		for _, f := range frs {
			v := f.Fields[1]
			if v.Name != "latencyP95" || v.Config == nil || v.Config.Unit != "ms" {
				t.Errorf("frame %s: field %s, want only latencyP95 in ms", f.Name, v.Name)
			}
			groups[v.Labels["workload"]] = true
		}
		if !groups["cart"] || !groups["pay"] || len(frs) != len(groups) {
			t.Errorf("%d frames for groups %v, want one each for cart and pay", len(frs), groups)
		}
		r := queryOne(t, p, pc, q("A", map[string]any{"queryType": "metrics", "metric": "p95"}))
		if r.Error == nil || !strings.Contains(r.Error.Error(), `metric "p95": want one of all, requestsPerSecond`) {
			t.Errorf("unknown metric: error %v", r.Error)
		}
	})

	t.Run("values", func(t *testing.T) {
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "values", "field": "dst.workload"})))
		vals := stringValues(field(t, frs[0], "value"))
		if strings.Join(vals, " ") != "cart pay" && strings.Join(vals, " ") != "pay cart" {
			t.Errorf("values %v, want cart and pay from both agents", vals)
		}
	})

	t.Run("entry", func(t *testing.T) {
		first := a.newestID(t)
		frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "entry", "entryId": first})))
		if len(frs) < 3 {
			t.Fatalf("%d frames for one entry", len(frs))
		}
	})

	t.Run("bad filter is that query's error", func(t *testing.T) {
		resp, err := p.QueryData(ctxT(t), pc,
			q("bad", map[string]any{"queryType": "traffic", "filter": "status >= \n  nope"}),
			q("good", map[string]any{"queryType": "traffic", "filter": "status >= 500"}))
		if err != nil {
			t.Fatal(err)
		}
		bad := resp.Responses["bad"]
		if bad.Error == nil || !strings.Contains(bad.Error.Error(), "filter:2:") || bad.Status != backend.StatusBadRequest {
			t.Errorf("bad query: status %v error %v, want a bad request with the line", bad.Status, bad.Error)
		}
		good := mustFrames(t, resp.Responses["good"])
		if paths := stringValues(field(t, good[0], "path")); len(paths) != 1 || paths[0] != "/api/checkout" {
			t.Errorf("good query: %v", paths)
		}
	})

	t.Run("unknown queryType", func(t *testing.T) {
		r := queryOne(t, p, pc, q("A", map[string]any{"queryType": "nonsense"}))
		if r.Error == nil || !strings.Contains(r.Error.Error(), `unknown queryType "nonsense"`) {
			t.Errorf("error %v", r.Error)
		}
	})
}

func TestStoredAgentDown(t *testing.T) {
	a, b := shopAgents(t)
	p := plugintest.Start(t, plugintest.Options{})
	pc := dataSource(a.Addr, b.Addr).PluginContext()

	// An agent that accepts connections and never answers is late: a
	// warning after timeoutSeconds, the others' data shown.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	slow := plugintest.DataSource{UID: "slow", JSONData: map[string]any{"agents": []string{a.Addr, mute.Addr().String()}, "timeoutSeconds": 1}}
	frs := mustFrames(t, queryOne(t, p, slow.PluginContext(), q("A", map[string]any{"queryType": "traffic"})))
	if rows := frs[0].Rows(); rows != 2 || !strings.Contains(noticeTexts(frs), "agent "+mute.Addr().String()+": no answer within 1s") {
		t.Errorf("late agent: %d rows, notices %q", rows, noticeTexts(frs))
	}

	mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "traffic"})))
	b.Stop()

	frs = mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "traffic"})))
	if paths := stringValues(field(t, frs[0], "path")); strings.Join(paths, " ") != "/api/checkout /api/cart" {
		t.Errorf("paths %v, want node-a's", paths)
	}
	n := noticeTexts(frs)
	if !strings.Contains(n, "warning") || !strings.Contains(n, b.Addr) || !strings.Contains(n, "node-b") {
		t.Errorf("notices %q do not warn about node-b at %s", n, b.Addr)
	}
	h, err := p.CheckHealth(ctxT(t), pc)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != backend.HealthStatusOk || !strings.HasPrefix(h.Message, "1 of 2 agents answer") || !strings.Contains(h.Message, b.Addr) {
		t.Errorf("health %v %q", h.Status, h.Message)
	}
}

func TestStoredHealthMessages(t *testing.T) {
	a := startStoreAgent(t, "node-a", "s3cret-token")
	p := plugintest.Start(t, plugintest.Options{})
	for _, tc := range []struct {
		name   string
		ds     plugintest.DataSource
		status backend.HealthStatus
		want   string
	}{
		{"no agents", plugintest.DataSource{JSONData: map[string]any{}}, backend.HealthStatusError, "no agents configured"},
		{"bad address", plugintest.DataSource{JSONData: map[string]any{"agents": []string{"agent-1"}}}, backend.HealthStatusError, `agents[0] "agent-1": want host:port`},
		{"dns name does not resolve", plugintest.DataSource{JSONData: map[string]any{"agentsDnsName": "podwire-agents.onion:7700"}}, backend.HealthStatusError, "does not resolve"},
		{"connection refused", plugintest.DataSource{JSONData: map[string]any{"agents": []string{"127.0.0.1:1"}}}, backend.HealthStatusError, "connection refused"},
		{"token missing", plugintest.DataSource{JSONData: map[string]any{"agents": []string{a.Addr}}}, backend.HealthStatusError, "refused the token"},
		{"token wrong", plugintest.DataSource{JSONData: map[string]any{"agents": []string{a.Addr}}, Secure: map[string]string{"token": "wrong"}}, backend.HealthStatusError, "refused the token"},
		{"token right", plugintest.DataSource{JSONData: map[string]any{"agents": []string{a.Addr}}, Secure: map[string]string{"token": "s3cret-token"}}, backend.HealthStatusOk, "1 of 1 agents answer"},
		{"TLS to a plaintext agent", plugintest.DataSource{JSONData: map[string]any{"agents": []string{a.Addr}, "tls": true}}, backend.HealthStatusError, "TLS mismatch: the agent serves plaintext"},
		{"bad CA", plugintest.DataSource{JSONData: map[string]any{"agents": []string{a.Addr}, "tls": true}, Secure: map[string]string{"tlsCACert": "not a cert"}}, backend.HealthStatusError, "tlsCACert: not PEM data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ds.UID = strings.ReplaceAll(tc.name, " ", "-")
			h, err := p.CheckHealth(ctxT(t), tc.ds.PluginContext())
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tc.status || !strings.Contains(h.Message, tc.want) {
				t.Errorf("health %v %q, want %v containing %q", h.Status, h.Message, tc.status, tc.want)
			}
		})
	}
	if strings.Contains(p.Logs(), "s3cret-token") {
		t.Error("the plugin logged the token")
	}
}

func TestStoredResources(t *testing.T) {
	a, b := shopAgents(t)
	p := plugintest.Start(t, plugintest.Options{})
	pc := dataSource(a.Addr, b.Addr).PluginContext()
	call := func(t *testing.T, method, path, body string) (int, string) {
		t.Helper()
		r, err := p.CallResource(ctxT(t), pc, method, path, []byte(body))
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if ct := strings.Join(r.Headers["Content-Type"], ""); !strings.Contains(ct, "application/json") {
			t.Errorf("%s %s: content type %q", method, path, ct)
		}
		return r.Status, string(r.Body)
	}
	bID := b.newestID(t)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     []string
	}{
		{"entry", "GET", "entries/" + bID, "", 200, []string{`"id":"` + bID + `"`, `"node":"node-b"`, `"body":"{\"item\":\"apple\",\"qty\":2}"`}},
		{"entry not found", "GET", "entries/node-a-nope-1", "", 404, []string{"not found on any agent"}},
		{"validate ok", "POST", "validate", `{"filter":"status >= 500"}`, 200, []string{`{"ok":true}`}},
		{"validate bad", "POST", "validate", `{"filter":"status >= \"x\" &&"}`, 200, []string{`"ok":false`, `"line":1`, `"column":`, `"offset":`}},
		{"validate not json", "POST", "validate", `status`, 400, []string{`"error":`}},
		{"fields", "GET", "fields", "", 200, []string{`"name":"dst.namespace"`, `"type":"string"`, `"doc":`, `"example":`}},
		{"complete", "GET", "complete?field=dst.workload&prefix=ca", "", 200, []string{`{"values":[{"value":"cart","count":2}]}`}},
		{"complete without field", "GET", "complete", "", 400, []string{"missing field"}},
		{"tag keys", "GET", "tag-keys", "", 200, []string{`{"text":"dst.namespace","type":"string"}`, `{"text":"status","type":"number"}`}},
		{"tag values", "GET", "tag-values?key=src.workload", "", 200, []string{`{"text":"web"}`, `{"text":"cart"}`}},
		{"tag values bad key", "GET", "tag-values?key=nope", "", 400, []string{`"error":`}},
		{"unknown", "GET", "nope", "", 404, []string{"no resource"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d; body %s", status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %s lacks %s", body, w)
				}
			}
			if !json.Valid([]byte(body)) {
				t.Errorf("body is not JSON: %s", body)
			}
		})
	}
}

func TestStoredLiveTail(t *testing.T) {
	a, b := shopAgents(t)
	p := plugintest.Start(t, plugintest.Options{})
	pc := dataSource(a.Addr, b.Addr).PluginContext()
	frs := mustFrames(t, queryOne(t, p, pc, q("A", map[string]any{"queryType": "logs", "filter": `path.startsWith("/live")`, "live": true})))
	ch := ""
	if frs[0].Meta != nil {
		ch = frs[0].Meta.Channel
	}
	path, ok := plugintest.ChannelPath(ch, "podwire-uid")
	if !ok {
		t.Fatalf("channel %q is not ds/podwire-uid/...", ch)
	}
	sub, err := p.SubscribeStream(ctxT(t), pc, path)
	if err != nil || sub.Status != backend.SubscribeStreamStatusOK {
		t.Fatalf("subscribe: %v %v", sub, err)
	}
	s, err := p.RunStream(ctxT(t), pc, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitWatchers(t, 1, a, b)

	web, cart := ident("web", "Deployment", "web"), ident("cart", "StatefulSet", "cart")
	a.Store.Add(httpEntry(0, web, cart, "GET", "/live/a", 200, time.Millisecond))
	a.Store.Add(httpEntry(0, web, cart, "GET", "/not-live", 200, time.Millisecond))
	b.Store.Add(httpEntry(0, web, cart, "GET", "/live/b", 200, time.Millisecond))
	seen := map[string]bool{}
	for !seen["/live/a"] || !seen["/live/b"] {
		f, err := s.Next()
		if err != nil {
			t.Fatalf("stream: %v (seen %v)", err, seen)
		}
		if f.Meta == nil || f.Meta.Type != data.FrameTypeLogLines {
			t.Fatalf("live frame meta %+v", f.Meta)
		}
		for _, body := range stringValues(field(t, f, "body")) {
			for _, p := range []string{"/live/a", "/live/b", "/not-live"} {
				if strings.Contains(body, p+" ") {
					seen[p] = true
				}
			}
		}
	}
	if seen["/not-live"] {
		t.Error("an entry the filter does not match was streamed")
	}

	// More than the rate cap at once: sampled, with a notice.
	for i := 0; i < 2000; i++ {
		a.Store.Add(httpEntry(0, web, cart, "GET", "/live/burst", 200, time.Millisecond))
	}
	skipped := false
	for !skipped {
		f, err := s.Next()
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		skipped = strings.Contains(noticeTexts(data.Frames{f}), "skipped")
		if f.Rows() > 200 {
			t.Errorf("one frame of %d rows: beyond the cap of 200 a second", f.Rows())
		}
	}

	s.Close()
	waitWatchers(t, 0, a, b)
}

// waitWatchers waits until each agent serves n live watches.
func waitWatchers(t *testing.T, n uint64, agents ...*storeAgent) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range agents {
		for uint64(a.Store.Stats().Watchers) != n {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s serves %d watches, want %d", a.Addr, a.Store.Stats().Watchers, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// An agent whose service map hit its bound on nodes says so: the panel
// warns that its numbers are short instead of silently showing less.
func TestStoredServiceMapTruncated(t *testing.T) {
	var es []*entry.Entry
	// Each entry a new client workload: one more node than an agent keeps.
	cart := ident("cart", "Deployment", "cart")
	for i := 0; i <= server.MaxMapNodes; i++ {
		es = append(es, httpEntry(time.Duration(i)*time.Millisecond, ident(fmt.Sprintf("job-%05d", i), "Job", ""), cart, "GET", "/api/cart", 200, time.Millisecond))
	}
	a := startStoreAgent(t, "node-a", "", es...)
	p := plugintest.Start(t, plugintest.Options{})
	frs := mustFrames(t, queryOne(t, p, dataSource(a.Addr).PluginContext(), q("A", map[string]any{"queryType": "serviceMap"})))
	n := noticeTexts(frs)
	// One node more than the bound, plus cart: two clients' entries left out.
	if !strings.Contains(n, "agent "+a.Addr+" hit its bound on nodes: 2 matching entries are not counted") {
		t.Errorf("notices %q do not say the agent's map was cut", n)
	}
	if rows := frs[0].Rows(); rows != server.MaxMapNodes {
		t.Errorf("%d nodes, want the agent's bound %d", rows, server.MaxMapNodes)
	}
}
