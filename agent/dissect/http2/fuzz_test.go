package http2

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

func seedConv() *conv {
	v := newConv(true)
	grpcCall(v, 1, "/shop.Cart/Get")
	v.data(true, 1, true, grpcFrame(false, sampleMsg()))
	v.get(3, "/x")
	v.headers(false, 1, false, ":status", "200", "content-type", "application/grpc")
	v.data(false, 1, false, grpcFrame(false, sampleMsg()))
	v.headers(false, 3, false, ":status", "200")
	v.data(false, 3, true, []byte("hello"))
	v.headers(false, 1, true, "grpc-status", "0")
	return v
}

func FuzzHTTP2(f *testing.F) {
	v := seedConv()
	c2s, s2c := v.streams()
	f.Add(uint8(1), c2s, s2c, uint64(1))
	f.Add(uint8(0), c2s[24:], s2c, uint64(2))
	f.Fuzz(func(t *testing.T, role uint8, c2s, s2c []byte, seed uint64) {
		fuzzConn(t, role, c2s, s2c, seed, func(cfg Config, info *tcp.ConnInfo, emit func(*entry.Entry), st *Stats) tcp.Handler {
			return New(cfg, info, emit, st)
		})
	})
}

// FuzzUpgraded: a connection upgraded to h2c, stream 1 opened by the
// HTTP/1.1 request.
func FuzzUpgraded(f *testing.F) {
	v := upgradedConv()
	v.headers(false, 1, false, ":status", "200", "content-type", "text/plain")
	v.get(3, "/x")
	v.data(false, 1, true, []byte("pong"))
	v.headers(false, 3, true, ":status", "204")
	c2s, s2c := v.streams()
	f.Add(uint8(1), c2s, s2c, uint64(1))
	f.Add(uint8(2), c2s[24:], s2c, uint64(2))
	f.Fuzz(func(t *testing.T, role uint8, c2s, s2c []byte, seed uint64) {
		fuzzConn(t, role, c2s, s2c, seed, func(cfg Config, info *tcp.ConnInfo, emit func(*entry.Entry), st *Stats) tcp.Handler {
			req := Upgraded{Method: "GET", Path: "/up", Authority: "a", Body: []byte("ping"), BodyBytes: 4}
			return NewUpgraded(cfg, info, emit, st, tcp.Dir(role>>2&1), req)
		})
	})
}

// fuzzConn feeds c2s and s2c, split at random, to the handler mk makes,
// and checks the bounds hold.
func fuzzConn(t *testing.T, role uint8, c2s, s2c []byte, seed uint64, mk func(Config, *tcp.ConnInfo, func(*entry.Entry), *Stats) tcp.Handler) {
	cfg := Config{MaxBodyBytes: 64, MaxStreams: 4, MaxHeaderListBytes: 256, MaxGRPCMessages: 2}
	st := new(Stats)
	emit := func(e *entry.Entry) {
		for _, m := range []*entry.Message{e.Request, e.Response} {
			if m != nil && len(m.Body) > cfg.MaxBodyBytes {
				t.Fatalf("body of %d bytes over the limit", len(m.Body))
			}
		}
	}
	h := mk(cfg, &tcp.ConnInfo{Role: tcp.Role(role % 3)}, emit, st)
	c := h.(*conn)
	rng := rand.New(rand.NewPCG(seed, 0))
	t0 := time.Unix(0, 0)
	for i := 0; len(c2s)+len(s2c) > 0; i++ {
		dir, b := tcp.Egress, &c2s
		if len(c2s) == 0 || (len(s2c) > 0 && rng.IntN(2) == 0) {
			dir, b = tcp.Ingress, &s2c
		}
		n := 1 + rng.IntN(len(*b))
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if rng.IntN(16) == 0 {
			h.Gap(dir, n, at)
		} else {
			h.Data(dir, (*b)[:n], at)
		}
		*b = (*b)[n:]
		if len(c.streams) > cfg.MaxStreams {
			t.Fatalf("%d streams open", len(c.streams))
		}
		for i := range c.h {
			// Lengths are bounded; capacities may be up to twice that
			// from append's growth.
			if len(c.h[i].buf) > cfg.MaxHeaderListBytes+64 || cap(c.h[i].buf) > 2*(cfg.MaxHeaderListBytes+64) ||
				cap(c.h[i].block) > 2*(cfg.MaxHeaderListBytes+64)+4096 {
				t.Fatalf("buffers: len %d cap %d, block cap %d", len(c.h[i].buf), cap(c.h[i].buf), cap(c.h[i].block))
			}
			if d := &c.h[i].dyn; d.size > maxTableSize || len(d.ents) > 4096 {
				t.Fatalf("dynamic table: size %d, %d slots", d.size, len(d.ents))
			}
		}
	}
	h.End(tcp.EndFIN, t0)
	if len(c.streams) != 0 {
		t.Fatalf("streams left after End")
	}
}
