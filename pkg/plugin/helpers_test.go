package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"google.golang.org/grpc"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/store"
	"github.com/podwire/podwire/internal/plugintest"
)

// now is the tests' "now": stored entries sit just before it.
var now = time.Now().UTC().Truncate(time.Second)

// ident is a pod identity in namespace shop.
func ident(workload, kind, service string) *entry.Identity {
	return &entry.Identity{Pod: workload + "-7d9c", Namespace: "shop", Workload: workload, WorkloadKind: kind, Service: service}
}

// httpEntry is an HTTP exchange from src to dst at now minus ago.
func httpEntry(ago time.Duration, src, dst *entry.Identity, method, path string, status int32, latency time.Duration) *entry.Entry {
	at := now.Add(-ago)
	return &entry.Entry{
		Time:        at,
		Protocol:    entry.ProtoHTTP,
		HTTPVersion: "1.1",
		Src:         entry.Endpoint{IP: netip.MustParseAddr("10.1.0.5"), Port: 40000, Who: src},
		Dst:         entry.Endpoint{IP: netip.MustParseAddr("10.1.0.9"), Port: 8080, Who: dst},
		Method:      method,
		Path:        path,
		Status:      status,
		Failed:      status >= 500,
		Latency:     latency,
		Request: &entry.Message{
			Headers:   []entry.Header{{Name: "host", Value: "cart"}, {Name: "authorization", Value: "Bearer secret-in-header"}},
			Body:      []byte(`{"item":"apple","qty":2}`),
			BodyBytes: 24,
			Start:     at,
			End:       at.Add(100 * time.Microsecond),
		},
		Response: &entry.Message{
			Headers:   []entry.Header{{Name: "content-type", Value: "text/plain"}},
			Body:      []byte("ok\n"),
			BodyBytes: 3,
			Start:     at.Add(latency / 2),
			End:       at.Add(latency),
		},
	}
}

// storeAgent is a real agent API server over a store, on loopback.
type storeAgent struct {
	Addr  string
	Store *store.Store
	gs    *grpc.Server
}

// startStoreAgent serves a store of node holding es, with the token when
// not empty; stopped at cleanup.
func startStoreAgent(tb testing.TB, node, token string, es ...*entry.Entry) *storeAgent {
	tb.Helper()
	st := store.New(store.Config{Node: node, MaxBytes: 512 << 20, WatchBuffer: 4096})
	for _, e := range es {
		st.Add(e)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	gs := grpc.NewServer(server.ServerOptions(token, nil)...)
	srv := server.New(st, server.Config{Node: node, Version: "v-test", Token: token})
	srv.Register(gs)
	go gs.Serve(lis)
	a := &storeAgent{Addr: lis.Addr().String(), Store: st, gs: gs}
	tb.Cleanup(func() { srv.Close(); gs.Stop() })
	return a
}

// newestID is the id of the newest stored entry.
func (a *storeAgent) newestID(tb testing.TB) string {
	tb.Helper()
	id := ""
	a.Store.Query(store.Query{Limit: 1}, func(e *entry.Entry) bool { id = e.ID; return false })
	if id == "" {
		tb.Fatal("empty store")
	}
	return id
}

// Stop stops serving, as when the agent's node goes away.
func (a *storeAgent) Stop() { a.gs.Stop() }

// dataSource is a data source over the agents at addrs.
func dataSource(addrs ...string) plugintest.DataSource {
	return plugintest.DataSource{UID: "podwire-uid", Name: "Podwire", JSONData: map[string]any{"agents": addrs, "timeoutSeconds": 5}}
}

// q is a query with a refId over the last hour.
func q(refID string, model map[string]any) plugintest.Query {
	return plugintest.Query{RefID: refID, Model: model, From: now.Add(-time.Hour), To: now.Add(time.Minute), Interval: time.Minute}
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// queryOne runs one query and returns its response, failing on a
// transport error.
func queryOne(tb testing.TB, p *plugintest.Plugin, pc backend.PluginContext, query plugintest.Query) backend.DataResponse {
	tb.Helper()
	resp, err := p.QueryData(ctxT(tb), pc, query)
	if err != nil {
		tb.Fatalf("QueryData: %v", err)
	}
	r, ok := resp.Responses[query.RefID]
	if !ok {
		tb.Fatalf("no response for %s", query.RefID)
	}
	return r
}

// mustFrames fails unless r has no error, and returns its frames.
func mustFrames(tb testing.TB, r backend.DataResponse) data.Frames {
	tb.Helper()
	if r.Error != nil {
		tb.Fatalf("query error: %v", r.Error)
	}
	return r.Frames
}

// field returns the frame's field by name, failing when absent.
func field(tb testing.TB, f *data.Frame, name string) *data.Field {
	tb.Helper()
	fd, i := f.FieldByName(name)
	if i < 0 {
		var names []string
		for _, x := range f.Fields {
			names = append(names, x.Name)
		}
		tb.Fatalf("frame %q has no field %q (fields: %v)", f.Name, name, names)
	}
	return fd
}

// strings0 returns a field's values as strings.
func stringValues(f *data.Field) []string {
	out := make([]string, f.Len())
	for i := range out {
		v, _ := f.ConcreteAt(i)
		out[i] = fmt.Sprint(v)
	}
	return out
}

// noticeTexts joins the frames' notices.
func noticeTexts(frs data.Frames) string {
	var b strings.Builder
	for _, f := range frs {
		if f.Meta == nil {
			continue
		}
		for _, n := range f.Meta.Notices {
			b.WriteString(n.Severity.String() + ": " + n.Text + "\n")
		}
	}
	return b.String()
}

// healthDetails decodes CheckHealth's JSON details.
type healthDetails struct {
	Answering int           `json:"answering"`
	Total     int           `json:"total"`
	Agents    []agentHealth `json:"agents"`
}

// agentHealth is one agent in healthDetails.
type agentHealth struct {
	Address  string            `json:"address"`
	OK       bool              `json:"ok"`
	Error    string            `json:"error"`
	Node     string            `json:"node"`
	Version  string            `json:"version"`
	Capture  string            `json:"capture"`
	Counters map[string]uint64 `json:"counters"`
}

func details(tb testing.TB, r *backend.CheckHealthResult) healthDetails {
	tb.Helper()
	var d healthDetails
	if err := json.Unmarshal(r.JSONDetails, &d); err != nil {
		tb.Fatalf("health details %s: %v", r.JSONDetails, err)
	}
	return d
}
