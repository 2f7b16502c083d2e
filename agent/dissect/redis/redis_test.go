package redis

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Verdict
	}{
		{"", NeedMore},
		{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", Yes},
		{"*1\r\n$4\r\nping\r\n", Yes},
		{"*1\r\n$4\r\npi", NeedMore},
		{"*1\r\n$4\r\nPONG\r\n", No},
		{"*1\r\n", NeedMore},
		{"*x\r\n", No},
		{"PING\r\n", Yes},
		{"set a b\r\n", Yes},
		{"GET / HTTP/1.1\r\n", Yes}, // an inline GET: sniffing HTTP first is the caller's job
		{"HELLO", NeedMore},
		{"FOO bar\r\n", No},
		{"+OK\r\n", No},
		{"\x16\x03\x01", No},
	} {
		if got := Detect([]byte(tc.in)); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	b := []byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	if n := testing.AllocsPerRun(100, func() { Detect(b) }); n != 0 {
		t.Errorf("Detect allocates %v times", n)
	}
}

// TestMaxPending checks that a flood of commands without replies is
// bounded: the oldest are emitted unanswered, the rest pair in order.
func TestMaxPending(t *testing.T) {
	var got []*entry.Entry
	st := new(Stats)
	h := New(Config{MaxPending: 4}, &tcp.ConnInfo{Role: tcp.RoleClient}, func(e *entry.Entry) { got = append(got, e) }, st)
	t0 := time.Now()
	for range 10 {
		h.Data(tcp.Egress, []byte("*1\r\n$4\r\nPING\r\n"), t0)
	}
	if n := len(h.(*conn).pend) - h.(*conn).ph; n != 4 {
		t.Fatalf("%d pending, want 4", n)
	}
	h.Data(tcp.Ingress, []byte("+PONG\r\n"), t0.Add(time.Millisecond))
	h.End(tcp.EndFIN, t0)
	if len(got) != 10 || st.Unanswered.Load() != 9 || got[6].Response == nil {
		t.Fatalf("%d entries, %d unanswered; want 10 with the 7th answered", len(got), st.Unanswered.Load())
	}
}

type fuzzOp struct {
	client bool
	gap    int
	data   []byte
}

// fuzzPlan cuts both streams into interleaved deliveries with some gaps.
func fuzzPlan(seed uint64, c2s, s2c []byte) []fuzzOp {
	rng := rand.New(rand.NewPCG(seed, 3))
	var ops []fuzzOp
	for len(c2s) > 0 || len(s2c) > 0 {
		client := len(s2c) == 0 || (len(c2s) > 0 && rng.IntN(2) == 0)
		src := &s2c
		if client {
			src = &c2s
		}
		n := min(len(*src), 1+rng.IntN(64))
		if rng.IntN(16) == 0 {
			ops = append(ops, fuzzOp{client: client, gap: n})
		} else {
			ops = append(ops, fuzzOp{client: client, data: (*src)[:n]})
		}
		*src = (*src)[n:]
	}
	return ops
}

func FuzzRedis(f *testing.F) {
	for _, s := range loadScripts(f) {
		var c2s, s2c []byte
		for _, st := range s.steps {
			if st.kind != 'd' || len(st.data) > 4096 {
				continue
			}
			if st.client {
				c2s = append(c2s, st.data...)
			} else {
				s2c = append(s2c, st.data...)
			}
		}
		f.Add(uint8(s.role), c2s, s2c, uint64(len(c2s)))
	}
	f.Fuzz(func(t *testing.T, role uint8, c2s, s2c []byte, seed uint64) {
		cfg := Config{MaxValueBytes: 64, MaxPending: 8, MaxDepth: 4}
		st := new(Stats)
		var n int
		emit := func(e *entry.Entry) {
			n++
			for _, m := range []*entry.Message{e.Request, e.Response} {
				if m != nil && len(m.Body) > 64 && e.Method != "MESSAGE" {
					t.Fatalf("body of %d bytes over the limit", len(m.Body))
				}
				if m != nil && len(m.Body) > 64 {
					t.Fatalf("payload of %d bytes over the limit", len(m.Body))
				}
			}
		}
		h := New(cfg, &tcp.ConnInfo{Role: tcp.Role(role % 3)}, emit, st)
		c := h.(*conn)
		t0 := time.Unix(0, 0)
		for i, op := range fuzzPlan(seed, c2s, s2c) {
			dir := tcp.Egress
			if !op.client {
				dir = tcp.Ingress
			}
			at := t0.Add(time.Duration(i) * time.Millisecond)
			if op.gap > 0 {
				h.Gap(dir, op.gap, at)
			} else {
				h.Data(dir, op.data, at)
			}
			if c.pending() > cfg.MaxPending {
				t.Fatalf("%d pending", c.pending())
			}
			for j := range c.h {
				hh := &c.h[j]
				if len(hh.stack) > cfg.MaxDepth || len(hh.line) > maxLine+2 || len(hh.tail) > 2*syncKeep || len(hh.body) > cfg.MaxValueBytes || len(hh.path) > maxCapture {
					t.Fatalf("bounds broken: stack %d line %d tail %d body %d", len(hh.stack), len(hh.line), len(hh.tail), len(hh.body))
				}
			}
		}
		h.End(tcp.EndFIN, t0)
		if uint64(n) != st.Entries.Load() {
			t.Fatalf("%d entries emitted, %d counted", n, st.Entries.Load())
		}
	})
}
