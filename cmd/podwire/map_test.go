package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// withLatency is testEntry with another latency.
func withLatency(e *entry.Entry, d time.Duration) *entry.Entry {
	e.Latency = d
	return e
}

func TestMapCommand(t *testing.T) {
	// web -> cart on two agents: 4 entries on a (one failed), 2 on b; and
	// an outside address calling web on b. One entry is too old.
	a, _ := startAgent(t, "node-a", server.Config{},
		withLatency(testEntry(10*time.Second, "node-a", "GET", "/a", 200), 1*time.Millisecond),
		withLatency(testEntry(20*time.Second, "node-a", "GET", "/a", 200), 2*time.Millisecond),
		withLatency(testEntry(30*time.Second, "node-a", "GET", "/a", 503), 3*time.Millisecond),
		withLatency(testEntry(40*time.Second, "node-a", "GET", "/a", 200), 4*time.Millisecond),
		testEntry(2*time.Minute, "node-a", "GET", "/old", 200),
	)
	ext := testEntry(5*time.Second, "node-b", "GET", "/", 200)
	ext.Src = entry.Endpoint{IP: netip.MustParseAddr("203.0.113.7"), Port: 5555}
	ext.Dst = ext.Src
	ext.Dst.IP, ext.Dst.Who = netip.MustParseAddr("10.1.0.5"), &entry.Identity{Namespace: "shop", Workload: "web", WorkloadKind: "Deployment"}
	b, _ := startAgent(t, "node-b", server.Config{},
		withLatency(testEntry(15*time.Second, "node-b", "GET", "/b", 200), 100*time.Millisecond),
		withLatency(testEntry(25*time.Second, "node-b", "GET", "/b", 200), 200*time.Millisecond),
		ext,
	)

	t.Run("table", func(t *testing.T) {
		r := runCLI(t, nil, "map", "--agent", a+","+b, "--since", "1m")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		want := []string{
			"SOURCE           TARGET     REQUESTS  REQ/S  ERR%     P50     P95     P99  PROTOCOLS",
			// 6 entries in 60 s; 1 of 6 failed; latencies 1, 2, 3, 4,
			// 100, 200 ms: p50 between 3 and 4, p95 and p99 near 200.
			"shop/web     ->  shop/cart         6   0.10  16.7  3.",
			"203.0.113.7  ->  shop/web          1   0.02   0.0  2.",
		}
		if len(lines) != 3 {
			t.Fatalf("want a header and 2 edges:\n%s", r.stdout)
		}
		if lines[0] != want[0] {
			t.Errorf("header %q", lines[0])
		}
		for i, w := range want[1:] {
			if !strings.HasPrefix(lines[i+1], w) {
				t.Errorf("line %d\n got %q\nwant %q...", i+1, lines[i+1], w)
			}
		}
		f := strings.Fields(lines[1])
		p95, err := strconv.ParseFloat(strings.TrimSuffix(f[7], "ms"), 64)
		if err != nil || p95 < 200/1.1 || p95 > 200*1.1 {
			t.Errorf("p95 %q, want about 200ms", f[7])
		}
		if strings.Join(f[9:], " ") != "http 6" {
			t.Errorf("protocols in %q", lines[1])
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, nil, "map", "-o", "json", "--agent", a, "--agent", b, "--since", "1m")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var m podwirev1.ServiceMapResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if m.GetMatched() != 7 || len(m.GetNodes()) != 3 || len(m.GetEdges()) != 2 {
			t.Fatalf("matched %d, %d nodes, %d edges:\n%s", m.GetMatched(), len(m.GetNodes()), len(m.GetEdges()), r.stdout)
		}
		e := m.GetEdges()[0]
		var h stats.Histogram
		h.MergeProto(e.GetLatency())
		if e.GetSource() != "shop/web" || e.GetTarget() != "shop/cart" || e.GetRequests() != 6 || e.GetFailed() != 1 ||
			h.Count != 6 || h.SumMs != 310 || e.GetProtocols()["http"] != 6 || strings.Join(e.GetServices(), ",") != "cart" {
			t.Errorf("edge %v (histogram count %d sum %v)", e, h.Count, h.SumMs)
		}
		for _, n := range m.GetNodes() {
			if n.GetId() == "shop/cart" && (n.GetRequests() != 6 || n.GetKind() != "StatefulSet" || n.GetSent() != 0) {
				t.Errorf("node %v", n)
			}
			if n.GetId() == "shop/web" && (n.GetRequests() != 1 || n.GetSent() != 6) {
				t.Errorf("node %v", n)
			}
		}
	})

	t.Run("group by namespace with filter", func(t *testing.T) {
		r := runCLI(t, nil, "map", "--agent", a+","+b, "--since", "1m", "-g", "namespace", "failed")
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], "shop    ->  shop           1") || !strings.Contains(lines[1], "100.0") {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("nothing", func(t *testing.T) {
		r := runCLI(t, nil, "map", "--agent", a, "--since", "1m", `path == "/none"`)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no traffic between") {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("one agent down", func(t *testing.T) {
		r := runCLI(t, nil, "map", "--agent", a, "--agent", unreachable, "--since", "1m")
		if r.code != 0 || !strings.Contains(r.stdout, "shop/web  ->  shop/cart         4") || !strings.Contains(r.stderr, "cannot reach agent "+unreachable) {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"map", "--agent", a, "status >= "}, 2, "filter:1:"},
			{[]string{"map", "--agent", a, "-g", "node"}, 2, "--group-by"},
			{[]string{"map", "--agent", a, "-o", "wide"}, 2, "unknown output"},
			{[]string{"map", "--agent", a, "--since", "1m", "--until", "2m"}, 2, "is not before"},
			{[]string{"map", "--agent", unreachable}, 1, "cannot reach agent"},
		} {
			r := runCLI(t, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
			}
		}
	})
}

func TestMapTruncatedWarning(t *testing.T) {
	var entries []*entry.Entry
	for i := range server.MaxMapNodes + 1 {
		e := testEntry(time.Second, "node-a", "GET", "/", 200)
		e.Src = entry.Endpoint{IP: netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})}
		entries = append(entries, e)
	}
	a, _ := startAgent(t, "node-a", server.Config{}, entries...)
	r := runCLI(t, nil, "map", "--agent", a, "-o", "json")
	want := fmt.Sprintf("warning: agent %s: map too large (nodes full): 2 matching entries left out", a)
	if r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
}
