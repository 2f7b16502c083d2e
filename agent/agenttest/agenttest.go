// Package agenttest runs real agents and real peers for privileged tests:
// cgroup subtrees as capture scopes, network namespaces as hosts, and
// helpers to read entries back through the gRPC API.
package agenttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/podwire/podwire/agent/cgroup"
	"github.com/podwire/podwire/agent/daemon"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// RequireRoot skips the test, saying why, when not running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root to load eBPF programs (run `sudo go tool mage test`)")
	}
}

// RandomName returns prefix plus a short random suffix.
func RandomName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Cgroup is a cgroup v2 directory made for a test; processes started with
// Command run inside it.
type Cgroup struct {
	Path string
	fd   *os.File
}

// NewCgroup makes a cgroup under parent ("" for the cgroup v2 root), removed
// when the test ends (its processes are killed first).
func NewCgroup(t testing.TB, parent, name string) *Cgroup {
	t.Helper()
	if parent == "" {
		root, err := cgroup.Root()
		if err != nil {
			t.Fatal(err)
		}
		parent = root
	}
	path := filepath.Join(parent, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening cgroup: %v", err)
	}
	cg := &Cgroup{Path: path, fd: fd}
	t.Cleanup(cg.remove)
	return cg
}

func (c *Cgroup) remove() {
	c.fd.Close()
	cgroup.Remove(c.Path)
}

// Command is exec.Command with the child placed in the cgroup from its start.
func (c *Cgroup) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(c.fd.Fd()), Setpgid: true}
	return cmd
}

// Start starts a long-running command in the cgroup, killed at cleanup.
func (c *Cgroup) Start(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := c.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() && out.Len() > 0 {
			t.Logf("output of %s:\n%s", name, tail(out.String(), 2000))
		}
	})
	return cmd
}

// Run runs a command in the cgroup to completion and returns its output.
func (c *Cgroup) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := c.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 2000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Agent is an agent running in the test process, with a client for its API.
type Agent struct {
	*daemon.Daemon
	Conn   *grpc.ClientConn
	Client podwirev1.AgentClient
}

// StartAgent starts an agent on 127.0.0.1:0 with opts, stopped at cleanup.
func StartAgent(t testing.TB, opts daemon.Options) *Agent {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.NodeName == "" {
		opts.NodeName = "test-node"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := daemon.Start(opts)
	if err != nil {
		t.Fatalf("starting agent: %v", err)
	}
	conn, err := grpc.NewClient(d.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		d.Stop()
		t.Fatal(err)
	}
	a := &Agent{Daemon: d, Conn: conn, Client: podwirev1.NewAgentClient(conn)}
	t.Cleanup(func() {
		conn.Close()
		if err := d.Stop(); err != nil {
			t.Errorf("stopping agent: %v", err)
		}
	})
	return a
}

// Query returns the stored entries matching filter, newest first, with
// bodies up to maxBody bytes.
func (a *Agent) Query(t testing.TB, filter string, limit, maxBody int) []*podwirev1.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := a.Client.Query(ctx, &podwirev1.QueryRequest{Filter: filter, Limit: int32(limit), MaxBodyBytes: int32(maxBody)})
	if err != nil {
		t.Fatalf("query %q: %v", filter, err)
	}
	var out []*podwirev1.Entry
	for {
		e, err := stream.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("query %q: %v", filter, err)
		}
		out = append(out, e)
	}
}

// WaitEntries polls until at least n entries match filter, then waits for
// quiet (no new entry for settle) so that extra entries would show, and
// returns them all. It fails the test when n do not arrive within limit.
func (a *Agent) WaitEntries(t testing.TB, filter string, n int, limit time.Duration) []*podwirev1.Entry {
	t.Helper()
	const settle = 700 * time.Millisecond
	deadline := time.Now().Add(limit)
	last, lastChange := -1, time.Now()
	for {
		got := a.Query(t, filter, 100000, 0)
		if len(got) != last {
			last, lastChange = len(got), time.Now()
		}
		if len(got) >= n && time.Since(lastChange) >= settle {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d entries matching %q, have %d; counters: %v", limit, n, filter, len(got), a.Counters())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Get returns one entry with its full bodies.
func (a *Agent) Get(t testing.TB, id string) *podwirev1.Entry {
	t.Helper()
	e, err := a.Client.GetEntry(context.Background(), &podwirev1.GetEntryRequest{Id: id})
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return e
}

// Status returns the agent's status.
func (a *Agent) Status(t testing.TB) *podwirev1.StatusResponse {
	t.Helper()
	s, err := a.Client.Status(context.Background(), &podwirev1.StatusRequest{})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitListening waits until something accepts connections at addr. The
// probe connections carry no bytes, so they make no entries.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
