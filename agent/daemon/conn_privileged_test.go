package daemon_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
)

// TestUnknownProtocolIsConnectionRecord: TCP traffic no dissector knows
// is still reported, as one record per connection with the bytes each way,
// the first bytes, and how long it lasted; a refused connect is a failed
// record.
func TestUnknownProtocolIsConnectionRecord(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})
	addr := startServerPeer(t, cg, "greet-server")
	_, port, _ := net.SplitHostPort(addr)

	// A client outside the cgroup: the server's socket sees it all.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	greeting := make([]byte, len(agenttest.GreetingBytes))
	if _, err := io.ReadFull(c, greeting); err != nil {
		t.Fatal(err)
	}
	sent := bytes.Repeat([]byte{0xfe, 0xed, 0xfa, 0xce}, 750) // 3000 bytes
	c.Write(sent)
	time.Sleep(300 * time.Millisecond)
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	c.Close()
	if len(reply) != 8 {
		t.Fatalf("server replied %d bytes, want 8", len(reply))
	}
	local := c.LocalAddr().(*net.TCPAddr)

	// (WaitListening's probe got a greeting too: a record of its own.)
	recs := a.WaitEntries(t, fmt.Sprintf(`protocol == "tcp" && dst.port == %s && src.port == %d`, port, local.Port), 1, 30*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d connection records, want 1", len(recs))
	}
	e := recs[0]
	if e.GetSrc().GetIp() != "127.0.0.1" || e.GetDst().GetIp() != "127.0.0.1" {
		t.Errorf("src %s dst %s, want 127.0.0.1 both", e.GetSrc().GetIp(), e.GetDst().GetIp())
	}
	// Without Kubernetes, the capturing socket's side is named by its
	// cgroup; the client outside the captured cgroup is an address only.
	if got, want := e.GetDst().GetProcess(), filepath.Base(cg.Path); got != want || e.GetSrc().GetProcess() != "" {
		t.Errorf("dst process %q src process %q, want %q and none", got, e.GetSrc().GetProcess(), want)
	}
	if up, down := e.GetRequest().GetBodyBytes(), e.GetResponse().GetBodyBytes(); up != 3000 || down != int64(len(agenttest.GreetingBytes)+8) {
		t.Errorf("bytes client->server %d, server->client %d; want 3000 and %d", up, down, len(agenttest.GreetingBytes)+8)
	}
	if e.GetLatencyMs() < 300 {
		t.Errorf("connection lasted %.1f ms, want at least the client's 300 ms pause", e.GetLatencyMs())
	}
	if e.GetFailed() || e.GetIncomplete() {
		t.Errorf("failed=%v incomplete=%v for a whole, orderly connection", e.GetFailed(), e.GetIncomplete())
	}
	full := a.Get(t, e.GetId())
	preview := full.GetResponse().GetBody()
	if full.GetResponse().GetBodyEncoding() == "base64" {
		b, err := base64.StdEncoding.DecodeString(preview)
		if err != nil {
			t.Fatal(err)
		}
		preview = string(b)
	}
	if len(preview) == 0 || !strings.HasPrefix(string(agenttest.GreetingBytes), preview) || !full.GetResponse().GetTruncated() {
		t.Errorf("server preview %d bytes (truncated=%v), want the start of the greeting, truncated",
			len(preview), full.GetResponse().GetTruncated())
	}

	// A client in the cgroup connecting to a port nobody listens on.
	closed := strconv.Itoa(agenttest.FreePort(t))
	out, err := cg.Peer("raw 127.0.0.1:" + closed).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused") {
		t.Fatalf("connect to a closed port: %v %s", err, out)
	}
	refused := a.WaitEntries(t, `protocol == "tcp" && dst.port == `+closed, 1, 30*time.Second)
	if len(refused) != 1 {
		t.Fatalf("%d records for the refused connect, want 1", len(refused))
	}
	r := refused[0]
	if !r.GetFailed() || !strings.Contains(fmt.Sprint(r.GetNotes()), "connection refused") {
		t.Errorf("refused connect: failed=%v notes %q", r.GetFailed(), r.GetNotes())
	}
	if n := a.Counters()["conns_refused"]; n < 1 {
		t.Errorf("conns_refused = %d, want at least 1", n)
	}
}
