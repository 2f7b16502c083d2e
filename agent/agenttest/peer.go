package agenttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// Peers are the Go programs tests run inside a capture cgroup: the test
// binary re-executes itself with PODWIRE_PEER set. Call PeerMain first in
// TestMain.

const peerEnv = "PODWIRE_PEER"

// PeerMain runs the peer named by $PODWIRE_PEER and exits; without it, it
// returns at once.
func PeerMain() {
	role := os.Getenv(peerEnv)
	if role == "" {
		return
	}
	args := strings.Fields(role)
	var err error
	switch args[0] {
	case "http-server":
		err = httpServer(args[1])
	case "http-client":
		n, _ := strconv.Atoi(args[2])
		err = httpClient(args[1], n)
	case "http-hold":
		err = httpHold(args[1])
	case "raw":
		err = raw(args[1])
	case "grpc-server":
		err = grpcServer(args[1])
	case "grpc-client":
		n, _ := strconv.Atoi(args[2])
		err = grpcClient(args[1], n)
	case "h2c-server":
		err = h2cServer(args[1])
	case "dns-server":
		err = dnsServer(args[1])
	case "h2c-upgrade-server":
		err = h2cUpgradeServer(args[1])
	case "h2c-hold":
		err = h2cHold(args[1])
	case "greet-server":
		err = greetServer(args[1])
	default:
		err = fmt.Errorf("unknown peer %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Peer is a command running the test binary as the peer role (for
// example "http-server 127.0.0.1:8080") inside the cgroup.
func (c *Cgroup) Peer(role string) *exec.Cmd {
	cmd := c.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+role)
	return cmd
}

func httpServer(addr string) error {
	srv := &http.Server{Addr: addr, Handler: testMux(), ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// testMux is the test servers' handlers: /status/{code}, /echo, /chunked,
// /bytes/{n}, /sleep/{ms}, and JSON naming the path for anything else.
func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/sleep/{ms}", func(w http.ResponseWriter, r *http.Request) {
		// Answers after ms milliseconds (at most a minute), for latencies.
		ms, err := strconv.Atoi(r.PathValue("ms"))
		if err != nil || ms < 0 || ms > 60000 {
			http.Error(w, "bad duration", http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "slept %d ms\n", ms)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 100 || code > 599 {
			http.Error(w, "bad code", http.StatusBadRequest)
			return
		}
		if code != 204 && code != 304 {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(code)
			fmt.Fprintf(w, "status %d for %s\n", code, r.URL.Path)
			return
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Header().Set("X-Received-Bytes", strconv.Itoa(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Trailer", "X-Checksum")
		f := w.(http.Flusher)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "chunk %d\n", i)
			f.Flush()
		}
		w.Header().Set("X-Checksum", strconv.Itoa(n))
	})
	mux.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = byte('a' + i%26)
		}
		for n > 0 {
			k := min(n, len(buf))
			w.Write(buf[:k])
			n -= k
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"path\":%q,\"method\":%q}\n", r.URL.Path, r.Method)
	})
	return mux
}

// httpClient does n GETs of base+i on one keep-alive connection.
func httpClient(base string, n int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		resp, err := cl.Get(base + strconv.Itoa(i))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return nil
}

// httpHold opens one connection and sends a GET of each path read from
// stdin on it, printing "ok <status>" after each response.
func httpHold(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		path := strings.TrimSpace(in.Text())
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("ok %d\n", resp.StatusCode)
	}
	return nil
}

// raw writes stdin to addr, closes its write side and copies the reply to
// stdout.
func raw(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.Copy(c, os.Stdin); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(os.Stdout, c)
	return err
}

// h2cUpgradeServer serves the test mux at addr over HTTP/1.1, taking
// HTTP/1.1 Upgrade: h2c (RFC 7540 section 3.2) to HTTP/2 cleartext, as
// x/net's h2c handler does (net/http itself does prior knowledge only).
func h2cUpgradeServer(addr string) error {
	srv := &http.Server{Addr: addr, Handler: h2c.NewHandler(testMux(), &http2.Server{}), ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// h2cHold keeps one HTTP/2 cleartext (prior knowledge) connection to addr
// and sends a GET of each path read from stdin on it, printing
// "ok <status>" after each response.
func h2cHold(addr string) error {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	conns := 0
	tr := &http.Transport{Protocols: &p, MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			conns++
			if conns > 1 {
				return nil, fmt.Errorf("a second connection: the held one was lost")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, a)
		}}
	cl := &http.Client{Transport: tr}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		resp, err := cl.Get("http://" + addr + strings.TrimSpace(in.Text()))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			return fmt.Errorf("got %s, want HTTP/2", resp.Proto)
		}
		fmt.Printf("ok %d\n", resp.StatusCode)
	}
	return nil
}

// GreetingBytes is what greet-server sends first on each connection: 1 KiB
// of a binary protocol no dissector knows.
var GreetingBytes = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(0xf0 ^ i)
	}
	return b
}()

// greetServer speaks a made-up binary protocol at addr: on each connection
// it sends GreetingBytes, reads until the client closes its side, and
// answers with the number of bytes read as 8 bytes, big-endian.
func greetServer(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			if _, err := c.Write(GreetingBytes); err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, c)
			var out [8]byte
			for i := range out {
				out[7-i] = byte(n >> (8 * i))
			}
			c.Write(out[:])
		}()
	}
}

// dnsServer answers DNS queries over UDP at addr: A and AAAA for names under
// podwire.test. (198.18.5.5 and 2001:db8::5), NXDOMAIN for anything else.
// The addresses are answers only: nothing is ever sent to them.
func dnsServer(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		name := strings.ToLower(q.Name.String())
		rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, Authoritative: true}
		known := strings.HasSuffix(name, ".podwire.test.")
		if !known {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if known {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch q.Type {
			case dnsmessage.TypeA:
				b.AResource(rh, dnsmessage.AResource{A: [4]byte{198, 18, 5, 5}})
			case dnsmessage.TypeAAAA:
				b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 5}})
			}
		}
		out, err := b.Finish()
		if err != nil {
			continue
		}
		pc.WriteTo(out, from)
	}
}

// h2cServer serves HTTP/2 without TLS (prior knowledge) at addr, with the
// same handlers as the HTTP/1 test server.
func h2cServer(addr string) error {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: addr, Handler: testMux(), Protocols: &p, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
