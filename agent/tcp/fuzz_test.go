package tcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// The fuzz world: two conversations (k = 0, 1), each a pair of known byte
// streams (d = 0: from the a end, d = 1: from the b end), seen through up to
// three sockets: the a end (cookie 10k+1), the b end (10k+2, the mirrored
// view) and the a end again through another socket (10k+3).
const fuzzStreamLen = 8192

func fuzzByte(k, d int, off int64) byte {
	x := uint64(off)*0x9e3779b97f4a7c15 + uint64(k*2+d+1)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return byte(x >> 56)
}

type fuzzWorld struct {
	t      *testing.T
	a      *Assembler
	ends   [2][2]netip.AddrPort // [k][a, b]
	isn    [2][2]uint32         // [k][d]
	maxEnd [2][2]int64          // highest stream offset any segment reached
	hs     []*fuzzHandler
}

type fuzzHandler struct {
	w     *fuzzWorld
	info  *ConnInfo
	k     int
	flip  bool     // the handler's Egress is stream d = 1
	count [2]int64 // bytes delivered and gapped, by stream direction
	ended bool
}

func (h *fuzzHandler) conn() *conn {
	return h.w.a.byTuple[makeKey(h.info.Local, h.info.Remote)]
}

// at checks a call for n bytes in handler direction dir and returns its
// stream direction and offset.
func (h *fuzzHandler) at(dir Dir, n int, what string) (int, int64) {
	t := h.w.t
	if h.ended {
		t.Fatalf("%s after End", what)
	}
	if n <= 0 {
		t.Fatalf("%s of %d bytes", what, n)
	}
	d := int(dir)
	if h.flip {
		d = 1 - d
	}
	c := h.conn()
	if c == nil || c.h != h {
		t.Fatalf("%s for a connection the assembler does not know", what)
	}
	off := diff(c.dirs[dir].next, h.w.isn[h.k][d]+1)
	h.count[d] += int64(n)
	if off < 0 || off+int64(n) > h.w.maxEnd[h.k][d] {
		t.Fatalf("%s of [%d, %d) beyond what was sent (%d)", what, off, off+int64(n), h.w.maxEnd[h.k][d])
	}
	if h.count[d] > h.w.maxEnd[h.k][d] {
		t.Fatalf("%d bytes delivered and gapped, only %d sent", h.count[d], h.w.maxEnd[h.k][d])
	}
	return d, off
}

func (h *fuzzHandler) Data(dir Dir, b []byte, _ time.Time) {
	d, off := h.at(dir, len(b), "Data")
	for i, x := range b {
		if want := fuzzByte(h.k, d, off+int64(i)); x != want {
			h.w.t.Fatalf("conv %d dir %d offset %d: got %#x, want %#x", h.k, d, off+int64(i), x, want)
		}
	}
}

func (h *fuzzHandler) Gap(dir Dir, n int, _ time.Time) { h.at(dir, n, "Gap") }

func (h *fuzzHandler) End(EndReason, time.Time) {
	if h.ended {
		h.w.t.Fatal("End twice")
	}
	h.ended = true
}

// checkMemory verifies the buffer bounds and the bookkeeping behind them.
func (w *fuzzWorld) checkMemory(cfg Config) {
	var total int64
	for _, c := range w.a.byTuple {
		for d := range c.dirs {
			st := &c.dirs[d]
			sum := 0
			prevEnd := int64(1) // the first piece lies after a hole
			for _, p := range st.held {
				sum += p.cost()
				ps := diff(p.seq, st.next)
				if ps < prevEnd || p.n <= 0 || (p.data != nil && len(p.data) != p.n) {
					w.t.Fatalf("held pieces out of order or overlapping: %d after %d", ps, prevEnd)
				}
				prevEnd = ps + int64(p.n)
			}
			if sum != st.cost || sum > cfg.MaxBufferedPerDir {
				w.t.Fatalf("direction holds %d (counted %d), bound %d", sum, st.cost, cfg.MaxBufferedPerDir)
			}
			if (len(st.held) > 0) != c.holding && len(c.dirs[1-d].held) == 0 {
				w.t.Fatal("holding flag wrong")
			}
			total += int64(sum)
		}
	}
	if total != w.a.buffered || total > cfg.MaxBufferedTotal || uint64(total) != w.a.Stats().BufferedBytes {
		w.t.Fatalf("holding %d (counted %d), bound %d", total, w.a.buffered, cfg.MaxBufferedTotal)
	}
	if n := w.a.Stats().Conns; n != uint64(len(w.a.byTuple)) || n > uint64(cfg.MaxConns) {
		w.t.Fatalf("Conns %d, tracked %d, bound %d", n, len(w.a.byTuple), cfg.MaxConns)
	}
}

func FuzzAssembler(f *testing.F) {
	// Seeds: header (9 bytes) then 6-byte operations.
	hdr := []byte{0, 0, 0, 100, 0, 0, 1, 0, 0}
	op := func(flags, view byte, off uint16, n, dt, extra byte) []byte {
		return []byte{flags | view<<5, byte(off >> 8), byte(off), n, dt, extra}
	}
	seed := func(ops ...[]byte) []byte {
		b := append([]byte(nil), hdr...)
		for _, o := range ops {
			b = append(b, o...)
		}
		return b
	}
	f.Add(seed(op(1, 0, 0, 0, 1, 0), op(1|2, 0, 0, 0, 1, 0), op(0, 0, 0, 200, 1, 0), op(2, 0, 0, 100, 1, 0)))
	f.Add(seed(op(0, 0, 300, 200, 1, 0), op(0, 0, 100, 200, 1, 0), op(0, 1, 0, 200, 1, 0), op(0, 0, 50, 255, 200, 0)))
	f.Add(seed(op(0, 0, 0, 100, 1, 3), op(0, 2, 150, 100, 1, 0), op(8, 0, 500, 10, 1, 0), op(0, 0, 90, 90, 255, 0)))
	f.Add(seed(op(0, 0, 0, 10, 1, 0), op(16, 1, 0, 10, 1, 0), op(0, 0, 10, 10, 1, 0), op(4, 0, 20, 0, 1, 0)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xff, 0x00, 0x81, 0, 0, 0, 255, 1, 0, 0, 0, 200, 255, 1, 0})

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 9 {
			return
		}
		cfg := Config{
			MaxConns:          1 + int(in[8]&1),
			MaxBufferedPerDir: 512 + int(in[8]>>1&3)*1024,
			MaxBufferedTotal:  1024 + int64(in[8]>>3&3)*1024,
			IdleTimeout:       time.Second,
			ReorderWindow:     100 * time.Millisecond,
		}
		w := &fuzzWorld{t: t}
		v6 := in[8]&0x80 != 0
		for k := range 2 {
			for e := range 2 {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(k), byte(e + 1)})
				if v6 {
					ip = netip.AddrFrom16([16]byte{0xfd, 15: byte(k*2 + e + 1)})
				}
				w.ends[k][e] = netip.AddrPortFrom(ip, uint16(1000+k*10+e))
			}
			w.isn[k][0] = binary.BigEndian.Uint32(in[0:4]) + uint32(k)*0x10000
			w.isn[k][1] = binary.BigEndian.Uint32(in[4:8]) - uint32(k)*0x10000
		}
		w.a = NewAssembler(cfg, func(c *ConnInfo) Handler {
			h := &fuzzHandler{w: w, info: c}
			h.k = int(c.Local.Port()-1000) / 10
			h.flip = c.Local != w.ends[h.k][0]
			w.hs = append(w.hs, h)
			return h
		})
		now := t0
		payload := make([]byte, 0, 1024)
		for in = in[9:]; len(in) >= 6; in = in[6:] {
			b0 := in[0]
			now = now.Add(time.Duration(in[4]) * 4 * time.Millisecond)
			if b0&0x80 != 0 {
				w.a.Tick(now)
				w.checkMemory(cfg)
				continue
			}
			d := int(b0 & 1)
			k := int(in[5] >> 7)
			view := int(b0>>5) & 3 // 0: a end, 1: b end (mirrored), 2: a end via another socket
			var flags uint8
			if b0&2 != 0 {
				flags |= FlagSYN
				if d == 1 {
					flags |= FlagACK
				}
			}
			if b0&4 != 0 {
				flags |= FlagFIN
			}
			if b0&8 != 0 && b0&16 != 0 {
				flags |= FlagRST
			}
			off := int64(binary.BigEndian.Uint16(in[1:3])) % fuzzStreamLen
			n := int64(in[3]) * 4
			if b0&16 != 0 && b0&8 == 0 {
				n = int64(in[3]) // small segments
			}
			seq := w.isn[k][d] + 1 + uint32(off)
			if flags&FlagSYN != 0 {
				seq, off = w.isn[k][d], 0 // the SYN itself, data after it
			}
			n = min(n, fuzzStreamLen-off)
			missing := int64(0)
			if b0&8 != 0 && b0&16 == 0 {
				missing = min(int64(in[5]&0x7f), fuzzStreamLen-off-n)
			}
			payload = payload[:0]
			for i := range n {
				payload = append(payload, fuzzByte(k, d, off+i))
			}
			if e := off + n + missing; e > w.maxEnd[k][d] && (n > 0 || missing > 0 || flags&FlagFIN != 0) {
				w.maxEnd[k][d] = e
			}
			s := &Segment{
				Cookie: uint64(10*k + 1), Time: now, Dir: Dir(d),
				Local: w.ends[k][0], Remote: w.ends[k][1],
				Seq: seq, Flags: flags, Payload: payload, Missing: int(missing),
			}
			switch view {
			case 1:
				s.Cookie++
				s.Local, s.Remote = s.Remote, s.Local
				s.Dir = 1 - s.Dir
			case 2, 3:
				s.Cookie += 2
			}
			w.a.Add(s)
			// The assembler must not keep the payload: scribble over it.
			for i := range payload {
				payload[i] = ^payload[i]
			}
			w.checkMemory(cfg)
		}
		w.a.Close(now)
		w.checkMemory(cfg)
		st := w.a.Stats()
		if st.Conns != 0 || st.BufferedBytes != 0 {
			t.Fatalf("after Close: %+v", st)
		}
		for _, h := range w.hs {
			if !h.ended {
				t.Fatal(fmt.Sprintf("connection %d never ended", h.info.ID))
			}
		}
	})
}
