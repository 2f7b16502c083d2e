package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func TestVethExchangeIsOneEntry(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	srv, cli := agenttest.NewHostPair(t, 0)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	addr := srv.IP + ":8080"
	cmd := cg.PeerInHost(srv, "http-server "+addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var urls []string
	for i := 0; i < 20; i++ {
		urls = append(urls, fmt.Sprintf("http://%s/veth/%d", addr, i))
	}
	// curl retries until the server inside its namespace listens, then
	// fetches everything on one keep-alive connection.
	curl := []string{"-sS", "--retry", "50", "--retry-connrefused", "--retry-delay", "0", "--retry-max-time", "20"}
	for _, u := range urls {
		curl = append(curl, "-o", "/dev/null", u)
	}
	if o, err := cg.InHost(cli, "curl", curl...).CombinedOutput(); err != nil {
		t.Fatalf("curl across veth: %v\n%s\nserver: %s", err, o, out.String())
	}
	// curl's refused attempts while the server started are connection
	// records of their own (protocol "tcp"); the exchanges are HTTP.
	entries := a.WaitEntries(t, `protocol == "http"`, 20, 30*time.Second)
	if len(entries) != 20 {
		t.Fatalf("%d entries for 20 exchanges between two namespaces, want 20", len(entries))
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.Path] {
			t.Errorf("%s reported twice", e.Path)
		}
		seen[e.Path] = true
		if e.GetSrc().GetIp() != cli.IP || e.GetDst().GetIp() != srv.IP || e.GetDst().GetPort() != 8080 {
			t.Errorf("%s: src %s dst %s:%d, want %s -> %s:8080", e.Path, e.GetSrc().GetIp(), e.GetDst().GetIp(), e.GetDst().GetPort(), cli.IP, srv.IP)
		}
	}
	// Both sockets are in scope: the kernel sends each packet up once (at
	// the sender) and user space merges the two sockets' views.
	c := a.Counters()
	if c["bpf_local_duplicates"] == 0 || c["tcp_duplicate_views"] == 0 {
		t.Errorf("bpf_local_duplicates %d, tcp_duplicate_views %d: both sockets were in scope, so both should be above 0", c["bpf_local_duplicates"], c["tcp_duplicate_views"])
	}
}

func TestAgentNeverReportsItsOwnAPI(t *testing.T) {
	agenttest.RequireRoot(t)
	// Capture the whole machine: the agent's own API traffic is in scope.
	a := agenttest.StartAgent(t, daemon.Options{})
	_, port, _ := net.SplitHostPort(a.Addr())

	// gRPC calls, and a plain HTTP/1.1 request to the API port that would
	// make an entry if it were captured.
	for i := 0; i < 20; i++ {
		a.Status(t)
		a.Query(t, "", 10, 0)
	}
	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /not-grpc HTTP/1.1\r\nHost: %s\r\n\r\n", a.Addr())
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()

	// A request elsewhere proves capture is on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			s.Read(buf)
			io.WriteString(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			s.Close()
		}
	}()
	probe, _ := net.Dial("tcp", ln.Addr().String())
	fmt.Fprintf(probe, "GET /probe-%s HTTP/1.1\r\nHost: x\r\n\r\n", port)
	io.Copy(io.Discard, probe)
	probe.Close()

	a.WaitEntries(t, fmt.Sprintf(`path == "/probe-%s"`, port), 1, 30*time.Second)
	own := a.Query(t, fmt.Sprintf("src.port == %s || dst.port == %s", port, port), 100, 0)
	if len(own) != 0 {
		t.Errorf("%d entries of the agent's own API, want none: first %s %s", len(own), own[0].Method, own[0].Path)
	}
	if n := a.Counters()["bpf_skipped_port"]; n == 0 {
		t.Errorf("bpf_skipped_port = 0 after API calls: the kernel did not filter the API port")
	}
}

func TestKilledClientAndGarbageCostOnlyTheirConnection(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	goAddr, _ := startHTTPServers(t, cg)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	// A client that announces 1 MiB, sends 100 KiB and is killed.
	killed := cg.Peer("raw " + goAddr)
	stdin, _ := killed.StdinPipe()
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "POST /echo?killed=1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20)
	stdin.Write(bytes.Repeat([]byte("k"), 100<<10))
	time.Sleep(200 * time.Millisecond)
	killed.Process.Kill()
	killed.Wait()

	// Garbage to the server port.
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	g := cg.Peer("raw " + goAddr)
	g.Stdin = bytes.NewReader(junk)
	g.CombinedOutput()
	g = cg.Peer("raw " + goAddr)
	g.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nonsense\r\n\r\n" + string(junk[:1000]))
	g.CombinedOutput()

	// Meanwhile, a healthy connection keeps working.
	var urls []string
	for i := 0; i < 50; i++ {
		urls = append(urls, fmt.Sprintf("http://%s/healthy/%d", goAddr, i))
	}
	curlURLs(t, cg, urls)

	healthy := a.WaitEntries(t, `path.startsWith("/healthy/")`, 50, 30*time.Second)
	if len(healthy) != 50 {
		t.Errorf("%d healthy entries, want 50", len(healthy))
	}
	for _, e := range healthy {
		if e.Status != 200 || e.Incomplete {
			t.Errorf("healthy entry %s: status %d incomplete %v", e.Path, e.Status, e.Incomplete)
		}
	}
	// The killed client's request is at most one incomplete entry.
	killedEntries := a.Query(t, `path == "/echo?killed=1"`, 10, 0)
	if len(killedEntries) > 1 {
		t.Errorf("%d entries for the killed client, want at most 1", len(killedEntries))
	}
	for _, e := range killedEntries {
		// The server may still answer (Go's says 400 on the early EOF);
		// what the entry must say is that the request was cut short.
		if !e.Incomplete || e.GetRequest().GetBodyBytes() >= 1<<20 {
			t.Errorf("killed client's entry not marked incomplete: %+v", e)
		}
	}
	// Counters say what was lost.
	st := a.Status(t)
	lost := st.Counters["http1_malformed"] + st.Counters["http1_unanswered"] + st.Counters["conns_undetected"] + st.Counters["http1_incomplete"]
	if lost == 0 {
		t.Errorf("no counter shows the killed client or the garbage: %v", st.Counters)
	}
}

// TestStopWhileClientsPoll stops an agent while a client keeps asking for
// its status and watching: Stop returns, the calls fail cleanly, and a second
// Stop is harmless.
func TestStopWhileClientsPoll(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})
	watch, err := a.Client.Watch(context.Background(), &podwirev1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	watchEnded := make(chan error, 1)
	go func() {
		for {
			if _, err := watch.Recv(); err != nil {
				watchEnded <- err
				return
			}
		}
	}()
	stop := make(chan struct{})
	polled := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				polled <- n
				return
			default:
			}
			if _, err := a.Client.Status(context.Background(), &podwirev1.StatusRequest{}); err == nil {
				n++
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- a.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return while a client polled")
	}
	close(stop)
	if n := <-polled; n == 0 {
		t.Errorf("no Status call succeeded before Stop")
	}
	select {
	case err := <-watchEnded:
		if !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("watch ended with %v, want a shutting-down status", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("watch did not end when the agent stopped")
	}
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Errorf("Done not closed after Stop")
	}
}
