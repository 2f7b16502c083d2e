package redis

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// cutRun plays c2s then s2c, each cut into pieces of at most piece bytes
// (0: whole), and prints the entries it gets. Whole pieces take the fast
// paths for bulk strings; single bytes never do.
func cutRun(cfg Config, c2s, s2c []byte, piece int) (out []string, st *Stats) {
	st = new(Stats)
	emit := func(e *entry.Entry) {
		c := *e
		c.Request, c.Response = nil, nil
		s := fmt.Sprintf("%#v", c)
		for _, m := range []*entry.Message{e.Request, e.Response} {
			if m != nil {
				s += fmt.Sprintf("\n%q/%d trunc=%v", m.Body, m.BodyBytes, m.Truncated)
			}
		}
		out = append(out, s)
	}
	h := New(cfg, &tcp.ConnInfo{Role: tcp.RoleClient}, emit, st)
	t0 := time.Unix(1, 0)
	for _, d := range []struct {
		dir tcp.Dir
		b   []byte
	}{{tcp.Egress, c2s}, {tcp.Ingress, s2c}} {
		for b := d.b; len(b) > 0; {
			n := len(b)
			if piece > 0 {
				n = min(n, piece)
			}
			h.Data(d.dir, b[:n], t0)
			b = b[n:]
		}
	}
	h.End(tcp.EndFIN, t0)
	return out, st
}

// sameCuts checks that how the streams are cut changes nothing.
func sameCuts(t *testing.T, cfg Config, c2s, s2c []byte) {
	t.Helper()
	want, st := cutRun(cfg, c2s, s2c, 1)
	if st.Malformed.Load() > 0 {
		// Resyncing after garbage may depend on the cuts.
		return
	}
	for _, piece := range []int{0, 7, 64} {
		got, _ := cutRun(cfg, c2s, s2c, piece)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pieces of %d bytes:\n got %q\nwant %q", piece, got, want)
		}
	}
}

// randReply is a random RESP3 value, mostly bulk strings in aggregates.
func randReply(rng *rand.Rand, depth int, b []byte) []byte {
	k := rng.IntN(16)
	if depth >= 3 && k >= 10 {
		k = rng.IntN(10)
	}
	switch {
	case k < 6:
		v := make([]byte, rng.IntN(6))
		if rng.IntN(8) == 0 {
			v = make([]byte, 30+rng.IntN(40))
		}
		for i := range v {
			switch rng.IntN(10) {
			case 0:
				v[i] = byte(rng.IntN(256))
			case 1:
				v[i] = "\"\\\r\n\t"[rng.IntN(5)]
			default:
				v[i] = byte('a' + rng.IntN(26))
			}
		}
		return fmt.Appendf(b, "$%d\r\n%s\r\n", len(v), v)
	case k == 6:
		return fmt.Appendf(b, ":%d\r\n", rng.IntN(100))
	case k == 7:
		return append(b, "$-1\r\n"...)
	case k == 8:
		return append(b, "+OK\r\n"...)
	case k == 9:
		return append(b, "=8\r\ntxt:a\"b\x01\r\n"...)
	default:
		kind := "***~%>|"[rng.IntN(7)]
		n := rng.IntN(12)
		if depth == 0 && rng.IntN(3) == 0 {
			n = 95 + rng.IntN(10)
		}
		b = fmt.Appendf(b, "%c%d\r\n", kind, n)
		if kind == '%' || kind == '|' {
			n *= 2
		}
		for range n {
			b = randReply(rng, depth+1, b)
		}
		if kind == '|' {
			b = randReply(rng, depth+1, b)
		}
		return b
	}
}

// TestFastPathCuts checks the fast paths for whole bulk strings against
// the step-by-step parse on random replies, cut by every body limit.
func TestFastPathCuts(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 300 {
		var c2s, s2c []byte
		for range 1 + rng.IntN(4) {
			c2s = append(c2s, "*4\r\n$6\r\nLRANGE\r\n$6\r\nmy\"key\r\n$1\r\n0\r\n$2\r\n-1\r\n"...)
			s2c = randReply(rng, 0, s2c)
		}
		maxv := 1 + rng.IntN(400)
		if rng.IntN(4) == 0 {
			maxv = 0
		}
		sameCuts(t, Config{MaxValueBytes: maxv, MaxDepth: 8}, c2s, s2c)
	}
}

func FuzzCuts(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		f.Add(uint16(rng.IntN(200)), []byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\x00\r\n"), randReply(rng, 0, nil))
	}
	f.Fuzz(func(t *testing.T, maxv uint16, c2s, s2c []byte) {
		sameCuts(t, Config{MaxValueBytes: int(maxv), MaxPending: 8, MaxDepth: 6}, c2s, s2c)
	})
}
