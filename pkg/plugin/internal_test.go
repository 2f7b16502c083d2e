package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// serveStore serves a store of node with one entry on addr (host:port, port
// 0 for any); stopped at cleanup.
func serveStore(t *testing.T, node, addr, path string) (string, *store.Store) {
	t.Helper()
	st := store.New(store.Config{Node: node, MaxBytes: 64 << 20})
	st.Add(&entry.Entry{Time: time.Now().Add(-time.Minute), Protocol: entry.ProtoHTTP, Method: "GET", Path: path, Status: 200,
		Src: entry.Endpoint{IP: netip.MustParseAddr("10.0.0.1"), Port: 1000}, Dst: entry.Endpoint{IP: netip.MustParseAddr("10.0.0.2"), Port: 80}})
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv := server.New(st, server.Config{Node: node})
	srv.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(func() { srv.Close(); gs.Stop() })
	return lis.Addr().String(), st
}

func newTestDatasource(t *testing.T, jsonData map[string]any) *Datasource {
	t.Helper()
	js, _ := json.Marshal(jsonData)
	inst, err := NewDatasource(context.Background(), backend.DataSourceInstanceSettings{UID: "uid", Name: "Podwire", JSONData: js})
	if err != nil {
		t.Fatal(err)
	}
	d := inst.(*Datasource)
	if d.settingsErr != nil {
		t.Fatal(d.settingsErr)
	}
	t.Cleanup(d.Dispose)
	return d
}

func trafficPaths(t *testing.T, d *Datasource) ([]string, string) {
	t.Helper()
	qj, _ := json.Marshal(map[string]any{"queryType": "traffic"})
	resp, err := d.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: qj}}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Responses["A"]
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	f := r.Frames[0]
	fd, _ := f.FieldByName("path")
	var out []string
	for i := 0; i < fd.Len(); i++ {
		out = append(out, fmt.Sprint(fd.At(i)))
	}
	var notes []string
	if f.Meta != nil {
		for _, n := range f.Meta.Notices {
			notes = append(notes, n.Text)
		}
	}
	return out, strings.Join(notes, "\n")
}

// The agents behind a DNS name are its A/AAAA records, looked up again
// after the cache time: a new record is queried, a gone one's connection
// closed.
func TestDNSAgentsFollowRecords(t *testing.T) {
	addrA, _ := serveStore(t, "node-a", "127.0.0.1:0", "/from-a")
	_, port, _ := net.SplitHostPort(addrA)
	if _, _, err := func() (string, *store.Store, error) {
		l, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err != nil {
			return "", nil, err
		}
		l.Close()
		return "", nil, nil
	}(); err != nil {
		t.Fatalf("127.0.0.2:%s is taken: %v", port, err)
	}
	serveStore(t, "node-b", "127.0.0.2:"+port, "/from-b")

	d := newTestDatasource(t, map[string]any{"agentsDnsName": "podwire-agents.podwire.svc:" + port, "dnsCacheSeconds": 10})
	var mu sync.Mutex
	records := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	lookups := 0
	clock := time.Now()
	d.pool.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	d.pool.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if host != "podwire-agents.podwire.svc" {
			return nil, fmt.Errorf("looked up %q", host)
		}
		if records == nil {
			return nil, &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}
		}
		return records, nil
	}
	advance := func(r []netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		records = r
		clock = clock.Add(11 * time.Second)
	}

	if paths, _ := trafficPaths(t, d); strings.Join(paths, " ") != "/from-a" {
		t.Errorf("one record: %v", paths)
	}
	advance([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")})
	if paths, _ := trafficPaths(t, d); len(paths) != 2 {
		t.Errorf("two records: %v", paths)
	}
	d.pool.mu.Lock()
	b := d.pool.conns["127.0.0.2:"+port]
	d.pool.mu.Unlock()
	if b == nil {
		t.Fatal("no connection to the new record")
	}

	// A failed lookup keeps the agents found before, with a warning.
	advance(nil)
	paths, notes := trafficPaths(t, d)
	if len(paths) != 2 || !strings.Contains(notes, "does not resolve") || !strings.Contains(notes, "using the 2 agents found before") {
		t.Errorf("failed lookup: %v, notices %q", paths, notes)
	}

	advance([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if paths, _ := trafficPaths(t, d); strings.Join(paths, " ") != "/from-a" {
		t.Errorf("record gone: %v", paths)
	}
	if s := b.cc.GetState(); s != connectivity.Shutdown {
		t.Errorf("the gone record's connection is %v, want closed", s)
	}
	mu.Lock()
	n := lookups
	mu.Unlock()
	trafficPaths(t, d)
	mu.Lock()
	defer mu.Unlock()
	if lookups != n {
		t.Errorf("looked up again within the cache time")
	}
}

func TestDisposeClosesConnections(t *testing.T) {
	addr, _ := serveStore(t, "node-a", "127.0.0.1:0", "/x")
	d := newTestDatasource(t, map[string]any{"agents": []string{addr}})
	trafficPaths(t, d)
	cc := d.pool.order[0].cc
	d.Dispose()
	if s := cc.GetState(); s != connectivity.Shutdown {
		t.Errorf("connection %v after Dispose", s)
	}
	qj, _ := json.Marshal(map[string]any{"queryType": "traffic"})
	resp, _ := d.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: qj}}})
	if err := resp.Responses["A"].Error; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("query after Dispose: %v", err)
	}
}

// packets collects what a stream sends.
type packets struct {
	mu     sync.Mutex
	frames []*data.Frame
}

func (p *packets) Send(pk *backend.StreamPacket) error {
	var f data.Frame
	if err := json.Unmarshal(pk.Data, &f); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frames = append(p.frames, &f)
	return nil
}

func (p *packets) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.frames)
}

// A live tail ends when its context does, leaving no goroutine behind,
// also with an agent that cannot be reached (retrying) and one that
// streams.
func TestRunStreamLeavesNoGoroutines(t *testing.T) {
	addr, st := serveStore(t, "node-a", "127.0.0.1:0", "/x")
	d := newTestDatasource(t, map[string]any{"agents": []string{addr, "127.0.0.1:1"}})
	path, err := d.tails.path(queryTraffic, `path == "/live"`)
	if err != nil {
		t.Fatal(err)
	}
	// Let the gRPC machinery start its own long-lived goroutines first.
	trafficPaths(t, d)
	before := runtime.NumGoroutine()

	for round := 0; round < 3; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var pk packets
		done := make(chan error, 1)
		go func() { done <- d.RunStream(ctx, &backend.RunStreamRequest{Path: path}, backend.NewStreamSender(&pk)) }()
		for st.Stats().Watchers != 1 {
			time.Sleep(10 * time.Millisecond)
		}
		st.Add(&entry.Entry{Time: time.Now(), Protocol: entry.ProtoHTTP, Method: "GET", Path: "/live", Status: 200})
		for pk.count() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("RunStream: %v", err)
		}
	}
	// Dispose (new settings) ends a running stream too.
	done := make(chan error, 1)
	go func() {
		done <- d.RunStream(context.Background(), &backend.RunStreamRequest{Path: path}, backend.NewStreamSender(&packets{}))
	}()
	for st.Stats().Watchers != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	d.Dispose()
	if err := <-done; err != nil {
		t.Errorf("RunStream after Dispose: %v", err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before && st.Stats().Watchers == 0 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before; watchers %d\n%s", n, before, st.Stats().Watchers, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTailSamplesBeyondTheRate(t *testing.T) {
	var sent []*data.Frame
	tl := &tail{d: &Datasource{}, q: tailQuery{kind: queryTraffic}, in: make(chan *podwirev1.Entry, tailBuffer),
		send: func(f *data.Frame, _ data.FrameInclude) error { sent = append(sent, f); return nil }}
	clock := time.Unix(1000, 0)
	tl.now = func() time.Time { return clock }
	lim := &limiter{rate: TailRate, tokens: TailRate, last: clock}
	push := func(n int) {
		for i := 0; i < n; i++ {
			e := &podwirev1.Entry{Id: fmt.Sprint(i), Path: "/p"}
			select {
			case tl.in <- e:
			default:
				tl.overflow.Add(1)
			}
		}
	}
	total := 0
	for sec := 0; sec < 5; sec++ {
		for tick := 0; tick < 4; tick++ {
			push(500) // 2000 a second
			clock = clock.Add(tailFlush)
			if err := tl.flush(lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	skippedNoted := false
	for _, f := range sent {
		total += f.Rows()
		if f.Meta != nil {
			for _, n := range f.Meta.Notices {
				if strings.Contains(n.Text, "skipped") {
					skippedNoted = true
				}
			}
		}
	}
	// The first second may use the initial burst.
	if total > 6*TailRate || total < 4*TailRate {
		t.Errorf("%d entries sent in 5 s at 2000/s offered, want about %d/s", total, TailRate)
	}
	if !skippedNoted {
		t.Error("no notice about skipped entries")
	}
	tl.agentDropped.Add(7)
	tl.note("live tail: agent x: %v", errors.New("boom"))
	sent = nil
	clock = clock.Add(tailFlush)
	tl.flush(lim)
	if len(sent) != 1 || !strings.Contains(fmt.Sprint(sent[0].Meta.Notices), "dropped 7") || !strings.Contains(fmt.Sprint(sent[0].Meta.Notices), "boom") {
		t.Errorf("markers and errors not surfaced: %+v", sent)
	}
}

func TestSample(t *testing.T) {
	es := make([]*podwirev1.Entry, 10)
	for i := range es {
		es[i] = &podwirev1.Entry{Id: fmt.Sprint(i)}
	}
	got := sample(es, 3)
	if len(got) != 3 || got[0].Id != "0" || got[1].Id != "3" || got[2].Id != "6" {
		t.Errorf("sample: %v", got)
	}
	if len(sample(es, 20)) != 10 || len(sample(es, 0)) != 0 {
		t.Error("edges")
	}
}

func TestMetricsStep(t *testing.T) {
	from := time.Unix(0, 0)
	for _, tc := range []struct {
		interval, span, want time.Duration
	}{
		{15 * time.Second, time.Hour, 15 * time.Second},
		{0, time.Hour, time.Second},
		{100 * time.Millisecond, time.Minute, time.Second},
		{time.Second, 30 * 24 * time.Hour, 236 * time.Second}, // 2592000 s / 11000 = 235.6
	} {
		got := metricsStep(tc.interval, from, from.Add(tc.span))
		if got != tc.want {
			t.Errorf("interval %v over %v: step %v, want %v", tc.interval, tc.span, got, tc.want)
		}
		if steps := tc.span / got; steps > maxSteps {
			t.Errorf("%d steps", steps)
		}
	}
}

func TestTailPaths(t *testing.T) {
	r := newTailRegistry()
	long := `dst.namespace == "shop" && path.startsWith("/api/") && method in ["GET", "POST", "PUT"] && status >= 500 && latency > duration("250ms")`
	for _, expr := range []string{"", `status >= 500`, long} {
		p, err := r.path(queryLogs, expr)
		if err != nil {
			t.Fatal(err)
		}
		if len("ds/"+strings.Repeat("u", 40)+"/"+p) > 160 {
			t.Errorf("channel for %q is over 160 characters: %s", expr, p)
		}
		q, err := r.parse(p)
		if err != nil || q.filter != expr || q.kind != queryLogs {
			t.Errorf("%q -> %s -> %+v %v", expr, p, q, err)
		}
	}
	for _, bad := range []string{"tail/metrics/e", "nope", "tail/logs/hdeadbeef", "tail/logs/f!!"} {
		if _, err := r.parse(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	if _, err := r.path(queryLogs, `request.headers.exists(k, k.contains("x"))`); err == nil || !strings.Contains(err.Error(), "too costly") {
		t.Errorf("costly filter: %v", err)
	}
}

func TestSummaryCodecLeavesOutHeadersOnly(t *testing.T) {
	e := server.ToProto(benchEntries(1, "node-a", time.Minute, 3)[0], -1)
	e.Id, e.Notes, e.Incomplete = "node-a-1", []string{"gap"}, true
	e.Request.Trailers = map[string]string{"grpc-status": "0"}
	buf, err := summaryCodecV2.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got podwirev1.Entry
	if err := summaryCodecV2.Unmarshal(buf, &got); err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(e).(*podwirev1.Entry)
	for _, m := range []*podwirev1.Message{want.Request, want.Response} {
		m.Headers, m.HeaderList, m.Trailers = nil, nil, nil
	}
	if !proto.Equal(&got, want) {
		t.Errorf("decoded\n%v\nwant\n%v", &got, want)
	}
	if len(e.Request.Headers) == 0 {
		t.Fatal("test entry has no headers")
	}

	for _, w := range []*podwirev1.WatchResponse{{Entry: e}, {Dropped: 42}} {
		buf, err := summaryCodecV2.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		var gw podwirev1.WatchResponse
		if err := summaryCodecV2.Unmarshal(buf, &gw); err != nil {
			t.Fatal(err)
		}
		if gw.Dropped != w.Dropped || (w.Entry != nil) != (gw.Entry != nil) || (gw.Entry != nil && !proto.Equal(gw.Entry, want)) {
			t.Errorf("watch response %v decoded as %v", w, &gw)
		}
	}
	if err := summaryCodecV2.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05, 1})}, &got); err == nil {
		t.Error("truncated message decoded")
	}
}
