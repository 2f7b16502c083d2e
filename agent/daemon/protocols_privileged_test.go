package daemon_test

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
)

// startRedis starts redis-server in cg on a free loopback port, without
// persistence, and returns the port once it listens.
func startRedis(t *testing.T, cg *agenttest.Cgroup) int {
	t.Helper()
	port := agenttest.FreePort(t)
	cg.Start(t, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	agenttest.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
	return port
}

// commandStats reads redis-server's own count of calls per command.
func commandStats(t *testing.T, cg *agenttest.Cgroup, port int) map[string]int {
	t.Helper()
	out := cg.Run(t, "redis-cli", "-p", strconv.Itoa(port), "info", "commandstats")
	re := regexp.MustCompile(`cmdstat_([a-z|]+):calls=(\d+)`)
	m := map[string]int{}
	for _, g := range re.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(g[2])
		m[strings.ToUpper(strings.SplitN(g[1], "|", 2)[0])] += n
	}
	return m
}

func TestRedisBenchmarkEveryCommandAnEntry(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	port := startRedis(t, cg)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	for _, pipeline := range []string{"1", "16"} {
		cg.Run(t, "redis-benchmark", "-p", strconv.Itoa(port), "-t", "set,get,lpush,lrange", "-n", "1000", "-P", pipeline, "-q")
	}
	want := commandStats(t, cg, port)
	total := 0
	for _, m := range []string{"SET", "GET", "LPUSH", "LRANGE", "CONFIG"} {
		total += want[m]
	}
	if want["SET"] < 2000 || want["LRANGE"] < 8000 {
		t.Fatalf("redis-server counted %v: the benchmark did not run as expected", want)
	}
	// INFO is ours; everything else is the benchmark's.
	entries := a.WaitEntries(t, `redis && method != "INFO"`, total, 60*time.Second)
	got := map[string]int{}
	for _, e := range entries {
		got[e.Method]++
		if e.Failed || e.Status != 0 || e.GetResponse() == nil {
			t.Errorf("%s %s: failed=%v status=%d response=%v", e.Method, e.Path, e.Failed, e.Status, e.GetResponse() != nil)
			break
		}
	}
	for _, m := range []string{"SET", "GET", "LPUSH", "LRANGE", "CONFIG"} {
		if got[m] != want[m] {
			t.Errorf("%s: %d entries, redis-server counted %d calls", m, got[m], want[m])
		}
	}
	if len(entries) != total {
		t.Errorf("%d entries, want %d: %v", len(entries), total, got)
	}
}

func TestRedisPubSubMessages(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	port := startRedis(t, cg)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	cg.Start(t, "redis-cli", "-p", strconv.Itoa(port), "subscribe", "orders")
	a.WaitEntries(t, `redis && method == "SUBSCRIBE"`, 1, 20*time.Second)
	for i := 0; i < 3; i++ {
		cg.Run(t, "redis-cli", "-p", strconv.Itoa(port), "publish", "orders", fmt.Sprintf("order-%d", i))
	}
	msgs := a.WaitEntries(t, `redis && method == "MESSAGE"`, 3, 20*time.Second)
	seen := map[string]bool{}
	for _, s := range msgs {
		e := a.Get(t, s.Id)
		if e.Path != "orders" {
			t.Errorf("message on %q, want orders", e.Path)
		}
		seen[e.GetResponse().GetBody()] = true
	}
	for i := 0; i < 3; i++ {
		if !seen[fmt.Sprintf("order-%d", i)] && !seen[fmt.Sprintf("%q", fmt.Sprintf("order-%d", i))] {
			t.Errorf("message order-%d not shown; bodies %v", i, seen)
		}
	}
	if pubs := a.Query(t, `redis && method == "PUBLISH"`, 10, 0); len(pubs) != 3 {
		t.Errorf("%d PUBLISH entries, want 3", len(pubs))
	}
}

func TestDigAgainstLocalDNSServer(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	port := agenttest.FreePort(t)
	startPeer(t, cg, fmt.Sprintf("dns-server 127.0.0.1:%d", port))
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path, UDPPorts: []uint16{uint16(port)}})
	time.Sleep(300 * time.Millisecond) // the server binds its UDP socket
	dig := func(args ...string) string {
		return cg.Run(t, "dig", append([]string{"@127.0.0.1", "-p", strconv.Itoa(port), "+tries=3", "+time=1"}, args...)...)
	}
	dig("shop.podwire.test", "A")
	dig("shop.podwire.test", "AAAA")
	dig("nowhere.example", "A")

	entries := a.WaitEntries(t, "dns", 3, 20*time.Second)
	byKey := map[string]int32{}
	for _, s := range entries {
		e := a.Get(t, s.Id)
		byKey[e.Method+" "+e.Path] = e.Status
		switch e.Path {
		case "shop.podwire.test":
			want := "198.18.5.5"
			if e.Method == "AAAA" {
				want = "2001:db8::5"
			}
			if e.Failed || !strings.Contains(e.GetResponse().GetBody(), want) {
				t.Errorf("%s %s: failed=%v, answer %q does not show %s", e.Method, e.Path, e.Failed, e.GetResponse().GetBody(), want)
			}
		case "nowhere.example":
			if !e.Failed || e.Status != 3 {
				t.Errorf("NXDOMAIN: failed=%v status=%d, want failed with rcode 3", e.Failed, e.Status)
			}
		}
		if e.LatencyMs <= 0 {
			t.Errorf("%s %s: latency %v", e.Method, e.Path, e.LatencyMs)
		}
	}
	want := map[string]int32{"A shop.podwire.test": 0, "AAAA shop.podwire.test": 0, "A nowhere.example": 3}
	for k, v := range want {
		if got, ok := byKey[k]; !ok || got != v {
			t.Errorf("%s: rcode %d (seen %v), want %d", k, got, ok, v)
		}
	}
	if len(entries) != 3 {
		t.Errorf("%d DNS entries, want 3: %v", len(entries), byKey)
	}
}

func TestH2loadAgainstH2cServer(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	addr := startServerPeer(t, cg, "h2c-server")
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	// Two paths, so that the entries must carry the right one each.
	out := cg.Run(t, "h2load", "-n", "2000", "-c", "4", "-m", "10", "http://"+addr+"/status/201", "http://"+addr+"/h2/json")
	if !strings.Contains(out, "2000 succeeded") {
		t.Fatalf("h2load did not complete every request:\n%s", out)
	}
	entries := a.WaitEntries(t, "http", 2000, 60*time.Second)
	got := map[string]int{}
	for _, e := range entries {
		got[fmt.Sprintf("%s %s %d %s", e.Method, e.Path, e.Status, e.HttpVersion)]++
	}
	want := map[string]int{"GET /status/201 201 2": 1000, "GET /h2/json 200 2": 1000}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: %d entries, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if len(entries) != 2000 {
		t.Errorf("%d entries, want 2000: %v", len(entries), got)
	}
}

func TestGRPCUnaryAndStreamingRPCs(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	addr := startServerPeer(t, cg, "grpc-server")
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	// 100 rounds of 5 RPCs: 500 RPCs, 100 of them failing with NOT_FOUND.
	cmd := cg.Peer(fmt.Sprintf("grpc-client %s 100", addr))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("grpc client: %v\n%s", err, out)
	}
	entries := a.WaitEntries(t, "grpc", 500, 60*time.Second)
	type key struct {
		method string
		status int32
		notes  string
	}
	got := map[key]int{}
	for _, e := range entries {
		notes := ""
		for _, n := range e.Notes {
			if strings.HasPrefix(n, "messages: ") {
				notes = n
			}
		}
		got[key{e.Method, e.Status, notes}]++
		if e.Failed != (e.Status != 0) {
			t.Errorf("%s status %d failed=%v", e.Method, e.Status, e.Failed)
		}
	}
	want := map[key]int{
		{"/podwire.test.Echo/Unary", 0, "messages: 1 sent, 1 received"}:        100,
		{"/podwire.test.Echo/Unary", 5, "messages: 1 sent, 0 received"}:        100,
		{"/podwire.test.Echo/ServerStream", 0, "messages: 1 sent, 3 received"}: 100,
		{"/podwire.test.Echo/ClientStream", 0, "messages: 3 sent, 1 received"}: 100,
		{"/podwire.test.Echo/Bidi", 0, "messages: 2 sent, 2 received"}:         100,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: %d entries, want %d", k, got[k], n)
		}
	}
	if len(entries) != 500 {
		t.Errorf("%d gRPC entries, want 500: %v", len(entries), got)
	}
	// One failing call, opened: its message and the request's field tree.
	failed := a.Query(t, `grpc && status == 5`, 1, 0)
	if len(failed) == 1 {
		e := a.Get(t, failed[0].Id)
		if !strings.Contains(strings.Join(e.Notes, " "), "no such item") {
			t.Errorf("NOT_FOUND entry notes %q lack the grpc-message", e.Notes)
		}
		if !strings.Contains(e.GetRequest().GetBody(), `1: "missing"`) {
			t.Errorf("request body %q is not the decoded field tree", e.GetRequest().GetBody())
		}
	}
}

// TestHTTP2ConnectionOpenedBeforeAgent: an HTTP/2 connection whose preface,
// SETTINGS and first header blocks went by before the agent started still
// gives entries for its later streams, with the right path and status.
func TestHTTP2ConnectionOpenedBeforeAgent(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	addr := startServerPeer(t, cg, "h2c-server")

	hold := cg.Peer("h2c-hold " + addr)
	stdin, _ := hold.StdinPipe()
	stdout, _ := hold.StdoutPipe()
	var stderr bytes.Buffer
	hold.Stderr = &stderr
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer hold.Wait()
	defer stdin.Close()
	rd := bufio.NewReader(stdout)
	step := func(path string) {
		t.Helper()
		fmt.Fprintln(stdin, path)
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ok ") {
			t.Fatalf("held HTTP/2 connection, %s: %v %q %s", path, err, line, stderr.String())
		}
	}
	// Before the agent: the preface, both SETTINGS, and header blocks that
	// fill both HPACK dynamic tables.
	step("/before-agent")
	step("/status/202")

	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})
	want := map[string]int32{}
	for i := range 5 {
		p := fmt.Sprintf("/after-agent/%d", i)
		step(p)
		want[p] = 200
	}
	step("/status/201")
	want["/status/201"] = 201
	entries := a.WaitEntries(t, "http", len(want), 30*time.Second)
	got := map[string]int32{}
	for _, e := range entries {
		got[e.Path] = e.Status
		// Header fields indexed in the missed part of the HPACK tables
		// are unknown: the entry says so.
		if !e.Incomplete || !strings.Contains(fmt.Sprint(e.Notes), "mid-connection") {
			t.Errorf("%s: incomplete=%v notes %q, want incomplete with a mid-connection note", e.Path, e.Incomplete, e.Notes)
		}
		if e.HttpVersion != "2" || e.Method != "GET" {
			t.Errorf("%s: version %q method %q, want 2 and GET", e.Path, e.HttpVersion, e.Method)
		}
		if fmt.Sprint(e.GetDst().GetPort()) != strings.Split(addr, ":")[1] {
			t.Errorf("%s: roles wrong: src %v dst %v", e.Path, e.Src, e.Dst)
		}
	}
	for p, s := range want {
		if got[p] != s {
			t.Errorf("%s: status %d, want %d (entries: %v)", p, got[p], s, got)
		}
	}
	if len(entries) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(entries), len(want), got)
	}
}

// TestH2cUpgradeFromHTTP1: curl --http2 on an http:// URL asks for an
// HTTP/1.1 Upgrade: h2c; the first request is answered on HTTP/2 stream 1
// and the next ones ride the same HTTP/2 connection. Each request is one
// entry with its real status, the first one noting the upgrade.
func TestH2cUpgradeFromHTTP1(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	addr := startServerPeer(t, cg, "h2c-upgrade-server")
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	urls := []string{"/status/201", "/h2/json", "/status/503"}
	args := []string{"-sS", "--http2", "-w", "%{http_version} %{http_code}\n"}
	for i, u := range urls {
		if i > 0 {
			args = append(args, "--next", "--http2", "-w", "%{http_version} %{http_code}\n")
		}
		args = append(args, "-o", "/dev/null", "http://"+addr+u)
	}
	out := cg.Run(t, "curl", args...)
	if got := strings.Fields(out); strings.Join(got, " ") != "2 201 2 200 2 503" {
		t.Fatalf("curl: %q, want HTTP/2 answers 201, 200, 503", out)
	}
	entries := a.WaitEntries(t, "http", len(urls), 30*time.Second)
	got := map[string]string{}
	for _, e := range entries {
		got[e.Path] = fmt.Sprintf("%s %d %s", e.Method, e.Status, e.HttpVersion)
		if e.Path == "/status/201" && !strings.Contains(fmt.Sprint(e.Notes), "h2c") {
			t.Errorf("upgraded request: notes %q, want a note of the h2c upgrade", e.Notes)
		}
		if e.Incomplete {
			t.Errorf("%s: incomplete (%q)", e.Path, e.Notes)
		}
	}
	want := map[string]string{"/status/201": "GET 201 2", "/h2/json": "GET 200 2", "/status/503": "GET 503 2"}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q (all: %v)", p, got[p], w, got)
		}
	}
	if len(entries) != len(urls) {
		t.Errorf("%d entries, want %d (the 101 is not an entry of its own): %v", len(entries), len(urls), got)
	}
}
