package daemon_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// startHTTPServers starts the Go test server and python3 -m http.server in
// cg and returns their addresses; the python server serves files f0..f99.
func startHTTPServers(t *testing.T, cg *agenttest.Cgroup) (goAddr, pyAddr string) {
	t.Helper()
	goAddr = startServerPeer(t, cg, "http-server")
	dir := t.TempDir()
	for i := 0; i < 100; i++ {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644)
	}
	pyPort := agenttest.FreePort(t)
	pyAddr = fmt.Sprintf("127.0.0.1:%d", pyPort)
	cg.Start(t, "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, strconv.Itoa(pyPort))
	agenttest.WaitListening(t, pyAddr)
	return goAddr, pyAddr
}

// startServerPeer starts the peer role (a server) in cg on a free loopback
// port and returns its address once it listens.
func startServerPeer(t *testing.T, cg *agenttest.Cgroup, role string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(t))
	startPeer(t, cg, role+" "+addr)
	agenttest.WaitListening(t, addr)
	return addr
}

func startPeer(t *testing.T, cg *agenttest.Cgroup, role string) {
	t.Helper()
	cmd := cg.Peer(role)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("peer %s output:\n%s", role, out.String())
		}
	})
}

// curlURLs runs one curl invocation fetching every URL (one keep-alive
// connection where the server allows it) and returns curl's output.
func curlURLs(t *testing.T, cg *agenttest.Cgroup, urls []string, extra ...string) string {
	t.Helper()
	args := append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}\n"}, extra...)
	for i, u := range urls {
		if i > 0 {
			args = append(args, "-o", "/dev/null")
		}
		args = append(args, u)
	}
	return cg.Run(t, "curl", args...)
}

type want struct {
	method string
	status int32
}

func TestThousandRequestsFromCurlAndGo(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	goAddr, pyAddr := startHTTPServers(t, cg)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	expect := map[string]want{} // "host path" -> want
	statuses := []int32{200, 201, 404, 500, 503}

	// curl, keep-alive, 300 URLs against the Go server.
	var urls []string
	for i := 0; i < 300; i++ {
		code := statuses[i%len(statuses)]
		p := fmt.Sprintf("/status/%d?curl=%d", code, i)
		urls = append(urls, "http://"+goAddr+p)
		expect[goAddr+" "+p] = want{"GET", code}
	}
	curlURLs(t, cg, urls)

	// curl, 200 URLs against python's server (HTTP/1.0, one connection each).
	urls = urls[:0]
	for i := 0; i < 200; i++ {
		p := fmt.Sprintf("/f%d", i) // f0..f99 exist, f100.. do not
		code := int32(200)
		if i >= 100 {
			code = 404
		}
		urls = append(urls, "http://"+pyAddr+p)
		expect[pyAddr+" "+p] = want{"GET", code}
	}
	curlURLs(t, cg, urls)

	// Go net/http clients: 300 against the Go server, 200 against python.
	run := func(base string, n int) {
		cmd := cg.Peer(fmt.Sprintf("http-client %s %d", base, n))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go client: %v\n%s", err, out)
		}
	}
	run("http://"+goAddr+"/go/item-", 300)
	for i := 0; i < 300; i++ {
		expect[fmt.Sprintf("%s /go/item-%d", goAddr, i)] = want{"GET", 200}
	}
	run("http://"+pyAddr+"/f", 200)
	for i := 0; i < 200; i++ {
		code := int32(200)
		if i >= 100 {
			code = 404
		}
		expect[fmt.Sprintf("%s /f%d", pyAddr, i)] = want{"GET", code}
	}

	entries := a.WaitEntries(t, "", 1000, 60*time.Second)
	if len(entries) != 1000 {
		t.Fatalf("got %d entries, want exactly 1000", len(entries))
	}
	seenIDs := map[string]bool{}
	count := map[string]int{}
	for _, e := range entries {
		if seenIDs[e.Id] {
			t.Errorf("entry id %s twice", e.Id)
		}
		seenIDs[e.Id] = true
		key := fmt.Sprintf("%s:%d %s", e.GetDst().GetIp(), e.GetDst().GetPort(), e.Path)
		w, ok := expect[key]
		if !ok {
			t.Errorf("unexpected entry %s %s -> %d", e.Method, key, e.Status)
			continue
		}
		count[key]++
		if e.Method != w.method || e.Status != w.status {
			t.Errorf("%s: got %s -> %d, want %s -> %d", key, e.Method, e.Status, w.method, w.status)
		}
		if e.LatencyMs <= 0 {
			t.Errorf("%s: latency %v, want > 0", key, e.LatencyMs)
		}
		if e.Protocol != "http" || !strings.HasPrefix(e.HttpVersion, "1.") {
			t.Errorf("%s: protocol %q version %q", key, e.Protocol, e.HttpVersion)
		}
	}
	// python paths are fetched twice (curl and Go), the others once.
	for key := range expect {
		n := 1
		if strings.HasPrefix(key, pyAddr+" ") {
			n = 2
		}
		if count[key] != n {
			t.Errorf("%s: %d entries, want %d", key, count[key], n)
		}
	}
}

// randomText returns n bytes of printable text.
func randomText(n int) []byte {
	raw := make([]byte, n)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	return []byte(enc[:n])
}

func TestPostBodiesExactAndTruncated(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	goAddr, _ := startHTTPServers(t, cg)
	const limit = 1 << 20
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path, MaxBodyBytes: limit})

	sizes := []int{0, 1 << 10, 100 << 10, 5 << 20}
	bodies := map[string][]byte{}
	for _, n := range sizes {
		body := randomText(n)
		f := filepath.Join(t.TempDir(), "body")
		os.WriteFile(f, body, 0o644)
		path := fmt.Sprintf("/echo?size=%d", n)
		bodies[path] = body
		curlURLs(t, cg, []string{"http://" + goAddr + path}, "-H", "Content-Type: text/plain", "--data-binary", "@"+f)
	}
	entries := a.WaitEntries(t, `method == "POST"`, len(sizes), 60*time.Second)
	if len(entries) != len(sizes) {
		t.Fatalf("got %d POST entries, want %d", len(entries), len(sizes))
	}
	for _, s := range entries {
		body, ok := bodies[s.Path]
		if !ok {
			t.Fatalf("unexpected path %s", s.Path)
		}
		e := a.Get(t, s.Id)
		for _, m := range []struct {
			name string
			msg  *podwirev1.Message
		}{{"request", e.Request}, {"response", e.Response}} {
			if m.msg == nil {
				t.Errorf("%s: no %s", s.Path, m.name)
				continue
			}
			if m.msg.BodyBytes != int64(len(body)) {
				t.Errorf("%s %s: bodyBytes %d, want %d", s.Path, m.name, m.msg.BodyBytes, len(body))
			}
			keep := body
			if len(body) > limit {
				keep = body[:limit]
			}
			if m.msg.Truncated != (len(body) > limit) {
				t.Errorf("%s %s: truncated=%v with %d bytes and a %d limit", s.Path, m.name, m.msg.Truncated, len(body), limit)
			}
			if m.msg.Body != string(keep) {
				t.Errorf("%s %s: body of %d bytes differs from the %d sent (first difference at %d)", s.Path, m.name, len(m.msg.Body), len(keep), firstDiff(m.msg.Body, string(keep)))
			}
		}
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestChunkedPipelinedHeadNoBody(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	goAddr, _ := startHTTPServers(t, cg)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})

	curlURLs(t, cg, []string{"http://" + goAddr + "/chunked?n=7"})
	curlURLs(t, cg, []string{"http://" + goAddr + "/head-me"}, "-I")
	curlURLs(t, cg, []string{"http://" + goAddr + "/status/204", "http://" + goAddr + "/status/304", "http://" + goAddr + "/after-304"})

	// Three requests written at once on one raw socket.
	pipelined := "GET /pipe/1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /echo?pipe=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /pipe/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	cmd := cg.Peer("raw " + goAddr)
	cmd.Stdin = strings.NewReader(pipelined)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "HTTP/1.1 200") != 3 {
		t.Fatalf("pipelined exchange: %v\n%s", err, out)
	}

	entries := a.WaitEntries(t, "", 8, 30*time.Second)
	byPath := map[string]*podwirev1.Entry{}
	for _, e := range entries {
		if byPath[e.Path] != nil {
			t.Errorf("two entries for %s", e.Path)
		}
		byPath[e.Path] = e
	}
	check := func(path, method string, status int32) *podwirev1.Entry {
		t.Helper()
		e := byPath[path]
		if e == nil {
			t.Errorf("no entry for %s; have %v", path, keys(byPath))
			return nil
		}
		if e.Method != method || e.Status != status {
			t.Errorf("%s: %s -> %d, want %s -> %d", path, e.Method, e.Status, method, status)
		}
		return a.Get(t, e.Id)
	}
	if e := check("/chunked?n=7", "GET", 200); e != nil {
		var want strings.Builder
		for i := 0; i < 7; i++ {
			fmt.Fprintf(&want, "chunk %d\n", i)
		}
		if e.Response.Body != want.String() {
			t.Errorf("chunked body %q, want %q", e.Response.Body, want.String())
		}
		if e.Response.Trailers["x-checksum"] != "7" {
			t.Errorf("chunked trailers %v, want x-checksum 7", e.Response.Trailers)
		}
		if e.Response.Headers["transfer-encoding"] != "chunked" {
			t.Errorf("transfer-encoding %q", e.Response.Headers["transfer-encoding"])
		}
	}
	if e := check("/head-me", "HEAD", 200); e != nil && (e.Response.Body != "" || e.Response.BodyBytes != 0) {
		t.Errorf("HEAD response has a body: %q", e.Response.Body)
	}
	check("/status/204", "GET", 204)
	check("/status/304", "GET", 304)
	// The request after a 304 on the same connection pairs correctly: 304
	// has no body even though nothing says so.
	check("/after-304", "GET", 200)
	check("/pipe/1", "GET", 200)
	if e := check("/echo?pipe=2", "POST", 200); e != nil && (e.Request.Body != "hello" || e.Response.Body != "hello") {
		t.Errorf("pipelined POST bodies %q / %q", e.Request.Body, e.Response.Body)
	}
	check("/pipe/3", "GET", 200)
	if len(entries) != 8 {
		t.Errorf("%d entries, want 8: %v", len(entries), keys(byPath))
	}
}

func keys(m map[string]*podwirev1.Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestConnectionOpenedBeforeAgent(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	goAddr, _ := startHTTPServers(t, cg)

	hold := cg.Peer("http-hold " + goAddr)
	stdin, _ := hold.StdinPipe()
	stdout, _ := hold.StdoutPipe()
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer hold.Wait()
	defer stdin.Close()
	buf := make([]byte, 64)
	step := func(path string) {
		t.Helper()
		fmt.Fprintln(stdin, path)
		n, err := stdout.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "ok ") {
			t.Fatalf("held connection, %s: %v %q", path, err, buf[:n])
		}
	}
	step("/before-agent")

	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: cg.Path})
	step("/status/201")
	step("/after-agent")
	entries := a.WaitEntries(t, "", 2, 30*time.Second)
	got := map[string]int32{}
	for _, e := range entries {
		got[e.Path] = e.Status
		if e.GetSrc().GetPort() == 0 || e.GetDst().GetPort() == 0 || fmt.Sprint(e.GetDst().GetPort()) != strings.Split(goAddr, ":")[1] {
			t.Errorf("%s: roles wrong: src %v dst %v", e.Path, e.Src, e.Dst)
		}
	}
	if len(entries) != 2 || got["/status/201"] != 201 || got["/after-agent"] != 200 {
		t.Errorf("entries on the connection opened before the agent: %v, want /status/201 -> 201 and /after-agent -> 200", got)
	}
}
