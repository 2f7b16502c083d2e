package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/server/servertest"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// base is "now" for the commands under test; entries sit just before it.
var base = time.Now().UTC().Truncate(time.Second)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs a command line in-process with env as the whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	c := newCLI(&out, &errb, func(k string) string { return env[k] })
	c.loc = time.UTC
	c.now = func() time.Time { return base }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := c.run(ctx, args)
	return result{out.String(), errb.String(), code}
}

// testEntry is an HTTP entry at base minus ago.
func testEntry(ago time.Duration, node, method, path string, status int32) *entry.Entry {
	at := base.Add(-ago)
	return &entry.Entry{
		Time:        at,
		Protocol:    entry.ProtoHTTP,
		HTTPVersion: "1.1",
		Src:         entry.Endpoint{IP: netip.MustParseAddr("10.1.0.5"), Port: 40000, Who: &entry.Identity{Pod: "web-7d9c", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment"}},
		Dst:         entry.Endpoint{IP: netip.MustParseAddr("10.1.0.9"), Port: 8080, Who: &entry.Identity{Pod: "cart-0", Namespace: "shop", Workload: "cart", WorkloadKind: "StatefulSet", Service: "cart"}},
		Method:      method,
		Path:        path,
		Status:      status,
		Failed:      status >= 500,
		Latency:     2500 * time.Microsecond,
		Request: &entry.Message{
			Headers:   []entry.Header{{Name: "host", Value: "cart"}, {Name: "content-type", Value: "application/json"}},
			Body:      []byte(`{"item":"apple","qty":2}`),
			BodyBytes: 24,
			Start:     at,
			End:       at.Add(100 * time.Microsecond),
		},
		Response: &entry.Message{
			Headers:   []entry.Header{{Name: "content-type", Value: "text/plain"}},
			Body:      []byte("ok\n"),
			BodyBytes: 3,
			Start:     at.Add(2 * time.Millisecond),
			End:       at.Add(2500 * time.Microsecond),
		},
		Node: node,
	}
}

// startAgent serves a store holding entries and returns its address.
func startAgent(t *testing.T, node string, cfg server.Config, entries ...*entry.Entry) (string, *store.Store) {
	t.Helper()
	st := store.New(store.Config{Node: node, MaxBytes: 64 << 20, WatchBuffer: 256})
	for _, e := range entries {
		st.Add(e)
	}
	if cfg.Node == "" {
		cfg.Node = node
	}
	return servertest.Start(t, st, cfg), st
}

// unreachable is an address nothing listens on.
const unreachable = "127.0.0.1:1"

func TestQueryCommand(t *testing.T) {
	addr, _ := startAgent(t, "node-a", server.Config{},
		testEntry(10*time.Minute, "node-a", "GET", "/api/cart", 200),
		testEntry(5*time.Minute, "node-a", "POST", "/api/checkout", 503),
		testEntry(1*time.Minute, "node-a", "GET", "/healthz", 200),
		testEntry(30*time.Minute, "node-a", "GET", "/old", 200),
	)

	t.Run("table", func(t *testing.T) {
		r := runCLI(t, nil, "query", "--agent", addr)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 4 {
			t.Fatalf("want header and 3 rows (default --since 15m):\n%s", r.stdout)
		}
		for i, want := range []string{"TIME", "/healthz", "/api/checkout", "/api/cart"} {
			if !strings.Contains(lines[i], want) {
				t.Errorf("line %d = %q, want %q in it", i, lines[i], want)
			}
		}
		if !strings.Contains(lines[2], "shop/web") || !strings.Contains(lines[2], "shop/cart") || !strings.Contains(lines[2], "503") {
			t.Errorf("row %q lacks endpoints or status", lines[2])
		}
	})

	t.Run("filter limit since", func(t *testing.T) {
		r := runCLI(t, nil, "query", `method == "GET"`, "--agent", addr, "--since", "1h", "-n", "2")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := strings.Count(r.stdout, "\n"); got != 3 || !strings.Contains(r.stdout, "/healthz") || !strings.Contains(r.stdout, "/api/cart") {
			t.Errorf("got:\n%s", r.stdout)
		}
	})

	t.Run("unquoted filter words", func(t *testing.T) {
		r := runCLI(t, nil, "query", "--agent", addr, "status", ">=", "500")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, "/api/checkout") {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("until", func(t *testing.T) {
		r := runCLI(t, nil, "query", "--agent", addr, "--since", "1h", "--until", "8m")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || strings.Contains(r.stdout, "/healthz") {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, nil, "query", "-o", "json", "--agent", addr)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 {
			t.Fatalf("want 3 lines:\n%s", r.stdout)
		}
		var e podwirev1.Entry
		if err := protojson.Unmarshal([]byte(lines[1]), &e); err != nil {
			t.Fatalf("line %q: %v", lines[1], err)
		}
		if e.GetPath() != "/api/checkout" || !e.GetFailed() || e.GetRequest().GetBody() != `{"item":"apple","qty":2}` {
			t.Errorf("entry = %v", &e)
		}
		for _, name := range []string{`"latencyMs"`, `"httpVersion"`, `"bodyBytes"`, `"workloadKind"`} {
			if !strings.Contains(lines[1], name) {
				t.Errorf("json lacks %s: %s", name, lines[1])
			}
		}
	})

	t.Run("wide", func(t *testing.T) {
		r := runCLI(t, nil, "query", "-o", "wide", "--agent", addr)
		if r.code != 0 || !strings.Contains(r.stdout, "10.1.0.9:8080") || !strings.Contains(r.stdout, "NODE") {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("bad filter", func(t *testing.T) {
		r := runCLI(t, nil, "query", "--agent", addr, "status >= ")
		if r.code != 2 || !strings.HasPrefix(r.stderr, "filter:1:") || !strings.Contains(r.stderr, "^") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("one agent down", func(t *testing.T) {
		r := runCLI(t, nil, "query", "--agent", addr, "--agent", unreachable)
		if r.code != 0 || strings.Count(r.stdout, "\n") != 4 {
			t.Errorf("exit %d:\n%s", r.code, r.stdout)
		}
		if !strings.Contains(r.stderr, "cannot reach agent "+unreachable+": ") {
			t.Errorf("stderr %q", r.stderr)
		}
	})

	t.Run("all agents down", func(t *testing.T) {
		r := runCLI(t, nil, "query", "--agent", unreachable)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach agent "+unreachable+": ") || !strings.Contains(r.stderr, "connection refused") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("agents from env", func(t *testing.T) {
		r := runCLI(t, map[string]string{"PODWIRE_AGENT": unreachable + "," + addr}, "query")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stderr, unreachable) {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"query", "--output", "xml"},
			{"query", "--limit", "0"},
			{"query", "--since", "yesterday"},
			{"query", "--no-such-flag"},
		} {
			if r := runCLI(t, nil, args...); r.code != 2 || r.stderr == "" {
				t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
	})
}

func TestQueryMergesAgents(t *testing.T) {
	a, _ := startAgent(t, "node-a", server.Config{},
		testEntry(1*time.Minute, "node-a", "GET", "/a1", 200),
		testEntry(3*time.Minute, "node-a", "GET", "/a3", 200),
		testEntry(5*time.Minute, "node-a", "GET", "/a5", 200),
	)
	b, _ := startAgent(t, "node-b", server.Config{},
		testEntry(2*time.Minute, "node-b", "GET", "/b2", 200),
		testEntry(4*time.Minute, "node-b", "GET", "/b4", 200),
	)
	r := runCLI(t, nil, "query", "--agent", a+","+b, "--limit", "4", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e podwirev1.Entry
		if err := protojson.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.GetPath())
	}
	if strings.Join(got, " ") != "/a1 /b2 /a3 /b4" {
		t.Errorf("merged %q, want newest first over both agents, cut to 4", got)
	}
}

func TestGetCommand(t *testing.T) {
	e := testEntry(time.Minute, "node-a", "POST", "/api/checkout", 503)
	e.Notes = []string{"gap in response body"}
	e.Incomplete = true
	addr, _ := startAgent(t, "node-a", server.Config{}, e)
	other, _ := startAgent(t, "node-b", server.Config{})

	t.Run("text", func(t *testing.T) {
		r := runCLI(t, nil, "get", e.ID, "--agent", other, "--agent", addr)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{
			"POST /api/checkout -> 503 Service Unavailable  FAILED",
			"id         " + e.ID,
			"timings    request 0.10ms, wait 1.90ms, response 0.50ms",
			"note       gap in response body",
			"incomplete",
			"POST /api/checkout HTTP/1.1\nhost: cart\ncontent-type: application/json\n\n{\n  \"item\": \"apple\",\n  \"qty\": 2\n}\n",
			"HTTP/1.1 503 Service Unavailable\ncontent-type: text/plain\n\nok\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, nil, "get", "-o", "json", e.ID, "--agent", addr)
		var got podwirev1.Entry
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || got.GetId() != e.ID {
			t.Errorf("exit %d, %v: %s", r.code, err, r.stdout)
		}
	})

	t.Run("not found", func(t *testing.T) {
		r := runCLI(t, nil, "get", "node-a-424242", "--agent", addr, "--agent", other)
		if r.code != 1 || !strings.Contains(r.stderr, `entry "node-a-424242" not found on any agent`) {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		r := runCLI(t, nil, "get", e.ID, "--agent", unreachable, "--agent", addr)
		if r.code != 0 || !strings.Contains(r.stdout, "/api/checkout") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("no id", func(t *testing.T) {
		if r := runCLI(t, nil, "get", "--agent", addr); r.code != 2 {
			t.Errorf("exit %d", r.code)
		}
	})
}

func TestStatusCommand(t *testing.T) {
	cfg := server.Config{
		Version: "v0.9.0",
		Status: func() *podwirev1.StatusResponse {
			return &podwirev1.StatusResponse{
				Kernel:  "6.8.0",
				Capture: "running",
				Programs: []*podwirev1.Program{
					{Name: "podwire_skb_ingress", Type: "cgroup_skb", Attach: "/sys/fs/cgroup"},
					{Name: "podwire_skb_egress", Type: "cgroup_skb", Attach: "/sys/fs/cgroup"},
				},
				Counters: map[string]uint64{"packets": 1000, "ringbuf_drops": 3},
			}
		},
	}
	addr, _ := startAgent(t, "node-a", cfg, testEntry(time.Minute, "node-a", "GET", "/", 200))
	r := runCLI(t, nil, "status", "--agent", addr)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"agent        " + addr, "node         node-a", "version      v0.9.0", "kernel       6.8.0", "capture      running",
		"programs (2)\n  podwire_skb_egress   cgroup_skb  /sys/fs/cgroup\n  podwire_skb_ingress  cgroup_skb  /sys/fs/cgroup\n",
		"  entries ", "  packets ", "  ringbuf_drops ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Index(r.stdout, "entries") > strings.Index(r.stdout, "packets") {
		t.Errorf("counters not sorted:\n%s", r.stdout)
	}

	r = runCLI(t, nil, "status", "-o", "json", "--agent", addr, "--agent", unreachable)
	var s podwirev1.StatusResponse
	if err := protojson.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &s); err != nil || s.GetNode() != "node-a" {
		t.Errorf("json: %v: %s", err, r.stdout)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach agent "+unreachable) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestTapCommand(t *testing.T) {
	addr, st := startAgent(t, "node-a", server.Config{})

	// runTap runs tap in the background and adds entries once it watches.
	runTap := func(t *testing.T, add func(), args ...string) result {
		t.Helper()
		// Let the last subtest's watch go away first.
		deadline := time.Now().Add(10 * time.Second)
		for st.Stats().Watchers != 0 {
			if time.Now().After(deadline) {
				t.Fatal("an earlier watch is still open")
			}
			time.Sleep(5 * time.Millisecond)
		}
		done := make(chan result, 1)
		go func() { done <- runCLI(t, nil, append([]string{"tap", "--agent", addr}, args...)...) }()
		deadline = time.Now().Add(10 * time.Second)
		for st.Stats().Watchers == 0 {
			if time.Now().After(deadline) {
				t.Fatal("tap did not start watching")
			}
			time.Sleep(5 * time.Millisecond)
		}
		add()
		select {
		case r := <-done:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("tap did not exit")
		}
		return result{}
	}

	t.Run("count", func(t *testing.T) {
		r := runTap(t, func() {
			st.Add(testEntry(0, "node-a", "GET", "/one", 200))
			st.Add(testEntry(0, "node-a", "POST", "/skip", 200))
			st.Add(testEntry(0, "node-a", "GET", "/two", 500))
			st.Add(testEntry(0, "node-a", "GET", "/three", 200))
		}, `method == "GET"`, "--count", "2")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "/one") || !strings.Contains(lines[2], "/two") {
			t.Errorf("got:\n%s", r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runTap(t, func() { st.Add(testEntry(0, "node-a", "GET", "/j", 200)) }, "-o", "json", "-c", "1")
		var e podwirev1.Entry
		if err := protojson.Unmarshal([]byte(r.stdout), &e); err != nil || e.GetPath() != "/j" {
			t.Errorf("exit %d, %v: %q", r.code, err, r.stdout)
		}
		if e.GetResponse().GetBody() != "ok\n" {
			t.Errorf("-o json should carry bodies: %v", e.GetResponse())
		}
	})

	t.Run("duration", func(t *testing.T) {
		start := time.Now()
		r := runTap(t, func() {}, "--duration", "300ms")
		if r.code != 0 || time.Since(start) > 10*time.Second {
			t.Errorf("exit %d after %v: %s", r.code, time.Since(start), r.stderr)
		}
	})

	t.Run("bad filter", func(t *testing.T) {
		r := runCLI(t, nil, "tap", "--agent", addr, "nosuch == 1")
		if r.code != 2 || !strings.HasPrefix(r.stderr, "filter:1:1: ") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		r := runCLI(t, nil, "tap", "--agent", unreachable)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach agent "+unreachable+": ") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestTapDropped(t *testing.T) {
	st := store.New(store.Config{Node: "node-a", MaxBytes: 256 << 20, WatchBuffer: 2})
	addr := servertest.Start(t, st, server.Config{})
	done := make(chan result, 1)
	const n = 300
	var out, errb syncBuffer
	c := newCLI(&out, &errb, func(string) string { return "" })
	// Stall the printing loop on its first entry so the agent must drop.
	gate := make(chan struct{})
	c.stdout = gateWriter{&out, gate}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- result{code: c.run(ctx, []string{"tap", "--agent", addr, "-o", "json", "--max-body", "-1"})}
	}()
	defer func() {
		cancel()
		if r := <-done; r.code != 0 {
			t.Errorf("tap exit %d", r.code)
		}
	}()
	for st.Stats().Watchers == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	big := strings.Repeat("z", 64<<10)
	for i := range n {
		e := testEntry(0, "node-a", "GET", fmt.Sprintf("/%d", i), 200)
		e.Response.Body = []byte(big)
		st.Add(e)
	}
	close(gate)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "entries (reader too slow)") {
		if time.Now().After(deadline) {
			t.Fatalf("no dropped message; stderr %q", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(errb.String(), "dropped ") {
		t.Errorf("stderr %q", errb.String())
	}
}

// gateWriter blocks writes until gate is closed.
type gateWriter struct {
	w    *syncBuffer
	gate chan struct{}
}

func (g gateWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.w.Write(p)
}

func TestToken(t *testing.T) {
	addr, _ := startAgent(t, "node-a", server.Config{Token: "s3cret"}, testEntry(time.Minute, "node-a", "GET", "/", 200))
	r := runCLI(t, nil, "status", "--agent", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "--token") {
		t.Errorf("no token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "status", "--agent", addr, "--token", "s3cret"); r.code != 0 {
		t.Errorf("--token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, map[string]string{"PODWIRE_TOKEN": "s3cret"}, "query", "--agent", addr); r.code != 0 {
		t.Errorf("PODWIRE_TOKEN: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestTopLevel(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: nil, code: 2, stderr: "Commands:"},
		{args: []string{"--help"}, code: 0, stdout: "Commands:"},
		{args: []string{"help"}, code: 0, stdout: "tap"},
		{args: []string{"help", "query"}, code: 0, stdout: "--since"},
		{args: []string{"tap", "--help"}, code: 0, stdout: "--count"},
		{args: []string{"help", "nope"}, code: 2, stderr: "unknown command"},
		{args: []string{"nope"}, code: 2, stderr: `unknown command "nope"`},
		{args: []string{"version"}, code: 0, stdout: "podwire "},
		{args: []string{"status", "extra"}, code: 2, stderr: "no arguments"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}
