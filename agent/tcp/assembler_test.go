package tcp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	t0  = time.Unix(1_700_000_000, 0)
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:80")
)

// recorder is a Handler that writes its calls as text:
// "e:abc" / "i:abc" for Data (consecutive Data of one direction merged),
// "e!3" / "i!3" for Gap, "end:fin" for End.
type recorder struct {
	info   *ConnInfo
	calls  []string
	ended  bool
	misuse string
}

func (r *recorder) Data(d Dir, b []byte, _ time.Time) {
	r.check()
	if len(b) == 0 {
		r.misuse = "empty Data"
	}
	p := d.String()[:1] + ":"
	if n := len(r.calls); n > 0 && strings.HasPrefix(r.calls[n-1], p) {
		r.calls[n-1] += string(b)
		return
	}
	r.calls = append(r.calls, p+string(b))
}

func (r *recorder) Gap(d Dir, n int, _ time.Time) {
	r.check()
	if n <= 0 {
		r.misuse = "empty Gap"
	}
	r.calls = append(r.calls, fmt.Sprintf("%s!%d", d.String()[:1], n))
}

func (r *recorder) End(reason EndReason, _ time.Time) {
	r.check()
	r.ended = true
	r.calls = append(r.calls, "end:"+reason.String())
}

func (r *recorder) check() {
	if r.ended {
		r.misuse = "call after End"
	}
}

func (r *recorder) String() string { return strings.Join(r.calls, " ") }

// step is one thing a test does: add a segment, tick, or close.
type step struct {
	seg   *Segment
	tick  time.Duration // Tick(t0+tick) when seg is nil and close is false
	close bool
}

// sg builds a segment of the client socket (cookie 1) at t0+ms.
func sg(ms int, d Dir, seq uint32, flags uint8, payload string) step {
	return step{seg: &Segment{
		Cookie: 1, CgroupID: 7, Time: t0.Add(time.Duration(ms) * time.Millisecond),
		Dir: d, Local: cli, Remote: srv, Seq: seq, Flags: flags, Payload: []byte(payload),
	}}
}

func out(ms int, seq uint32, flags uint8, p string) step { return sg(ms, Egress, seq, flags, p) }
func in(ms int, seq uint32, flags uint8, p string) step  { return sg(ms, Ingress, seq, flags, p) }

func tick(ms int) step { return step{tick: time.Duration(ms) * time.Millisecond} }

// with changes the segment of a step.
func (s step) with(f func(*Segment)) step { f(s.seg); return s }

// mirror is the same segment as the server socket (cookie 2) sees it.
func mirror(s step) step {
	m := *s.seg
	m.Cookie = 2
	m.Local, m.Remote = s.seg.Remote, s.seg.Local
	m.Dir = 1 - s.seg.Dir
	return step{seg: &m}
}

const (
	A  = FlagACK
	S  = FlagSYN
	SA = FlagSYN | FlagACK
	FA = FlagFIN | FlagACK
	RA = FlagRST | FlagACK
	PA = FlagPSH | FlagACK
)

// handshake: client ISN 99, server ISN 499, so data starts at 100 / 500.
var handshake = []step{out(0, 99, S, ""), in(1, 499, SA, ""), out(2, 100, A, "")}

func steps(parts ...[]step) []step {
	var r []step
	for _, p := range parts {
		r = append(r, p...)
	}
	return r
}

type run struct {
	a    *Assembler
	recs []*recorder
}

// play feeds steps to a new Assembler whose factory records every
// connection; nilHandler makes the factory return nil.
func play(t *testing.T, cfg Config, nilHandler bool, ss []step) *run {
	t.Helper()
	r := &run{}
	r.a = NewAssembler(cfg, func(c *ConnInfo) Handler {
		rec := &recorder{info: c}
		r.recs = append(r.recs, rec)
		if nilHandler {
			return nil
		}
		return rec
	})
	for _, s := range ss {
		switch {
		case s.seg != nil:
			r.a.Add(s.seg)
		case s.close:
			r.a.Close(t0.Add(time.Hour))
		default:
			r.a.Tick(t0.Add(s.tick))
		}
	}
	for _, rec := range r.recs {
		if rec.misuse != "" {
			t.Errorf("conn %d: %s", rec.info.ID, rec.misuse)
		}
	}
	return r
}

func (r *run) got() []string {
	var g []string
	for _, rec := range r.recs {
		g = append(g, rec.String())
	}
	return g
}

func ptr[T any](v T) *T { return &v }

func TestAssembler(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		want  []string           // per connection, in creation order
		role  *Role              // checked when set
		stats func(Stats) string // returns a complaint, or ""
	}{
		{
			name: "in order, both directions, FIN both ways",
			steps: steps(handshake, []step{
				out(3, 100, PA, "GET / HTTP/1.1\r\n\r\n"),
				in(4, 500, PA, "HTTP/1.1 200 OK\r\n"),
				in(5, 517, PA, "\r\n"),
				out(6, 118, FA, ""),
				in(7, 519, FA, ""),
				out(8, 119, A, ""),
			}),
			want: []string{"e:GET / HTTP/1.1\r\n\r\n i:HTTP/1.1 200 OK\r\n\r\n end:fin"},
			role: ptr(RoleClient),
			stats: func(s Stats) string {
				if s.Conns != 0 || s.ConnsTotal != 1 || s.Delivered != 37 || s.Gaps != 0 {
					return "want 0 open, 1 total, 37 delivered, no gaps"
				}
				return ""
			},
		},
		{
			name: "split packet chunks are joined",
			steps: steps(handshake, []step{
				out(3, 100, A, "hello "), out(3, 106, A, "big "), out(3, 110, PA, "world"),
				tick(60_000),
			}),
			want: []string{"e:hello big world"},
		},
		{
			name: "exact retransmit is delivered once",
			steps: steps(handshake, []step{
				out(3, 100, PA, "abc"), out(300, 100, PA, "abc"), out(301, 103, PA, "def"),
			}),
			want: []string{"e:abcdef"},
			stats: func(s Stats) string {
				if s.Retransmits != 1 || s.DupBytes != 3 || s.Overlaps != 0 {
					return "want 1 retransmit of 3 bytes"
				}
				return ""
			},
		},
		{
			name: "partial overlap delivers only new bytes",
			steps: steps(handshake, []step{
				out(3, 100, PA, "abcd"), out(4, 102, PA, "cdef"), out(5, 106, PA, "g"),
			}),
			want: []string{"e:abcdefg"},
			stats: func(s Stats) string {
				if s.Overlaps != 1 || s.DupBytes != 2 || s.Retransmits != 0 {
					return "want 1 overlap of 2 bytes"
				}
				return ""
			},
		},
		{
			name: "out of order within the window is reordered",
			steps: steps(handshake, []step{
				out(3, 106, PA, "ghi"), out(4, 103, A, "def"), out(5, 100, A, "abc"), out(6, 109, PA, "j"),
				tick(400),
			}),
			want: []string{"e:abcdefghij"},
			stats: func(s Stats) string {
				if s.OutOfOrder != 2 || s.Gaps != 0 || s.BufferedBytes != 0 {
					return "want 2 out of order, no gap, nothing held"
				}
				return ""
			},
		},
		{
			name: "overlapping out-of-order pieces are trimmed",
			steps: steps(handshake, []step{
				out(3, 104, A, "efgh"), out(4, 102, A, "cdefghij"), out(5, 100, A, "ab"),
			}),
			want: []string{"e:abcdefghij"},
		},
		{
			name: "hole that times out on Tick becomes a gap, then the rest",
			steps: steps(handshake, []step{
				out(3, 100, PA, "ab"), out(10, 105, PA, "fg"), out(20, 107, PA, "h"),
				tick(400), // not yet
				tick(600),
				out(700, 103, PA, "de"), // too late: dropped
				out(701, 108, PA, "i"),
			}),
			want: []string{"e:ab e!3 e:fghi"},
			stats: func(s Stats) string {
				if s.Gaps != 1 || s.GapBytes != 3 || s.Retransmits != 1 {
					return "want one 3-byte gap and the late bytes dropped"
				}
				return ""
			},
		},
		{
			name: "hole times out on a later segment's time",
			steps: steps(handshake, []step{
				out(3, 100, PA, "ab"), out(10, 105, PA, "fg"), in(600, 500, PA, "x"), out(601, 107, PA, "h"),
			}),
			want: []string{"e:ab i:x e!3 e:fgh"},
		},
		{
			name: "per-direction buffer bound skips ahead",
			cfg:  Config{MaxBufferedPerDir: 2*pieceCost + 8},
			steps: steps(handshake, []step{
				out(3, 100, A, "ab"), out(4, 104, A, "efgh"), out(5, 110, A, "klmn"), // 2 pieces, 8 bytes: fits
				out(6, 116, A, "q"),  // third piece: over, the first hole goes
				out(7, 102, A, "cd"), // too late
				tick(1000),
			}),
			want: []string{"e:ab e!2 e:efgh e!2 e:klmn e!2 e:q"},
			stats: func(s Stats) string {
				if s.BufferDrops != 1 || s.BufferedBytes != 0 || s.Retransmits != 1 {
					return "want 1 buffer drop, nothing held, the late bytes dropped"
				}
				return ""
			},
		},
		{
			name: "total buffer bound skips ahead",
			cfg:  Config{MaxBufferedTotal: pieceCost + 4},
			steps: steps(handshake, []step{
				out(3, 100, A, "ab"), out(4, 104, A, "efgh"), // fits
				in(5, 501, A, "y"), // over: the ingress hole goes
				in(6, 500, A, "x"),
				tick(1000),
			}),
			want: []string{"e:ab i!1 i:y e!2 e:efgh"},
		},
		{
			name: "missing bytes become a gap after the payload",
			steps: steps(handshake, []step{
				out(3, 100, A, "abc").with(func(s *Segment) { s.Missing = 5 }),
				out(4, 108, PA, "ijk"),
			}),
			want: []string{"e:abc e!5 e:ijk"},
		},
		{
			name: "missing bytes of a held segment",
			steps: steps(handshake, []step{
				out(3, 103, A, "de").with(func(s *Segment) { s.Missing = 4 }),
				out(4, 109, A, "jk"),
				out(5, 100, A, "abc"),
			}),
			want: []string{"e:abcde e!4 e:jk"},
		},
		{
			name: "sequence numbers wrap around",
			steps: []step{
				out(0, 0xfffffffd, S, ""), in(1, 0xfffffff0, SA, ""),
				out(2, 0xfffffffe, A, "ab"),
				out(3, 2, A, "ef"),            // held across the wrap
				out(4, 0, A, "cd"),            // fills it
				out(5, 0xfffffffe, A, "abcd"), // retransmit across the wrap
				in(6, 0xfffffff1, A, "0123456789abcdef"),
				in(7, 1, A, "!"),
			},
			want: []string{"e:abcdef i:0123456789abcdef!"},
			role: ptr(RoleClient),
		},
		{
			name:  "SYN received: server role",
			steps: []step{in(0, 99, S, ""), out(1, 499, SA, ""), in(2, 100, PA, "req"), out(3, 500, PA, "resp")},
			want:  []string{"i:req e:resp"},
			role:  ptr(RoleServer),
		},
		{
			name:  "only the SYN-ACK seen: role from it",
			steps: []step{in(1, 499, SA, ""), out(3, 100, PA, "req"), in(4, 500, PA, "resp")},
			want:  []string{"e:req i:resp"},
			role:  ptr(RoleClient),
		},
		{
			name: "SYN seen but data reordered before it",
			steps: []step{
				out(0, 99, S, ""), in(1, 499, SA, ""), out(2, 103, PA, "def"), out(3, 100, A, "abc"),
			},
			want: []string{"e:abcdef"},
			role: ptr(RoleClient),
		},
		{
			name: "mid-stream pickup starts at the first segment, earlier ones dropped",
			steps: []step{
				in(0, 7000, PA, "HTTP/1.1 200"), // first seen: start of ingress
				in(1, 6990, PA, "0123456789"),   // earlier: dropped
				in(2, 7012, PA, " OK"),
				out(3, 3000, PA, "GET"),
				out(4, 3003, PA, " /"),
			},
			want: []string{"i:HTTP/1.1 200 OK e:GET /"},
			role: ptr(RoleUnknown),
		},
		{
			name: "pure ACK of an unknown connection starts nothing",
			steps: []step{
				out(0, 3000, A, ""), in(1, 7000, FA, ""), out(2, 3000, RA, ""),
				in(3, 7000, PA, "data"),
			},
			want: []string{"i:data"},
		},
		{
			name: "bytes after the FIN are ignored",
			steps: steps(handshake, []step{
				out(3, 100, FA|FlagPSH, "bye"),
				out(4, 103, PA, "junk"),
				in(5, 500, PA, "ok"),
				in(6, 502, FA, ""),
			}),
			want: []string{"e:bye i:ok end:fin"},
		},
		{
			name: "FIN waits for earlier bytes that arrive in order",
			steps: steps(handshake, []step{
				in(3, 500, FA, ""), out(4, 100, PA, "abc"), out(5, 103, FA, ""),
			}),
			want: []string{"e:abc end:fin"},
		},
		{
			name: "FIN beyond a hole turns the hole into a gap",
			steps: steps(handshake, []step{
				out(3, 100, PA, "ab"), out(4, 105, PA, "fg"), out(5, 107, FA, ""), in(6, 500, FA, ""),
				out(7, 102, PA, "cde"), // too late
			}),
			want: []string{"e:ab e!3 e:fg end:fin"},
		},
		{
			name: "RST ends at once and flushes what is held",
			steps: steps(handshake, []step{
				out(3, 100, PA, "ab"), out(4, 105, PA, "fg"), in(5, 500, RA, ""),
				out(6, 107, PA, "late"), // after the end: not a new connection
			}),
			want: []string{"e:ab e!3 e:fg end:rst"},
			stats: func(s Stats) string {
				if s.Conns != 0 || s.ConnsTotal != 1 || s.Late != 1 {
					return "want the late segment dropped, no new connection"
				}
				return ""
			},
		},
		{
			name: "a new SYN after the end starts a new connection",
			steps: steps(handshake, []step{
				out(3, 100, FA, ""), in(4, 500, FA, ""),
				out(5, 9000, S, ""), in(6, 5000, SA, ""), out(7, 9001, PA, "again"),
			}),
			want: []string{"end:fin", "e:again"},
		},
		{
			name: "idle connection ends",
			cfg:  Config{IdleTimeout: time.Second},
			steps: steps(handshake, []step{
				out(3, 100, PA, "x"), tick(900), tick(1002), tick(1003), tick(5000),
			}),
			want: []string{"e:x end:idle"},
			stats: func(s Stats) string {
				if s.IdleClosed != 1 || s.Conns != 0 {
					return "want one idle close"
				}
				return ""
			},
		},
		{
			name: "FIN one way, then idle: ends as fin",
			cfg:  Config{IdleTimeout: time.Second},
			steps: steps(handshake, []step{
				out(3, 100, FA|FlagPSH, "x"), tick(500), tick(1003),
			}),
			want: []string{"e:x end:fin"},
		},
		{
			name: "held bytes are flushed before an idle end",
			cfg:  Config{IdleTimeout: time.Second, ReorderWindow: time.Hour},
			steps: steps(handshake, []step{
				out(3, 100, PA, "ab"), out(4, 105, PA, "fg"), tick(1100),
			}),
			want: []string{"e:ab e!3 e:fg end:idle"},
		},
		{
			name: "shutdown ends every connection",
			steps: steps(handshake, []step{
				out(3, 100, PA, "ab"), {close: true},
			}),
			want: []string{"e:ab end:shutdown"},
		},
		{
			name: "duplicate view of the same conversation is dropped (IPv4)",
			steps: []step{
				out(0, 99, S, ""), mirror(out(0, 99, S, "")),
				mirror(in(1, 499, SA, "")), in(1, 499, SA, ""),
				out(2, 100, PA, "req"), mirror(out(2, 100, PA, "req")),
				mirror(in(3, 500, PA, "resp")), in(3, 500, PA, "resp"),
				out(4, 103, FA, ""), mirror(out(4, 103, FA, "")),
				mirror(in(5, 504, FA, "")), in(5, 504, FA, ""),
			},
			want: []string{"e:req i:resp end:fin"},
			role: ptr(RoleClient),
			stats: func(s Stats) string {
				if s.DuplicateViews != 6 || s.ConnsTotal != 1 {
					return fmt.Sprintf("want 6 duplicate views, 1 connection; got %d, %d", s.DuplicateViews, s.ConnsTotal)
				}
				return ""
			},
		},
		{
			name: "the first view seen owns the conversation, whichever it is",
			steps: []step{
				mirror(out(0, 99, S, "")), out(1, 99, S, ""),
				mirror(in(1, 499, SA, "")), in(1, 499, SA, ""),
				out(2, 100, PA, "req"), mirror(out(2, 100, PA, "req")),
			},
			want: []string{"i:req"},
			role: ptr(RoleServer),
		},
		{
			name: "the tuple is free again once the owner ended",
			steps: []step{
				out(0, 100, PA, "a"), in(1, 500, RA, ""),
				mirror(out(2, 9000, S, "")), mirror(out(3, 9001, PA, "b")),
			},
			want: []string{"e:a end:rst", "i:b"},
		},
		{
			name: "handshake at the listener, data at the accepted socket",
			steps: []step{
				in(0, 99, S, ""), out(1, 499, SA, ""), in(2, 100, A, ""),
				in(3, 100, PA, "req").with(func(s *Segment) { s.Cookie = 3 }),
				out(4, 500, PA, "resp").with(func(s *Segment) { s.Cookie = 3 }),
			},
			want: []string{"i:req e:resp"},
			role: ptr(RoleServer),
		},
		{
			name: "a SYN with a new ISN on a live tuple starts a new connection",
			steps: steps(handshake, []step{
				out(3, 100, PA, "old"),
				out(4, 7000, S, ""), out(5, 7001, PA, "new"),
			}),
			want: []string{"e:old end:idle", "e:new"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := play(t, tc.cfg, false, tc.steps)
			got := r.got()
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
			if tc.role != nil && (len(r.recs) == 0 || r.recs[0].info.Role != *tc.role) {
				t.Errorf("role of the first connection is not %d", *tc.role)
			}
			if tc.stats != nil {
				if msg := tc.stats(r.a.Stats()); msg != "" {
					t.Errorf("%s: %+v", msg, r.a.Stats())
				}
			}
		})
	}
}

func TestDuplicateViewIPv6(t *testing.T) {
	c6 := netip.MustParseAddrPort("[fd00::1]:40000")
	s6 := netip.MustParseAddrPort("[fd00::2]:443")
	v6 := func(s step) step {
		return s.with(func(s *Segment) {
			if s.Cookie == 1 {
				s.Local, s.Remote = c6, s6
			} else {
				s.Local, s.Remote = s6, c6
			}
		})
	}
	var ss []step
	for _, s := range []step{
		out(0, 99, S, ""), in(1, 499, SA, ""), out(2, 100, PA, "req"), in(3, 500, PA, "resp"),
	} {
		ss = append(ss, v6(s), v6(mirror(s)))
	}
	r := play(t, Config{}, false, ss)
	if got := r.got(); len(got) != 1 || got[0] != "e:req i:resp" {
		t.Errorf("got %q, want one connection e:req i:resp", got)
	}
	if s := r.a.Stats(); s.DuplicateViews != 4 {
		t.Errorf("DuplicateViews %d, want 4", s.DuplicateViews)
	}
}

func TestDuplicateViewMappedIPv4(t *testing.T) {
	// A dual-stack socket sees its IPv4 peer as ::ffff:a.b.c.d.
	mapped := func(p netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr().As16()), p.Port())
	}
	ss := []step{out(0, 100, PA, "req")}
	m := mirror(in(1, 500, PA, "resp"))
	m.seg.Local, m.seg.Remote = mapped(m.seg.Local), mapped(m.seg.Remote)
	ss = append(ss, m, in(1, 500, PA, "resp"))
	r := play(t, Config{}, false, ss)
	if got := r.got(); len(got) != 1 || got[0] != "e:req i:resp" {
		t.Errorf("got %q, want one connection e:req i:resp", got)
	}
}

func TestEvictionLRU(t *testing.T) {
	conn := func(cookie uint64, port uint16) func(step) step {
		return func(s step) step {
			return s.with(func(s *Segment) {
				s.Cookie = cookie
				s.Local = netip.AddrPortFrom(cli.Addr(), port)
			})
		}
	}
	c1, c2, c3 := conn(1, 1001), conn(2, 1002), conn(3, 1003)
	r := play(t, Config{MaxConns: 2}, false, []step{
		c1(out(0, 100, PA, "one")),
		c2(out(1, 100, PA, "two")),
		c1(in(2, 500, PA, "ONE")), // conn 1 is now the more recent
		c3(out(3, 100, PA, "three")),
		c2(out(4, 103, PA, "2")), // evicted: comes back as a new connection
	})
	// Conn 2 is evicted by conn 3; conn 1 by the return of conn 2.
	want := []string{"e:one i:ONE end:evicted", "e:two end:evicted", "e:three", "e:2"}
	if got := r.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if s := r.a.Stats(); s.Evicted != 2 || s.Conns != 2 {
		t.Errorf("Evicted %d Conns %d, want 2 and 2", s.Evicted, s.Conns)
	}
}

func TestNilHandler(t *testing.T) {
	ss := steps(handshake, []step{
		out(3, 105, PA, "held?"), // would be held if there were a handler
		mirror(out(3, 100, PA, "abcde")),
		out(4, 100, PA, "abcde"),
	})
	r := play(t, Config{}, true, ss)
	s := r.a.Stats()
	if len(r.recs) != 1 || s.Conns != 1 || s.DuplicateViews != 1 {
		t.Fatalf("want one tracked connection that owns the tuple: %d factory calls, %+v", len(r.recs), s)
	}
	if s.BufferedBytes != 0 || s.OutOfOrder != 0 || s.Delivered != 0 {
		t.Errorf("bytes held or delivered without a handler: %+v", s)
	}
	if len(r.recs[0].calls) != 0 {
		t.Errorf("handler called: %q", r.recs[0].calls)
	}
	// FIN both ways ends it and frees the tuple.
	r.a.Add(out(5, 105, FA, "").seg)
	r.a.Add(in(6, 500, FA, "").seg)
	if s := r.a.Stats(); s.Conns != 0 {
		t.Errorf("Conns %d after FIN both ways, want 0", s.Conns)
	}
}

func TestTombstoneExpires(t *testing.T) {
	r := play(t, Config{}, false, steps(handshake, []step{
		out(3, 100, PA, "a"), in(4, 500, RA, ""),
		tick(int(linger/time.Millisecond) + 10),
		out(int(linger.Milliseconds())+20, 200, PA, "b"), // picked up mid-stream again
	}))
	if got := r.got(); len(got) != 2 || got[1] != "e:b" {
		t.Errorf("got %q, want a second connection e:b", got)
	}
}

// nop counts bytes.
type nop struct{ n int }

func (h *nop) Data(_ Dir, b []byte, _ time.Time) { h.n += len(b) }
func (h *nop) Gap(Dir, int, time.Time)           {}
func (h *nop) End(EndReason, time.Time)          {}

func TestInOrderDoesNotAllocate(t *testing.T) {
	h := &nop{}
	a := NewAssembler(Config{}, func(*ConnInfo) Handler { return h })
	payload := make([]byte, 1448)
	s := &Segment{Cookie: 1, Time: t0, Local: cli, Remote: srv, Seq: 1, Flags: PA, Payload: payload}
	a.Add(s)
	allocs := testing.AllocsPerRun(1000, func() {
		s.Seq += uint32(len(payload))
		s.Time = s.Time.Add(time.Microsecond)
		a.Add(s)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per in-order segment, want 0", allocs)
	}
}

func BenchmarkAssembler(b *testing.B) {
	const conns = 100
	h := &nop{}
	a := NewAssembler(Config{}, func(*ConnInfo) Handler { return h })
	payload := make([]byte, 1448)
	segs := make([]Segment, conns)
	for i := range segs {
		segs[i] = Segment{
			Cookie: uint64(i + 1), Time: t0,
			Local: netip.AddrPortFrom(cli.Addr(), uint16(20000+i)), Remote: srv,
			Seq: uint32(i) * 7919, Flags: PA, Payload: payload,
		}
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := &segs[i%conns]
		a.Add(s)
		s.Seq += uint32(len(payload))
	}
	b.StopTimer()
	if st := a.Stats(); st.Gaps != 0 || st.Retransmits != 0 || h.n == 0 {
		b.Fatalf("unexpected stats %+v", st)
	}
}
