package dns

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// FuzzDNS feeds random bytes as datagrams into a Tracker and as TCP
// streams, whole and cut at random places, into the Handler: nothing may
// panic, the bounds must hold, and the TCP entries must not depend on
// how the stream is cut.
func FuzzDNS(f *testing.F) {
	msgs := testdataMessages()
	for _, n := range []string{"a", "aaaa", "cname", "mx", "txt", "srv", "soa", "caa", "edns", "nxdomain", "tc", "pair1", "pair2"} {
		qn, rn := n+".q", n+".r"
		if n == "edns" {
			rn = "badvers.r"
		}
		f.Add(append(slices.Clone(msgs[qn]), msgs[rn]...), uint64(len(msgs[qn])))
	}
	for _, n := range []string{"loop.r", "truncrec.r", "longlabel.r", "forward.r", "longname.q"} {
		f.Add(append(slices.Clone(msgs["a.q"]), msgs[n]...), uint64(len(msgs["a.q"])))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		cfg := Config{MaxPending: 4, MaxRecords: 3}

		// UDP: cut data into datagrams; seed's low bits say where.
		tr := NewTracker(cfg, func(e *entry.Entry) { checkEntry(t, e) }, nil)
		now := t0
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(300))
			if seed&1 == 0 && len(rest) == len(data) && seed/2 < uint64(len(data)) {
				n = max(1, int(seed/2)) // the seed corpus: query, then response
			}
			src, dst := client, server
			if rest[min(2, len(rest)-1)]&0x80 != 0 {
				src, dst = server, client
			}
			tr.Datagram(src, dst, rest[:n], now)
			rest = rest[n:]
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			if rng.IntN(4) == 0 {
				tr.Tick(now)
			}
			if tr.Pending() > cfg.MaxPending {
				t.Fatalf("%d pending", tr.Pending())
			}
		}

		// TCP: the same bytes as one direction's stream, framed as they
		// are; the other direction gets a mirror with QR flipped.
		up := data
		down := slices.Clone(data)
		whole := runTCP(t, cfg, up, down, nil)
		split := runTCP(t, cfg, up, down, rng)
		if whole != split {
			t.Fatalf("entries depend on the cuts:\nwhole:\n%s\nsplit:\n%s", whole, split)
		}
	})
}

func runTCP(t *testing.T, cfg Config, up, down []byte, rng *rand.Rand) string {
	var got []string
	h := New(cfg, &tcp.ConnInfo{Role: tcp.RoleClient}, func(e *entry.Entry) {
		checkEntry(t, e)
		s := line(e)
		if e.Response != nil {
			s += "\n" + string(e.Response.Body)
		}
		got = append(got, s+"\n"+string(e.Request.Body))
	}, nil)
	feed := func(dir tcp.Dir, b []byte) {
		for len(b) > 0 {
			n := len(b)
			if rng != nil {
				n = min(n, 1+rng.IntN(40))
			}
			h.Data(dir, b[:n], t0)
			b = b[n:]
		}
	}
	feed(tcp.Egress, up)
	feed(tcp.Ingress, down)
	h.End(tcp.EndFIN, t0)
	return strings.Join(got, "\n--\n")
}

func checkEntry(t *testing.T, e *entry.Entry) {
	if e.Protocol != "dns" || e.Method == "" || e.Path == "" || e.Request == nil {
		t.Fatalf("bad entry %s", line(e))
	}
	if len(e.Request.Body) > maxBody+4*0xFFFF || e.Response != nil && len(e.Response.Body) > maxBody+4*0xFFFF {
		t.Fatalf("body too large")
	}
	if e.Failed != (e.Status != 0 || e.Response == nil) {
		t.Fatalf("failed=%v with status %d", e.Failed, e.Status)
	}
}
