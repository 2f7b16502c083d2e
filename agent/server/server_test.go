package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/server/servertest"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func newEntry(at time.Time, method, path string, status int32) *entry.Entry {
	return &entry.Entry{
		Time:     at,
		Protocol: entry.ProtoHTTP,
		Method:   method,
		Path:     path,
		Status:   status,
		Failed:   status >= 500,
		Latency:  3 * time.Millisecond,
		Request:  &entry.Message{Headers: []entry.Header{{Name: "host", Value: "cart"}}, Body: []byte("request body"), BodyBytes: 12, Start: at},
		Response: &entry.Message{Headers: []entry.Header{{Name: "content-type", Value: "text/plain"}}, Body: []byte("response body"), BodyBytes: 13, Start: at.Add(time.Millisecond)},
		Node:     "node-a",
	}
}

func newStore(buffer int) *store.Store {
	return store.New(store.Config{Node: "node-a", MaxBytes: 256 << 20, WatchBuffer: buffer})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// watch starts a Watch and waits until the agent has the watcher in place.
func watch(t *testing.T, ctx context.Context, c podwirev1.AgentClient, req *podwirev1.WatchRequest) grpc.ServerStreamingClient[podwirev1.WatchResponse] {
	t.Helper()
	stream, err := c.Watch(ctx, req)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if md, _ := stream.Header(); md == nil {
		_, err := stream.Recv()
		t.Fatalf("Watch ended before it started: %v", err)
	}
	return stream
}

func TestWatch(t *testing.T) {
	st := newStore(64)
	c := servertest.Client(t, servertest.Start(t, st, server.Config{Node: "node-a"}))
	ctx := ctxT(t)
	stream := watch(t, ctx, c, &podwirev1.WatchRequest{Filter: `method == "GET"`, MaxBodyBytes: 4})

	st.Add(newEntry(t0, "POST", "/a", 200))
	st.Add(newEntry(t0, "GET", "/b", 200))
	st.Add(newEntry(t0, "GET", "/c", 500))
	for _, want := range []string{"/b", "/c"} {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		e := resp.GetEntry()
		if e.GetPath() != want || e.GetMethod() != "GET" {
			t.Fatalf("got %s %s, want GET %s", e.GetMethod(), e.GetPath(), want)
		}
		if e.GetRequest().GetBody() != "requ" || !e.GetRequest().GetTruncated() {
			t.Errorf("request body %q truncated %v, want cut to 4 bytes", e.GetRequest().GetBody(), e.GetRequest().GetTruncated())
		}
		if e.GetId() == "" {
			t.Errorf("entry without id")
		}
	}
}

func TestWatchDroppedMarker(t *testing.T) {
	st := newStore(4)
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	ctx := ctxT(t)
	stream := watch(t, ctx, c, &podwirev1.WatchRequest{MaxBodyBytes: -1})

	// Big bodies fill the stream's flow-control window quickly; the reader
	// does not read while they are added, so the watcher must drop.
	const n = 400
	big := strings.Repeat("x", 64<<10)
	for i := range n {
		e := newEntry(t0.Add(time.Duration(i)), "GET", fmt.Sprintf("/%d", i), 200)
		e.Response.Body = []byte(big)
		st.Add(e)
	}
	var got, dropped uint64
	markerFirst := false
	for got+dropped < n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv after %d entries and %d dropped: %v", got, dropped, err)
		}
		if resp.GetEntry() != nil {
			got++
			continue
		}
		if resp.GetDropped() == 0 {
			t.Fatalf("response with neither entry nor dropped count")
		}
		if dropped == 0 && got < n {
			markerFirst = true
		}
		dropped += resp.GetDropped()
	}
	if dropped == 0 || !markerFirst {
		t.Fatalf("got %d entries, %d dropped: want a dropped marker", got, dropped)
	}
	if got+dropped != n {
		t.Errorf("entries %d + dropped %d != %d added", got, dropped, n)
	}
	s, err := c.Status(ctx, &podwirev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetCounters()["watch_dropped"] != dropped {
		t.Errorf("watch_dropped = %d, want %d", s.GetCounters()["watch_dropped"], dropped)
	}
}

func TestWatchEndsWhenClientGoesAway(t *testing.T) {
	st := newStore(8)
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	ctx, cancel := context.WithCancel(ctxT(t))
	watch(t, ctx, c, &podwirev1.WatchRequest{})
	if w := st.Stats().Watchers; w != 1 {
		t.Fatalf("watchers = %d, want 1", w)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for st.Stats().Watchers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("watcher still registered after the client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func query(t *testing.T, c podwirev1.AgentClient, req *podwirev1.QueryRequest) ([]*podwirev1.Entry, error) {
	t.Helper()
	stream, err := c.Query(ctxT(t), req)
	if err != nil {
		return nil, err
	}
	var out []*podwirev1.Entry
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func paths(es []*podwirev1.Entry) string {
	var p []string
	for _, e := range es {
		p = append(p, e.GetPath())
	}
	return strings.Join(p, " ")
}

func TestQuery(t *testing.T) {
	st := newStore(8)
	for i := range 10 {
		status := int32(200)
		if i%3 == 0 {
			status = 503
		}
		st.Add(newEntry(t0.Add(time.Duration(i)*time.Second), "GET", fmt.Sprintf("/%d", i), status))
	}
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	ts := func(s int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(s) * time.Second)) }
	tests := []struct {
		name string
		req  *podwirev1.QueryRequest
		want string
	}{
		{"all newest first", &podwirev1.QueryRequest{}, "/9 /8 /7 /6 /5 /4 /3 /2 /1 /0"},
		{"limit", &podwirev1.QueryRequest{Limit: 3}, "/9 /8 /7"},
		{"filter", &podwirev1.QueryRequest{Filter: "status >= 500"}, "/9 /6 /3 /0"},
		{"filter and limit", &podwirev1.QueryRequest{Filter: "failed", Limit: 2}, "/9 /6"},
		{"from inclusive", &podwirev1.QueryRequest{From: ts(7)}, "/9 /8 /7"},
		{"to exclusive", &podwirev1.QueryRequest{To: ts(2)}, "/1 /0"},
		{"range", &podwirev1.QueryRequest{From: ts(3), To: ts(6)}, "/5 /4 /3"},
		{"range and filter", &podwirev1.QueryRequest{From: ts(3), To: ts(7), Filter: `path != "/4"`}, "/6 /5 /3"},
		{"nothing", &podwirev1.QueryRequest{Filter: `method == "PUT"`}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := query(t, c, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if paths(got) != tc.want {
				t.Errorf("got %q, want %q", paths(got), tc.want)
			}
		})
	}

	t.Run("bodies", func(t *testing.T) {
		got, err := query(t, c, &podwirev1.QueryRequest{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if b := got[0].GetResponse().GetBody(); b != "" || got[0].GetResponse().GetBodyBytes() != 13 {
			t.Errorf("max_body_bytes 0: body %q, body_bytes %d", b, got[0].GetResponse().GetBodyBytes())
		}
		got, err = query(t, c, &podwirev1.QueryRequest{Limit: 1, MaxBodyBytes: 100})
		if err != nil {
			t.Fatal(err)
		}
		if b := got[0].GetResponse().GetBody(); b != "response body" {
			t.Errorf("max_body_bytes 100: body %q", b)
		}
	})

	t.Run("omit headers", func(t *testing.T) {
		got, err := query(t, c, &podwirev1.QueryRequest{Limit: 1, OmitHeaders: true, MaxBodyBytes: 100})
		if err != nil {
			t.Fatal(err)
		}
		req, resp := got[0].GetRequest(), got[0].GetResponse()
		if len(req.GetHeaders())+len(req.GetHeaderList())+len(resp.GetHeaders())+len(resp.GetHeaderList()) != 0 {
			t.Errorf("omit_headers: headers sent: %v %v", req.GetHeaders(), resp.GetHeaders())
		}
		if resp.GetBody() != "response body" || resp.GetBodyBytes() != 13 || resp.GetStart() == nil {
			t.Errorf("omit_headers lost more than headers: body %q, %d bytes, start %v", resp.GetBody(), resp.GetBodyBytes(), resp.GetStart())
		}
		full, err := query(t, c, &podwirev1.QueryRequest{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(full[0].GetRequest().GetHeaders()) == 0 {
			t.Error("without omit_headers the headers are missing")
		}
	})

	t.Run("default limit", func(t *testing.T) {
		st := newStore(8)
		for i := range server.DefaultLimit + 5 {
			st.Add(newEntry(t0.Add(time.Duration(i)*time.Millisecond), "GET", "/", 200))
		}
		c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
		got, err := query(t, c, &podwirev1.QueryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != server.DefaultLimit {
			t.Errorf("got %d entries, want %d", len(got), server.DefaultLimit)
		}
	})
}

func TestBadFilter(t *testing.T) {
	st := newStore(8)
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	check := func(t *testing.T, err error) {
		t.Helper()
		s, _ := status.FromError(err)
		if s.Code() != codes.InvalidArgument {
			t.Fatalf("code %v (%v), want InvalidArgument", s.Code(), err)
		}
		if !strings.HasPrefix(s.Message(), "filter:1:") || !strings.Contains(s.Message(), "^") {
			t.Errorf("message %q: want position and caret", s.Message())
		}
	}
	const bad = `status >= "x" &&`
	t.Run("query", func(t *testing.T) {
		_, err := query(t, c, &podwirev1.QueryRequest{Filter: bad})
		check(t, err)
	})
	t.Run("watch", func(t *testing.T) {
		stream, err := c.Watch(ctxT(t), &podwirev1.WatchRequest{Filter: bad})
		if err == nil {
			_, err = stream.Recv()
		}
		check(t, err)
	})
	t.Run("position", func(t *testing.T) {
		_, err := query(t, c, &podwirev1.QueryRequest{Filter: "http && nosuchfield"})
		if s := status.Convert(err).Message(); !strings.HasPrefix(s, "filter:1:9: ") {
			t.Errorf("message %q, want it to start with filter:1:9:", s)
		}
	})
}

func TestGetEntry(t *testing.T) {
	st := newStore(8)
	e := newEntry(t0, "GET", "/x", 200)
	e.Response.Body = []byte(strings.Repeat("y", 100000))
	st.Add(e)
	c := servertest.Client(t, servertest.Start(t, st, server.Config{Node: "node-a"}))
	ctx := ctxT(t)

	got, err := c.GetEntry(ctx, &podwirev1.GetEntryRequest{Id: e.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetId() != e.ID || len(got.GetResponse().GetBody()) != 100000 {
		t.Errorf("got id %q with a %d-byte body", got.GetId(), len(got.GetResponse().GetBody()))
	}

	_, err = c.GetEntry(ctx, &podwirev1.GetEntryRequest{Id: "node-a-999999"})
	if s := status.Convert(err); s.Code() != codes.NotFound || !strings.Contains(s.Message(), "node-a-999999") {
		t.Errorf("unknown id: %v, want NotFound naming the id", err)
	}
	_, err = c.GetEntry(ctx, &podwirev1.GetEntryRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty id: %v, want InvalidArgument", err)
	}
}

func TestStatus(t *testing.T) {
	st := newStore(8)
	st.Add(newEntry(t0, "GET", "/x", 200))
	cfg := server.Config{
		Node:    "node-a",
		Version: "v1.2.3",
		Status: func() *podwirev1.StatusResponse {
			return &podwirev1.StatusResponse{
				Kernel:   "6.1.0",
				Capture:  "running",
				Programs: []*podwirev1.Program{{Name: "podwire_skb_egress", Type: "cgroup_skb"}},
				Counters: map[string]uint64{"packets": 42},
			}
		},
	}
	c := servertest.Client(t, servertest.Start(t, st, cfg))
	s, err := c.Status(ctxT(t), &podwirev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetNode() != "node-a" || s.GetVersion() != "v1.2.3" || s.GetKernel() != "6.1.0" || s.GetCapture() != "running" {
		t.Errorf("status = %v", s)
	}
	cn := s.GetCounters()
	if cn["packets"] != 42 || cn["entries"] != 1 || cn["store_bytes"] == 0 {
		t.Errorf("counters = %v", cn)
	}
	for _, name := range []string{"store_evictions", "watch_dropped", "store_added"} {
		if _, ok := cn[name]; !ok {
			t.Errorf("counter %s missing", name)
		}
	}
	if s.GetStarted() == nil || s.GetUptime() == nil || len(s.GetPrograms()) != 1 {
		t.Errorf("started/uptime/programs missing: %v", s)
	}
}

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return false }

func TestToken(t *testing.T) {
	st := newStore(8)
	st.Add(newEntry(t0, "GET", "/x", 200))
	addr := servertest.Start(t, st, server.Config{Token: "s3cret"})
	tests := []struct {
		name string
		auth string // "" sends none
		ok   bool
	}{
		{"none", "", false},
		{"wrong", "Bearer nope", false},
		{"not bearer", "Basic s3cret", false},
		{"right", "Bearer s3cret", true},
		{"lower-case scheme", "bearer s3cret", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []grpc.DialOption
			if tc.auth != "" {
				opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(tc.auth)))
			}
			c := servertest.Client(t, addr, opts...)
			want := codes.Unauthenticated
			if tc.ok {
				want = codes.OK
			}
			_, err := c.Status(ctxT(t), &podwirev1.StatusRequest{})
			if status.Code(err) != want {
				t.Errorf("Status: %v, want %v", err, want)
			}
			_, err = query(t, c, &podwirev1.QueryRequest{})
			if status.Code(err) != want {
				t.Errorf("Query: %v, want %v", err, want)
			}
		})
	}
}

// TestTokenWithoutInterceptor checks that Config.Token holds on a server
// built without ServerOptions.
func TestTokenWithoutInterceptor(t *testing.T) {
	st := newStore(8)
	g := grpc.NewServer()
	server.New(st, server.Config{Token: "s3cret"}).Register(g)
	lis := listen(t)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := podwirev1.NewAgentClient(cc)
	if _, err := c.Status(ctxT(t), &podwirev1.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Bearer s3cret")
	if _, err := c.Status(ctx, &podwirev1.StatusRequest{}); err != nil {
		t.Errorf("with token: %v", err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func TestCloseEndsWatch(t *testing.T) {
	st := newStore(8)
	g := grpc.NewServer()
	srv := server.New(st, server.Config{})
	srv.Register(g)
	lis := listen(t)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	stream := watch(t, ctxT(t), servertest.Client(t, lis.Addr().String()), &podwirev1.WatchRequest{})
	srv.Close()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	_, err := stream.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Recv after Close: %v, want Unavailable", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop did not return after Close")
	}
}

func TestWatchRefusesCostlyFilter(t *testing.T) {
	st := newStore(64)
	c := servertest.Client(t, servertest.Start(t, st, server.Config{}))
	stream, err := c.Watch(ctxT(t), &podwirev1.WatchRequest{Filter: `request.headers.exists(k, request.body.contains(k))`})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "too costly") {
		t.Fatalf("Watch with a costly filter: %v, want InvalidArgument saying it is too costly", err)
	}
	// The same filter is fine for a query.
	q, err := c.Query(ctxT(t), &podwirev1.QueryRequest{Filter: `request.headers.exists(k, request.body.contains(k))`})
	if err == nil {
		_, err = q.Recv()
	}
	if err != nil && err != io.EOF {
		t.Fatalf("Query with the same filter: %v", err)
	}
}
