package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// TestMain lets the test binary run as an agenttest peer (a server in a
// capture cgroup) when PODWIRE_PEER says so.
func TestMain(m *testing.M) {
	agenttest.PeerMain()
	os.Exit(m.Run())
}

// TestMapRealTraffic runs curl in one cgroup against the Go test server in
// another, both under a real agent's capture root, and checks that `podwire
// map` shows the one edge between them with the right counts, and latency
// percentiles inside the latencies curl measured.
func TestMapRealTraffic(t *testing.T) {
	agenttest.RequireRoot(t)
	root := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	// Outside pods, the local socket is named by its cgroup and the far
	// end by its address: the client's view of the conversation (the one
	// kept, since the client opened it) is process:client -> 127.0.0.1.
	srvCg := agenttest.NewCgroup(t, root.Path, "server")
	cliCg := agenttest.NewCgroup(t, root.Path, "client")
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: root.Path, NodeName: "map-node"})

	addr := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(t))
	srv := srvCg.Peer("http-server " + addr)
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		if t.Failed() {
			t.Logf("server output:\n%s", srvOut.String())
		}
	})
	agenttest.WaitListening(t, addr)

	// 12 fast and 8 slow answers, and 2 failures, on one keep-alive
	// connection; curl reports each one's total time.
	var paths []string
	for range 12 {
		paths = append(paths, "/sleep/5")
	}
	for range 8 {
		paths = append(paths, "/sleep/60")
	}
	paths = append(paths, "/status/503", "/status/503")
	args := []string{"-sS"}
	for _, p := range paths {
		args = append(args, "-o", "/dev/null", "-w", "%{http_code} %{time_total}\n", "http://"+addr+p)
	}
	out := cliCg.Run(t, "curl", args...)
	var fast, slow []float64 // ms, as curl measured them
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var code int
		var secs float64
		if _, err := fmt.Sscanf(line, "%d %g", &code, &secs); err != nil {
			t.Fatalf("curl line %q: %v", line, err)
		}
		switch {
		case paths[i] == "/sleep/5" && code == 200:
			fast = append(fast, secs*1000)
		case paths[i] == "/sleep/60" && code == 200:
			slow = append(slow, secs*1000)
		case code != 503:
			t.Fatalf("%s: status %d", paths[i], code)
		}
	}
	a.WaitEntries(t, "", len(paths), 60*time.Second)

	// runCLI's clock stands still at the start of the tests: give the
	// range as times.
	span := []string{"--since", time.Now().Add(-5 * time.Minute).Format(time.RFC3339), "--until", time.Now().Add(time.Minute).Format(time.RFC3339)}
	r := runCLI(t, nil, append([]string{"map", "--agent", a.Addr(), "-o", "json"}, span...)...)
	if r.code != 0 {
		t.Fatalf("podwire map: exit %d: %s", r.code, r.stderr)
	}
	var m podwirev1.ServiceMapResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(m.GetEdges()) != 1 {
		t.Fatalf("want one edge, got:\n%s", r.stdout)
	}
	e := m.GetEdges()[0]
	if e.GetSource() != "process:client" || e.GetTarget() != "127.0.0.1" {
		t.Errorf("edge %s -> %s, want process:client -> 127.0.0.1", e.GetSource(), e.GetTarget())
	}
	if e.GetRequests() != uint64(len(paths)) || e.GetFailed() != 2 || e.GetProtocols()["http"] != uint64(len(paths)) {
		t.Errorf("edge requests %d failed %d protocols %v; want %d, 2, all http", e.GetRequests(), e.GetFailed(), e.GetProtocols(), len(paths))
	}
	var h stats.Histogram
	h.MergeProto(e.GetLatency())
	if h.Count != uint64(len(paths)) {
		t.Errorf("histogram holds %d latencies, want %d", h.Count, len(paths))
	}
	// The agent times the exchange from the request's first byte to the
	// response's last, so a latency lies between the server's sleep and
	// what curl measured; a percentile is exact to a bucket (9%).
	const bucket = 1.1
	slices.Sort(fast)
	slices.Sort(slow)
	// 22 latencies: rank 11 (p50) is among the 12 fast ones (the two
	// failures are quick too), rank 21 (p95) among the 8 slow ones.
	if p50 := h.Quantile(0.5); p50 < 5/bucket || p50 > fast[len(fast)-1]*bucket {
		t.Errorf("p50 %.2f ms, want within [5 ms, %.2f ms] (curl's fast times %v)", p50, fast[len(fast)-1], fast)
	}
	if p95 := h.Quantile(0.95); p95 < 60/bucket || p95 > slow[len(slow)-1]*bucket {
		t.Errorf("p95 %.2f ms, want within [60 ms, %.2f ms] (curl's slow times %v)", p95, slow[len(slow)-1], slow)
	}

	// The table says the same.
	r = runCLI(t, nil, append([]string{"map", "--agent", a.Addr()}, span...)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	f := strings.Fields(lines[1])
	if f[0] != "process:client" || f[2] != "127.0.0.1" || f[3] != strconv.Itoa(len(paths)) || f[5] != "9.1" {
		t.Errorf("table row %q", lines[1])
	}
}
