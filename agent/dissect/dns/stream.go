package dns

import (
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// maxFrame is the largest DNS-over-TCP frame: the length prefix and a
// 64 KiB message.
const maxFrame = 2 + 0xFFFF

// side is the framing state of one direction.
type side struct {
	// buf holds a partial frame (prefix included) between Data calls;
	// bounded by maxFrame.
	buf []byte
	// sync is set after a gap: bytes are dropped until
	// a Data call starts with a plausible message.
	sync bool
}

type stream struct {
	p     parser
	info  *tcp.ConnInfo
	emit  func(*entry.Entry)
	stats *Stats
	s     [2]side
	pend  []*pending // queries awaiting a response, oldest first
	spare spares     // for the next queries
	ended bool
}

// New returns the tcp.Handler of one DNS-over-TCP connection: 2-byte
// length framing, pipelined queries paired with their responses by id.
// Which end is the client follows from the QR bit of the messages. emit
// is called from the calls into the handler; stats may be shared.
func New(cfg Config, info *tcp.ConnInfo, emit func(*entry.Entry), stats *Stats) tcp.Handler {
	if info == nil {
		info = &tcp.ConnInfo{}
	}
	if stats == nil {
		stats = new(Stats)
	}
	if emit == nil {
		emit = func(*entry.Entry) {}
	}
	c := &stream{p: parser{cfg: cfg.withDefaults(), stats: stats}, info: info, emit: emit, stats: stats}
	if info.Role == tcp.RoleUnknown {
		// Picked up mid-stream: a direction may start inside a frame.
		c.s[0].sync, c.s[1].sync = true, true
	}
	return c
}

// Data takes the next bytes of one direction.
func (c *stream) Data(dir tcp.Dir, b []byte, t time.Time) {
	if c.ended || len(b) == 0 {
		return
	}
	dir &= 1
	c.expire(t)
	s := &c.s[dir]
	if s.sync {
		if Detect(b, true) == No {
			return
		}
		s.sync = false
	}
	for len(b) > 0 && !s.sync {
		if len(s.buf) > 0 || len(b) < 2 {
			// Complete the frame held from earlier calls.
			if len(s.buf) < 2 {
				n := min(2-len(s.buf), len(b))
				s.buf = append(s.buf, b[:n]...)
				b = b[n:]
				if len(s.buf) < 2 {
					return
				}
			}
			need := 2 + int(u16(s.buf))
			n := min(need-len(s.buf), len(b))
			s.buf = append(s.buf, b[:n]...)
			b = b[n:]
			if len(s.buf) < need {
				return
			}
			c.message(dir, s.buf[2:], t)
			if cap(s.buf) > 4096 {
				s.buf = nil
			} else {
				s.buf = s.buf[:0]
			}
			continue
		}
		l := int(u16(b))
		if len(b) < 2+l {
			s.buf = append(s.buf, b...)
			return
		}
		c.message(dir, b[2:2+l], t)
		b = b[2+l:]
	}
}

// message handles one whole frame of direction dir.
func (c *stream) message(dir tcp.Dir, msg []byte, t time.Time) {
	h, ok := parseHeader(msg)
	if !ok {
		// Too short for DNS; the next frame follows all the same.
		c.stats.Malformed.Add(1)
		return
	}
	if !h.qr {
		q := c.newPending()
		if err := c.p.query(q, msg, &h, t); err != nil {
			c.stats.Malformed.Add(1)
			c.release(q)
			return
		}
		local, remote := entry.EndpointWith(c.info.Local, c.info.LocalWho), entry.EndpointWith(c.info.Remote, c.info.RemoteWho)
		if dir == tcp.Egress {
			q.src, q.dst = local, remote
		} else {
			q.src, q.dst = remote, local
		}
		q.connID = c.info.ID
		q.dir = uint8(dir)
		if len(c.pend) >= c.p.cfg.MaxPending {
			c.unanswered(1)
		}
		c.pend = append(c.pend, q)
		return
	}
	// The latest query with the id gets the response.
	for i := len(c.pend) - 1; i >= 0; i-- {
		q := c.pend[i]
		if q.id != h.id || q.dir == uint8(dir) {
			continue
		}
		copy(c.pend[i:], c.pend[i+1:])
		c.pend[len(c.pend)-1] = nil
		c.pend = c.pend[:len(c.pend)-1]
		e := c.p.answer(q, msg, &h, t)
		c.release(q)
		c.stats.Entries.Add(1)
		c.emit(e)
		return
	}
	c.stats.Orphans.Add(1)
}

func (c *stream) newPending() *pending { return c.spare.get() }

// release keeps q for a next query; a few are enough for a connection.
func (c *stream) release(q *pending) { c.spare.put(q, 4) }

// unanswered emits the n oldest waiting queries without a response.
func (c *stream) unanswered(n int) {
	for _, q := range c.pend[:n] {
		c.stats.Timeouts.Add(1)
		c.stats.Entries.Add(1)
		e := c.p.unanswered(q)
		e.Failed = true
		e.AddNote("no response")
		c.release(q)
		c.emit(e)
	}
	m := copy(c.pend, c.pend[n:])
	clear(c.pend[m:])
	c.pend = c.pend[:m]
}

// expire emits the queries that have waited longer than Timeout at t.
func (c *stream) expire(t time.Time) {
	n := 0
	for n < len(c.pend) && t.Sub(c.pend[n].time) >= c.p.cfg.Timeout {
		n++
	}
	if n > 0 {
		c.unanswered(n)
	}
}

// Gap drops the partial frame of dir; framing resumes at the next Data
// call that starts with a plausible message.
func (c *stream) Gap(dir tcp.Dir, n int, t time.Time) {
	dir &= 1
	c.s[dir].buf = nil
	c.s[dir].sync = true
}

// End emits the queries still waiting.
func (c *stream) End(reason tcp.EndReason, t time.Time) {
	if c.ended {
		return
	}
	c.ended = true
	c.unanswered(len(c.pend))
	c.s = [2]side{}
	c.pend, c.spare = nil, spares{}
}
