package http1

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Verdict
	}{
		{"empty", "", NeedMore},
		{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Yes},
		{"get line only", "GET /x?y=1 HTTP/1.0\r\n", Yes},
		{"bare lf", "POST /api HTTP/1.1\n", Yes},
		{"webdav", "PROPFIND /dav/ HTTP/1.1\r\n", Yes},
		{"options star", "OPTIONS * HTTP/1.1\r\n", Yes},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\n", Yes},
		{"status", "HTTP/1.1 200 OK\r\n", Yes},
		{"status no reason", "HTTP/1.0 404\r\n", Yes},
		{"method prefix", "GE", NeedMore},
		{"method only", "DELETE", NeedMore},
		{"partial target", "GET /very/long/pa", NeedMore},
		{"partial version", "GET / HTTP/1.", NeedMore},
		{"partial crlf", "GET / HTTP/1.1\r", NeedMore},
		{"partial status", "HTTP/1.1 20", NeedMore},
		{"status prefix", "HTT", NeedMore},
		{"unknown method", "FETCH / HTTP/1.1\r\n", No},
		{"lower-case method", "get / HTTP/1.1\r\n", No},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", No},
		{"http2 version", "GET / HTTP/2.0\r\n", No},
		{"tls", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", No},
		{"redis", "*1\r\n$4\r\nPING\r\n", No},
		{"status 600", "HTTP/1.1 600 X\r\n", No},
		{"space in version", "GET / HTTP/1.1 \r\n", No},
		{"no target", "GET  HTTP/1.1\r\n", No},
		{"line break in target", "GET /a\r\nb HTTP/1.1\r\n", No},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Detect([]byte(tc.in)); got != tc.want {
				t.Errorf("Detect(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDetectDoesNotAllocate(t *testing.T) {
	ins := [][]byte{
		[]byte("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"),
		[]byte("HTTP/1.1 200 OK\r\n"),
		[]byte("MKCALEN"),
		[]byte("\x16\x03\x01"),
	}
	n := testing.AllocsPerRun(100, func() {
		for _, b := range ins {
			Detect(b)
		}
	})
	if n != 0 {
		t.Errorf("Detect allocates %v times per run", n)
	}
}

// TestTimes checks the times an entry carries when its messages span
// several deliveries: Time is the request's first byte, Latency runs to
// the response's last byte.
func TestTimes(t *testing.T) {
	var got []*entry.Entry
	h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, func(e *entry.Entry) { got = append(got, e) }, nil)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h.Data(tcp.Egress, []byte("POST /t HTTP/1.1\r\nContent-"), at(1))
	h.Data(tcp.Egress, []byte("Length: 2\r\n\r\nh"), at(3))
	h.Data(tcp.Egress, []byte("i"), at(4))
	h.Data(tcp.Ingress, []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"), at(20))
	h.Data(tcp.Ingress, []byte("c"), at(57))
	if len(got) != 1 {
		t.Fatalf("got %d entries, want 1", len(got))
	}
	e := got[0]
	if !e.Time.Equal(at(1)) || !e.Request.Start.Equal(at(1)) || !e.Request.End.Equal(at(4)) {
		t.Errorf("request times %v..%v, entry time %v; want %v..%v", e.Request.Start, e.Request.End, e.Time, at(1), at(4))
	}
	if !e.Response.Start.Equal(at(20)) || !e.Response.End.Equal(at(57)) {
		t.Errorf("response times %v..%v, want %v..%v", e.Response.Start, e.Response.End, at(20), at(57))
	}
	if e.Latency != 56*time.Millisecond {
		t.Errorf("latency %v, want 56ms", e.Latency)
	}
}

// TestNoCopyOfInput checks that entries do not alias the bytes handed to
// Data, which are only valid during the call.
func TestNoCopyOfInput(t *testing.T) {
	var got []*entry.Entry
	h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, func(e *entry.Entry) { got = append(got, e) }, nil)
	req := []byte("POST /p?q=1 HTTP/1.1\r\nX-A: b\r\nContent-Length: 3\r\n\r\nxyz")
	resp := []byte("HTTP/1.1 200 OK\r\nX-B: c\r\nContent-Length: 2\r\n\r\nok")
	h.Data(tcp.Egress, req, time.Now())
	h.Data(tcp.Ingress, resp, time.Now())
	for i := range req {
		req[i] = '#'
	}
	for i := range resp {
		resp[i] = '#'
	}
	if len(got) != 1 {
		t.Fatalf("got %d entries", len(got))
	}
	e := got[0]
	if e.Method != "POST" || e.Path != "/p?q=1" || e.Request.Header("x-a") != "b" || string(e.Request.Body) != "xyz" ||
		e.Response.Header("x-b") != "c" || string(e.Response.Body) != "ok" {
		t.Errorf("entry changed with the input buffers: %s %+v %+v", summary(e), e.Request, e.Response)
	}
}

// fuzzLimits are small so that the fuzzer reaches them.
var fuzzLimits = Config{MaxBodyBytes: 64, MaxHeaderBytes: 512, MaxPending: 4}

type fuzzOp struct {
	client bool
	gap    bool
	data   []byte
}

// fuzzPlan cuts the two streams into interleaved deliveries, some lost.
func fuzzPlan(seed uint64, c2s, s2c []byte) (ops []fuzzOp, gaps bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for len(c2s) > 0 || len(s2c) > 0 {
		client := len(s2c) == 0 || (len(c2s) > 0 && rng.IntN(2) == 0)
		src := &s2c
		if client {
			src = &c2s
		}
		n := 1 + rng.IntN(min(len(*src), 300))
		op := fuzzOp{client: client, data: (*src)[:n], gap: rng.IntN(24) == 0}
		gaps = gaps || op.gap
		*src = (*src)[n:]
		ops = append(ops, op)
	}
	return ops, gaps
}

// fuzzRun plays the plan, splitting deliveries further when rng is set,
// and checks the memory bounds after every call.
func fuzzRun(t *testing.T, role tcp.Role, ops []fuzzOp, rng *rand.Rand) []string {
	var entries []*entry.Entry
	seen := map[*entry.Entry]bool{}
	info := &tcp.ConnInfo{ID: 1, Local: testLocal, Remote: testRemote, Role: role}
	stats := new(Stats)
	c := New(fuzzLimits, info, func(e *entry.Entry) {
		if seen[e] {
			t.Fatalf("entry emitted twice: %s", summary(e))
		}
		seen[e] = true
		entries = append(entries, e)
	}, stats).(*conn)
	now := time.Unix(1000, 0)
	dir := func(client bool) tcp.Dir {
		if client == (role != tcp.RoleServer) {
			return tcp.Egress
		}
		return tcp.Ingress
	}
	bufLimit := max(fuzzLimits.MaxHeaderBytes+1, maxChunkLine+1, 2*syncKeep)
	check := func() {
		if len(c.pend) > fuzzLimits.MaxPending {
			t.Fatalf("%d requests pending, limit %d", len(c.pend), fuzzLimits.MaxPending)
		}
		for i := range c.h {
			h := &c.h[i]
			if len(h.buf) > bufLimit {
				t.Fatalf("direction %d buffers %d bytes", i, len(h.buf))
			}
			if h.msg != nil && !bodyWithin(h.msg.Body, fuzzLimits.MaxBodyBytes) {
				t.Fatalf("body in progress holds %d bytes", cap(h.msg.Body))
			}
		}
	}
	for _, op := range ops {
		now = now.Add(time.Millisecond)
		if op.gap {
			c.Gap(dir(op.client), len(op.data), now)
			check()
			continue
		}
		b := op.data
		for len(b) > 0 {
			n := len(b)
			if rng != nil {
				n = 1 + rng.IntN(len(b))
			}
			now = now.Add(time.Microsecond)
			c.Data(dir(op.client), b[:n], now)
			check()
			b = b[n:]
		}
	}
	c.End(tcp.EndFIN, now.Add(time.Millisecond))
	if len(c.pend) != 0 {
		t.Fatalf("%d requests still pending after End", len(c.pend))
	}
	if got := stats.Entries.Load(); got != uint64(len(entries)) {
		t.Fatalf("stats count %d entries, %d emitted", got, len(entries))
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		if e.Request == nil || e.Method == "" {
			t.Fatalf("entry without a request: %+v", e)
		}
		for _, m := range []*entry.Message{e.Request, e.Response} {
			if m != nil && !bodyWithin(m.Body, fuzzLimits.MaxBodyBytes) {
				t.Fatalf("%s: kept %d body bytes", summary(e), cap(m.Body))
			}
		}
		out[i] = summary(e)
	}
	return out
}

// FuzzHTTP1 feeds arbitrary bytes both ways, cut at random and sometimes
// lost. It checks that nothing panics, memory stays within the limits,
// every entry is emitted once, and, without losses, that how the bytes
// are cut does not change the entries.
func FuzzHTTP1(f *testing.F) {
	for _, s := range loadScripts(f) {
		var c2s, s2c []byte
		for _, st := range s.steps {
			switch {
			case st.kind == 'd' && st.client:
				c2s = append(c2s, st.data...)
			case st.kind == 'd':
				s2c = append(s2c, st.data...)
			}
		}
		f.Add(uint8(s.role), c2s, s2c, uint64(len(c2s)))
	}
	f.Add(uint8(0), []byte("GET / HTTP/1.1\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\n\r\nbody until close"), uint64(3))
	f.Fuzz(func(t *testing.T, role uint8, c2s, s2c []byte, seed uint64) {
		r := tcp.Role(role % 3)
		ops, _ := fuzzPlan(seed, c2s, s2c)
		whole := fuzzRun(t, r, ops, nil)
		split := fuzzRun(t, r, ops, rand.New(rand.NewPCG(seed, 11)))
		if !equal(whole, split) {
			t.Fatalf("entries depend on how the bytes are cut:\nwhole: %q\nsplit: %q", whole, split)
		}
	})
}

// TestResponseOlderThanRequest checks that a response that started before
// the oldest waiting request (its own request was lost, and the capture
// delivered it late) is dropped rather than paired with that request.
func TestResponseOlderThanRequest(t *testing.T) {
	var got []*entry.Entry
	stats := new(Stats)
	h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, func(e *entry.Entry) { got = append(got, e) }, stats)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h.Data(tcp.Egress, []byte("GE"), at(1))
	h.Gap(tcp.Egress, 20, at(2)) // the rest of "GET /a" is lost
	h.Data(tcp.Egress, []byte("GET /b HTTP/1.1\r\n\r\n"), at(10))
	h.Data(tcp.Ingress, []byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"), at(5))
	h.Data(tcp.Ingress, []byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"), at(11))
	h.End(tcp.EndFIN, at(12))
	if len(got) != 1 || summary(got[0]) != `GET /b -> 200 v1.1 req=""/0 resp="b"/1` {
		for _, e := range got {
			t.Log(summary(e))
		}
		t.Fatalf("got %d entries, want GET /b answered by its own response", len(got))
	}
	if n := stats.Orphans.Load(); n != 1 {
		t.Errorf("%d orphan responses, want 1", n)
	}
}
