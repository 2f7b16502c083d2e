package capture_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/capture"
	"github.com/podwire/podwire/agent/tcp"
)

func TestMain(m *testing.M) {
	agenttest.PeerMain()
	os.Exit(m.Run())
}

// TestCapturesWholeStreams sends 300 KiB from a process in the capture
// cgroup over IPv4 and IPv6 loopback and rebuilds the bytes from the
// records by sequence number: large GSO packets must arrive whole, in
// chunks, with nothing lost.
func TestCapturesWholeStreams(t *testing.T) {
	agenttest.RequireRoot(t)
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-cap-"))
			c, err := capture.Open(capture.Config{CgroupPath: cg.Path})
			if err != nil {
				t.Fatal(err)
			}
			host := "127.0.0.1:0"
			if network == "tcp6" {
				host = "[::1]:0"
			}
			ln, err := net.Listen(network, host)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			reply := []byte("thanks")
			var received bytes.Buffer
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(&received, s)
				s.Write(reply)
				s.Close()
			}()

			payload := make([]byte, 300<<10)
			rand.Read(payload)
			var mu sync.Mutex
			sent := map[uint32][]byte{} // seq -> bytes, egress of the client socket
			var isn uint32
			var sawSYN, sawFIN, sawReply bool
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			done := make(chan error, 1)
			go func() {
				done <- c.Run(func(s *tcp.Segment) {
					if s.Remote.Port() != port {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if s.Dir == tcp.Egress {
						if s.Flags&tcp.FlagSYN != 0 {
							sawSYN, isn = true, s.Seq
						}
						if s.Flags&tcp.FlagFIN != 0 {
							sawFIN = true
						}
						if len(s.Payload) > 0 {
							sent[s.Seq] = append([]byte(nil), s.Payload...)
						}
					} else if bytes.Equal(s.Payload, reply) {
						sawReply = true
					}
				}, func(time.Time) {}, 50*time.Millisecond)
			}()

			cmd := cg.Peer("raw " + ln.Addr().String())
			cmd.Stdin = bytes.NewReader(payload)
			out, err := cmd.CombinedOutput()
			if err != nil || !bytes.Equal(out, reply) {
				t.Fatalf("client: %v %q", err, out)
			}
			time.Sleep(300 * time.Millisecond)
			counters := c.Counters()
			c.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(received.Bytes(), payload) {
				t.Fatalf("server got %d bytes, want %d", received.Len(), len(payload))
			}
			mu.Lock()
			defer mu.Unlock()
			if !sawSYN || !sawFIN || !sawReply {
				t.Errorf("syn %v fin %v reply %v", sawSYN, sawFIN, sawReply)
			}
			var rebuilt []byte
			seq := isn + 1
			for len(rebuilt) < len(payload) {
				b, ok := sent[seq]
				if !ok {
					for k, v := range sent {
						t.Logf("have seq offset %d len %d", k-isn-1, len(v))
					}
					t.Fatalf("no record at seq offset %d of %d; counters %v", len(rebuilt), len(payload), counters)
				}
				rebuilt = append(rebuilt, b...)
				seq += uint32(len(b))
			}
			if !bytes.Equal(rebuilt, payload) {
				t.Errorf("captured bytes differ from those sent (first difference at %d)", firstDiff(rebuilt, payload))
			}
			if counters["bpf_records"] == 0 || counters["bpf_ringbuf_full"] != 0 || counters["bpf_truncated_packets"] != 0 {
				t.Errorf("counters %v", counters)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestCapturesUDPOnChosenPorts sends datagrams from a process in the
// capture cgroup to two loopback ports: the one configured comes up whole,
// marked UDP; the other is only counted.
func TestCapturesUDPOnChosenPorts(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-cap-"))
	dnsLike, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dnsLike.Close()
	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	port := uint16(dnsLike.LocalAddr().(*net.UDPAddr).Port)
	c, err := capture.Open(capture.Config{CgroupPath: cg.Path, UDPPorts: []uint16{port}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]byte
	done := make(chan error, 1)
	go func() {
		done <- c.Run(func(s *tcp.Segment) {
			if s.UDP && s.Remote.Port() == port {
				mu.Lock()
				got = append(got, append([]byte(nil), s.Payload...))
				mu.Unlock()
			}
		}, func(time.Time) {}, 50*time.Millisecond)
	}()
	script := `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.sendto(b"query-one",("127.0.0.1",int(sys.argv[1])))
s.sendto(b"query-two",("127.0.0.1",int(sys.argv[1])))
s.sendto(b"not-captured",("127.0.0.1",int(sys.argv[2])))`
	cg.Run(t, "python3", "-c", script, fmt.Sprint(port), fmt.Sprint(other.LocalAddr().(*net.UDPAddr).Port))
	time.Sleep(300 * time.Millisecond)
	counters := c.Counters()
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || string(got[0]) != "query-one" || string(got[1]) != "query-two" {
		t.Errorf("captured datagrams %q, want query-one and query-two", got)
	}
	if counters["bpf_udp_other"] == 0 {
		t.Errorf("bpf_udp_other = 0: the datagram to the other port was not counted")
	}
}
