// Package http1 cuts the two byte streams of one TCP connection into
// HTTP/1.0 and HTTP/1.1 request/response entries.
//
// The parser is incremental: it works on the bytes each Data call hands
// over and copies only what must outlive the call (one string per header
// block, the kept part of each body). Every buffer it holds is bounded by
// Config, so hostile or broken streams cost bounded memory.
package http1

import (
	"bytes"
	"strings"
	"sync/atomic"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// Defaults for the zero Config.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxPending     = 64
)

const (
	// maxChunkLine bounds a chunk-size line with its extensions.
	maxChunkLine = 4096
	// syncKeep bounds the bytes kept between calls while looking for a
	// message start (a request line longer than this is not found).
	syncKeep = 8 << 10
	// maxBadStreak is how many malformed messages in a row make the
	// connection be given up.
	maxBadStreak = 8
)

// Config bounds what one connection may hold.
type Config struct {
	// MaxBodyBytes is how much of each body is kept (after decoding);
	// 0 means DefaultMaxBodyBytes, a negative value keeps no body.
	MaxBodyBytes int
	// MaxHeaderBytes bounds a header block (start line included); a larger
	// one is malformed. 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxPending bounds the pipelined requests awaiting a response; when a
	// request would exceed it the oldest is emitted unanswered.
	// 0 means DefaultMaxPending.
	MaxPending int
	// Upgrade, when set, is asked for the handler of the rest of a
	// connection after a 101 Switching Protocols to proto (the Upgrade
	// token, lower-case); nil means the protocol is not dissected and the
	// rest of the connection is ignored. req is the upgraded request,
	// without its response: the next handler reports it (an h2c upgrade's
	// response arrives on HTTP/2 stream 1), so HTTP/1 does not.
	Upgrade func(proto string, req *entry.Entry, reqDir tcp.Dir) tcp.Handler
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	} else if c.MaxBodyBytes < 0 {
		c.MaxBodyBytes = 0
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	return c
}

// Stats are counters shared by all the connections of a dissector.
type Stats struct {
	Entries      atomic.Uint64 // entries emitted
	Incomplete   atomic.Uint64 // emitted entries marked Incomplete
	Unanswered   atomic.Uint64 // entries emitted without a response
	Orphans      atomic.Uint64 // responses dropped for want of a request
	Malformed    atomic.Uint64 // messages that could not be parsed
	Resyncs      atomic.Uint64 // times bytes were skipped to find a message start
	SkippedBytes atomic.Uint64 // bytes skipped by resyncs
	Gaps         atomic.Uint64 // capture gaps reported
	Upgrades     atomic.Uint64 // connections handed over by 101 or CONNECT
	Abandoned    atomic.Uint64 // connections given up after repeated errors
}

// Snapshot returns the counters by name.
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"entries":       s.Entries.Load(),
		"incomplete":    s.Incomplete.Load(),
		"unanswered":    s.Unanswered.Load(),
		"orphans":       s.Orphans.Load(),
		"malformed":     s.Malformed.Load(),
		"resyncs":       s.Resyncs.Load(),
		"skipped_bytes": s.SkippedBytes.Load(),
		"gaps":          s.Gaps.Load(),
		"upgrades":      s.Upgrades.Load(),
		"abandoned":     s.Abandoned.Load(),
	}
}

// state is where a direction's parser stands.
type state uint8

const (
	stStart     state = iota // at a message boundary
	stHeader                 // inside a header block (partial block in buf)
	stBody                   // in a Content-Length body: remain bytes left
	stChunkSize              // in a chunk-size line (partial line in buf)
	stChunkData              // in chunk data: remain bytes left
	stChunkEnd               // at the CRLF after chunk data
	stTrailer                // in the trailer block (partial block in buf)
	stClose                  // in a body that ends with the connection
	stSync                   // looking for the next message start (tail in buf)
	stIgnore                 // not HTTP/1 any more: bytes are ignored
)

// Content codings that are decoded for display.
const (
	encNone uint8 = iota
	encGzip
	encDeflate
	encOther
)

// exchange is one request and its response; the entry and its messages
// live in one allocation.
type exchange struct {
	e                 entry.Entry
	req, resp         entry.Message
	reqDone, respDone bool
	emitted           bool
	head, connect     bool
}

// half is the parser of one direction.
type half struct {
	st  state
	req bool // carries requests (once the role is known)
	// buf holds a partial header block, chunk line or trailer block, or
	// the tail kept while resyncing. Bounded by MaxHeaderBytes+1,
	// maxChunkLine+1 or 2*syncKeep.
	buf    []byte
	scan   int       // where the search for the end of a block in buf resumes
	remain int64     // bytes left in the body or chunk
	hint   int64     // expected body size, for the first allocation
	cr     bool      // CR seen after chunk data
	ex     *exchange // exchange of the message in progress (nil: orphan)
	msg    *entry.Message
	nokeep bool // body bytes are counted, not kept
	enc    uint8
	start  time.Time // first byte of the message in progress
	last   time.Time // latest bytes of this direction
	// dropped counts bytes skipped by the resync in progress.
	dropped int64
	// lost is set on the response direction when whole responses may have
	// been lost, so the next response is paired by time; it is the note
	// for the requests whose response went missing.
	lost string
}

type conn struct {
	cfg       Config
	info      *tcp.ConnInfo
	emit      func(*entry.Entry)
	stats     *Stats
	h         [2]half
	roleKnown bool
	src, dst  entry.Endpoint
	pend      []*exchange // requests awaiting a response, oldest first
	fields    []field     // scratch for scanBlock
	bad       int         // malformed messages in a row
	dead      bool        // nothing more is parsed
	ended     bool
	next      tcp.Handler // the protocol upgraded to, which gets the rest
}

// New returns the handler of one connection. emit is called once per
// exchange, from the calls into the handler; stats may be shared.
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
	c := &conn{cfg: cfg.withDefaults(), info: info, emit: emit, stats: stats}
	switch info.Role {
	case tcp.RoleClient:
		c.setRole(tcp.Egress)
	case tcp.RoleServer:
		c.setRole(tcp.Ingress)
	default:
		// Picked up mid-stream: neither direction is known to start at a
		// message boundary.
		c.h[0].st = stSync
		c.h[1].st = stSync
	}
	return c
}

// setRole records that direction reqDir carries the requests.
func (c *conn) setRole(reqDir tcp.Dir) {
	c.roleKnown = true
	c.h[reqDir].req = true
	c.h[reqDir^1].req = false
	local, remote := entry.EndpointWith(c.info.Local, c.info.LocalWho), entry.EndpointWith(c.info.Remote, c.info.RemoteWho)
	if reqDir == tcp.Egress {
		c.src, c.dst = local, remote
	} else {
		c.src, c.dst = remote, local
	}
}

// Data parses the next bytes of one direction.
func (c *conn) Data(dir tcp.Dir, b []byte, t time.Time) {
	if c.next != nil {
		c.next.Data(dir, b, t)
		return
	}
	if c.dead || len(b) == 0 {
		return
	}
	dir &= 1
	c.feed(&c.h[dir], dir, b, t)
}

// consume adds up to h.remain bytes of b to the body being read and returns
// the rest of b, and whether the body (or chunk) is complete.
func (c *conn) consume(h *half, b []byte) ([]byte, bool) {
	n := min(int64(len(b)), h.remain)
	c.addBody(h, b[:n])
	h.remain -= n
	return b[n:], h.remain == 0
}

func (c *conn) feed(h *half, dir tcp.Dir, b []byte, t time.Time) {
	h.last = t
	for len(b) > 0 && !c.dead {
		switch h.st {
		case stStart:
			b = c.begin(h, b, t)
		case stHeader:
			b = c.header(h, dir, b, t)
		case stBody:
			var done bool
			if b, done = c.consume(h, b); done {
				c.finish(h, false)
			}
		case stChunkSize:
			b = c.chunkSize(h, dir, b, t)
		case stChunkData:
			var done bool
			if b, done = c.consume(h, b); done {
				h.st = stChunkEnd
			}
		case stChunkEnd:
			b = c.chunkEnd(h, dir, b, t)
		case stTrailer:
			b = c.trailer(h, dir, b, t)
		case stClose:
			c.addBody(h, b)
			b = nil
		case stSync:
			b = c.sync(h, dir, b, t)
		default:
			if c.next != nil {
				// Upgraded: the bytes after the 101 are the next
				// protocol's.
				c.next.Data(dir, b, t)
			}
			return
		}
	}
}

// begin skips the empty lines tolerated between messages and starts one.
func (c *conn) begin(h *half, b []byte, t time.Time) []byte {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	if i == len(b) {
		return nil
	}
	h.st = stHeader
	h.start = t
	h.buf = h.buf[:0]
	h.scan = 0
	return b[i:]
}

// Gap skips n lost bytes of one direction. Lost body bytes of known length
// are skipped; any other loss costs the message it hits, and the direction
// resyncs at the next message start.
func (c *conn) Gap(dir tcp.Dir, n int, t time.Time) {
	if c.next != nil {
		c.next.Gap(dir, n, t)
		return
	}
	c.stats.Gaps.Add(1)
	if c.dead {
		return
	}
	h := &c.h[dir&1]
	h.last = t
	switch h.st {
	case stIgnore:
	case stSync:
		// The tail no longer runs into the next bytes.
		h.dropped += int64(len(h.buf))
		h.buf = h.buf[:0]
	case stStart:
		h.st = stSync
		if !h.req {
			h.lost = noteLostInGap
		}
	case stClose:
		c.holed(h, n)
	case stBody, stChunkData:
		if n > 0 && int64(n) <= h.remain {
			c.holed(h, n)
			h.remain -= int64(n)
			if h.remain == 0 {
				if h.st == stBody {
					c.finish(h, true)
				} else {
					h.st = stChunkEnd
				}
			}
			return
		}
		if h.st == stBody && n > 0 {
			// The body ended inside the gap; what follows it was lost.
			c.holed(h, int(h.remain))
			c.finish(h, true)
			h.st = stSync
			if !h.req {
				h.lost = noteLostInGap
			}
			return
		}
		c.lose(h, gapNote(h))
	default:
		c.lose(h, gapNote(h))
	}
}

func gapNote(h *half) string {
	switch {
	case h.st == stHeader && h.req:
		return "gap in request headers"
	case h.st == stHeader:
		return "gap in response headers"
	case h.req:
		return "gap in request body"
	}
	return "gap in response body"
}

// holed accounts n lost body bytes: the body is no longer kept past them.
func (c *conn) holed(h *half, n int) {
	m := h.msg
	h.nokeep = true
	if m == nil {
		return
	}
	m.BodyBytes += int64(n)
	m.Truncated = true
	if ex := h.ex; ex != nil {
		ex.e.Incomplete = true
		ex.e.AddNote(gapNote(h))
	}
}

// End closes the connection: a body read until close ends normally, any
// other message in progress is emitted incomplete, and requests still
// waiting for a response are emitted without one.
func (c *conn) End(reason tcp.EndReason, t time.Time) {
	if c.ended {
		return
	}
	c.ended = true
	if c.next != nil {
		c.next.End(reason, t)
		return
	}
	if !c.dead && c.roleKnown {
		for _, h := range []*half{c.respHalf(), c.reqHalf()} {
			switch {
			case h.st == stClose:
				c.finish(h, false)
			case inMessage(h.st):
				if h.req {
					c.lose(h, "connection closed mid-request")
				} else {
					c.lose(h, "connection closed mid-response")
				}
			}
		}
	}
	c.dead = true
	c.flush()
}

func (c *conn) reqHalf() *half {
	if c.h[0].req {
		return &c.h[0]
	}
	return &c.h[1]
}

func (c *conn) respHalf() *half {
	if c.h[0].req {
		return &c.h[1]
	}
	return &c.h[0]
}

func inMessage(s state) bool {
	return s >= stHeader && s <= stClose
}

// flush emits every pending request without a response.
func (c *conn) flush() {
	for _, ex := range c.pend {
		ex.respDone = true
		c.settle(ex)
	}
	clear(c.pend)
	c.pend = c.pend[:0]
}

// push queues a request for its response.
func (c *conn) push(ex *exchange) {
	if len(c.pend) >= c.cfg.MaxPending {
		old := c.pend[0]
		copy(c.pend, c.pend[1:])
		c.pend = c.pend[:len(c.pend)-1]
		old.e.AddNote("not paired: too many requests pending")
		old.respDone = true
		c.settle(old)
	}
	c.pend = append(c.pend, ex)
}

// pair takes the request a response starting now answers, or nil.
func (c *conn) pair(h *half) *exchange {
	if len(c.pend) == 0 {
		return nil
	}
	i := 0
	if lost := h.lost; lost != "" {
		// Responses were lost: the one found now answers the latest
		// request sent before it started; older ones lost theirs.
		h.lost = ""
		i = -1
		for j := len(c.pend) - 1; j >= 0; j-- {
			if !c.pend[j].e.Time.After(h.start) {
				i = j
				break
			}
		}
		if i < 0 {
			return nil
		}
		for _, ex := range c.pend[:i] {
			ex.e.Incomplete = true
			ex.e.AddNote(lost)
			ex.respDone = true
			c.settle(ex)
		}
	} else if c.pend[0].e.Time.After(h.start) {
		// A response cannot start before its request.
		return nil
	}
	ex := c.pend[i]
	n := copy(c.pend, c.pend[i+1:])
	clear(c.pend[n:])
	c.pend = c.pend[:n]
	return ex
}

// settle emits an exchange once both of its sides are done.
func (c *conn) settle(ex *exchange) {
	if ex.emitted || !ex.reqDone || !ex.respDone {
		return
	}
	ex.emitted = true
	e := &ex.e
	if e.Response != nil {
		e.Latency = e.Response.End.Sub(e.Time)
	}
	c.stats.Entries.Add(1)
	if e.Incomplete {
		c.stats.Incomplete.Add(1)
	}
	if e.Response == nil {
		c.stats.Unanswered.Add(1)
	}
	c.emit(e)
}

// finish ends the message in progress.
func (c *conn) finish(h *half, incomplete bool) {
	ex, m, enc := h.ex, h.msg, h.enc
	h.ex, h.msg = nil, nil
	h.st = stStart
	h.enc = encNone
	h.nokeep = false
	h.remain = 0
	h.hint = 0
	h.cr = false
	if cap(h.buf) > 4096 {
		// Do not keep a large block's buffer for the life of the
		// connection.
		h.buf = nil
	}
	c.bad = 0
	if m != nil {
		m.End = h.last
		if enc == encGzip || enc == encDeflate {
			c.decode(ex, m, enc)
		}
	}
	if ex == nil {
		return
	}
	if incomplete {
		ex.e.Incomplete = true
	}
	if h.req {
		ex.reqDone = true
	} else {
		ex.respDone = true
		ex.e.Response = m
	}
	c.settle(ex)
}

// lose ends the message in progress as incomplete after its framing was
// lost, and sends the direction looking for the next message.
func (c *conn) lose(h *half, note string) {
	switch {
	case h.st == stHeader:
		c.partial(h, h.buf, note, false)
	case inMessage(h.st):
		if h.ex != nil {
			h.ex.e.AddNote(note)
		}
		if h.msg != nil {
			h.msg.Truncated = true
		}
		c.finish(h, true)
	}
	c.resync(h, note)
}

// Notes for requests whose response was lost.
const (
	noteLostInGap       = "response lost in capture gap"
	noteLostInMalformed = "response lost in unparsable bytes"
)

// resync resets a direction to look for the next message start; why is
// the note that made it lose its place.
func (c *conn) resync(h *half, why string) {
	h.ex, h.msg = nil, nil
	h.st = stSync
	h.buf = h.buf[:0]
	h.dropped = 0
	h.nokeep = false
	h.enc = encNone
	h.remain = 0
	h.hint = 0
	h.cr = false
	if cap(h.buf) > 4096 {
		h.buf = nil
	}
	if !h.req && h.lost == "" {
		h.lost = noteLostInGap
		if strings.HasPrefix(why, "malformed") {
			h.lost = noteLostInMalformed
		}
	}
}

// partial turns the start of a header block that will not be completed
// into an incomplete entry, so that pairing stays in step. A response
// without a readable status line counts only when needStart is false (the
// bytes are known to start a message).
func (c *conn) partial(h *half, block []byte, note string, needStart bool) {
	var p head
	ok := false
	if i := bytes.IndexByte(block, '\n'); i >= 0 {
		line := string(trimCR(block[:i]))
		if h.req {
			ok = parseRequestLine(line, &p)
		} else {
			ok = parseStatusLine(line, &p)
		}
	}
	if h.req {
		if !ok {
			return
		}
		ex := c.newExchange(h, &p)
		ex.e.Incomplete = true
		ex.e.AddNote(note)
		c.push(ex)
		ex.reqDone = true
		c.settle(ex)
		return
	}
	if (!ok && needStart) || (ok && p.status < 200 && p.status != 101) {
		// Not a response, or an interim one: the final one is to come.
		return
	}
	ex := c.pair(h)
	if ex == nil {
		c.stats.Orphans.Add(1)
		return
	}
	ex.resp.Start, ex.resp.End = h.start, h.last
	ex.e.Response = &ex.resp
	ex.e.Status = int32(p.status)
	ex.e.Failed = p.status >= 500
	ex.e.Incomplete = true
	ex.e.AddNote(note)
	ex.respDone = true
	c.settle(ex)
}

// malformed gives up the message in progress and resyncs; block holds the
// start of an unparsable header block. It counts the error, and gives the
// connection up after too many in a row.
func (c *conn) malformed(h *half, block []byte, note string) {
	c.stats.Malformed.Add(1)
	if h.st == stHeader {
		c.partial(h, block, note, true)
		c.resync(h, note)
	} else {
		c.lose(h, note)
	}
	c.bad++
	if c.bad >= maxBadStreak {
		c.abandon()
	}
}

// abandon stops parsing the connection.
func (c *conn) abandon() {
	c.stats.Abandoned.Add(1)
	for i := range c.h {
		if h := &c.h[i]; inMessage(h.st) {
			c.lose(h, "connection given up")
		}
		c.h[i].st = stIgnore
		c.h[i].buf = nil
	}
	c.dead = true
	c.flush()
}

// handOver stops parsing after a 101 or a CONNECT tunnel: the rest of the
// connection is not HTTP/1.
func (c *conn) handOver() {
	c.stats.Upgrades.Add(1)
	for i := range c.h {
		h := &c.h[i]
		if inMessage(h.st) {
			c.lose(h, "connection upgraded mid-message")
		}
		h.st = stIgnore
		h.buf = nil
	}
}

// upgrade hands the connection to the handler Config.Upgrade gives for
// proto after ex's 101, and reports whether there was one.
func (c *conn) upgrade(ex *exchange, proto string) bool {
	if c.cfg.Upgrade == nil {
		return false
	}
	reqDir := tcp.Egress
	if c.h[tcp.Ingress].req {
		reqDir = tcp.Ingress
	}
	next := c.cfg.Upgrade(strings.ToLower(strings.TrimSpace(proto)), &ex.e, reqDir)
	if next == nil {
		return false
	}
	ex.emitted = true // the next protocol reports the request
	c.next = next
	return true
}

// reinject feeds the bytes after the first one of a buffered unit that
// turned out malformed back through the parser, as resync input.
func (c *conn) reinject(h *half, dir tcp.Dir, unit []byte, t time.Time) {
	h.buf = nil // unit may alias the old buffer
	if len(unit) > 1 && !c.dead {
		c.feed(h, dir, unit[1:], t)
	}
}
