// Package redis cuts the two byte streams of one TCP connection into Redis
// command/reply entries (RESP2 and RESP3, inline commands, pipelining,
// pub/sub pushes, MULTI/EXEC).
//
// The parser is a streaming state machine over the bytes each Data call
// hands over: nothing is copied except a partial header line, the kept
// (rendered) part of each message and a few captured names. Every buffer is
// bounded by Config, so hostile streams cost bounded memory.
package redis

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// Defaults for the zero Config.
const (
	DefaultMaxValueBytes = 64 << 10
	DefaultMaxPending    = 1024
	DefaultMaxDepth      = 32
)

const (
	// maxLine bounds a RESP header line or an inline command (as Redis
	// bounds inline commands).
	maxLine = 64 << 10
	// syncKeep bounds the bytes kept between calls while looking for a
	// message start.
	syncKeep = 256
	// maxCapture bounds a captured key, subcommand or channel name.
	maxCapture = 1024
	// maxBadStreak malformed messages in a row give the connection up.
	maxBadStreak = 8
)

// Config bounds what one connection may hold.
type Config struct {
	// MaxValueBytes bounds each rendered request or response body;
	// 0 means DefaultMaxValueBytes.
	MaxValueBytes int
	// MaxPending bounds the pipelined commands awaiting a reply; the
	// oldest is emitted unanswered when it would be exceeded.
	// 0 means DefaultMaxPending.
	MaxPending int
	// MaxDepth bounds the nesting of aggregates; deeper is malformed.
	// 0 means DefaultMaxDepth.
	MaxDepth int
}

func (c Config) withDefaults() Config {
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	return c
}

// Stats are counters shared by all the connections of a dissector.
type Stats struct {
	Entries      atomic.Uint64 // entries emitted (pushed messages included)
	Errors       atomic.Uint64 // error replies
	Malformed    atomic.Uint64 // messages that could not be parsed
	Unanswered   atomic.Uint64 // commands emitted without a reply
	Gaps         atomic.Uint64 // capture gaps reported
	PushMessages atomic.Uint64 // pub/sub and RESP3 pushes emitted
	Orphans      atomic.Uint64 // replies dropped for want of a command
	Incomplete   atomic.Uint64 // entries emitted marked Incomplete
}

// Snapshot returns the counters by name.
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"entries":       s.Entries.Load(),
		"errors":        s.Errors.Load(),
		"malformed":     s.Malformed.Load(),
		"unanswered":    s.Unanswered.Load(),
		"gaps":          s.Gaps.Load(),
		"push_messages": s.PushMessages.Load(),
		"orphans":       s.Orphans.Load(),
		"incomplete":    s.Incomplete.Load(),
	}
}

// exchange is one command and its reply in one allocation.
type exchange struct {
	exchangeHead
	// arena holds small bodies and the path, so that a small exchange is
	// one allocation; it is never written after being handed out.
	arena [arenaSize]byte
}

type exchangeHead struct {
	e         entry.Entry
	req, resp entry.Message
	subs      int8  // pub/sub command kind (cmdInfo.subs)
	nargs     int64 // arguments after the name
	used      int   // bytes of arena handed out
}

// arenaSize is at least minArena bytes, and more up to the end of the
// allocator's size class, so the room comes for free: the classes between
// 512 and 768 bytes are 64 bytes apart, and an object of that size with
// pointers carries an 8-byte header (today 568 bytes of head, the header
// and 128 of arena fill the 704-byte class). Replies of about ten short
// elements (LRANGE 0 9) then fit along with their command.
const (
	minArena     = 112
	mallocHeader = 8
	headSize     = int(unsafe.Sizeof(exchangeHead{})) + mallocHeader
	arenaSize    = (headSize+minArena+63)/64*64 - headSize
)

// keep copies b into the exchange's arena when it fits, or a new slice.
func (ex *exchange) keep(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if ex.used+len(b) <= len(ex.arena) {
		out := ex.arena[ex.used : ex.used+len(b) : ex.used+len(b)]
		copy(out, b)
		ex.used += len(b)
		return out
	}
	return cloneBytes(b)
}

type conn struct {
	cfg       Config
	info      *tcp.ConnInfo
	emit      func(*entry.Entry)
	stats     *Stats
	h         [2]half
	roleKnown bool
	src, dst  entry.Endpoint
	pend      []*exchange // commands awaiting a reply, oldest at ph
	ph        int
	// Subscribe confirmations still to come for a (un)subscribe command
	// already answered: absorb of kind absorbKind, or all of that kind
	// when absorbAll.
	absorb     int64
	absorbKind string
	absorbAll  bool
	subscribed bool
	bad        int
	dead       bool
	ended      bool
}

// New returns the handler of one connection. emit is called once per
// entry, from the calls into the handler; stats may be shared.
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
	c.h[0].dir, c.h[1].dir = tcp.Egress, tcp.Ingress
	for i := range c.h {
		c.h[i].max = c.cfg.MaxValueBytes
		c.h[i].reset()
	}
	switch info.Role {
	case tcp.RoleClient:
		c.setRole(tcp.Egress)
	case tcp.RoleServer:
		c.setRole(tcp.Ingress)
	default:
		// Picked up mid-stream: look for a command in either direction.
		for i := range c.h {
			c.h[i].st = stSync
			c.h[i].syncAt = true
		}
	}
	return c
}

// setRole records that direction reqDir carries the commands.
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

func (c *conn) reqHalf() *half  { return &c.h[c.respDir()^1] }
func (c *conn) respHalf() *half { return &c.h[c.respDir()] }

func (c *conn) respDir() tcp.Dir {
	if c.h[0].req {
		return tcp.Ingress
	}
	return tcp.Egress
}

// Data parses the next bytes of one direction.
func (c *conn) Data(dir tcp.Dir, b []byte, t time.Time) {
	if c.dead || len(b) == 0 {
		return
	}
	h := &c.h[dir&1]
	h.last = t
	c.feed(h, b, t)
}

// Gap says n bytes of one direction were lost. Lost bytes inside a bulk
// string of known length are skipped (the entry is marked incomplete);
// any other loss costs the message it hits and the direction resyncs.
func (c *conn) Gap(dir tcp.Dir, n int, t time.Time) {
	c.stats.Gaps.Add(1)
	if c.dead {
		return
	}
	h := &c.h[dir&1]
	h.last = t
	note := "gap in reply"
	if h.req {
		note = "gap in command"
	}
	switch h.st {
	case stDead:
	case stSync:
		h.tail = h.tail[:0]
		h.syncAt = true
	case stTop:
		c.resync(h, n > 0)
	case stBulk:
		if n > 0 && int64(n) <= h.remain {
			h.remain -= int64(n)
			h.wire += int64(n)
			h.full = true
			h.trunc = true
			h.markIncomplete(note)
			if h.remain == 0 {
				h.st = stBulkCR
			}
			return
		}
		c.lose(h, note)
	default:
		c.lose(h, note)
	}
}

// End closes the connection: a message in progress is emitted incomplete
// and commands still waiting are emitted without a reply.
func (c *conn) End(reason tcp.EndReason, t time.Time) {
	if c.ended {
		return
	}
	c.ended = true
	if !c.dead && c.roleKnown {
		for _, h := range []*half{c.reqHalf(), c.respHalf()} {
			if h.st > stTop && h.st < stSync {
				h.last = t
				c.lose(h, "connection closed mid-message")
			}
		}
	}
	c.dead = true
	c.flush()
}

func (c *conn) pending() int { return len(c.pend) - c.ph }

// flush emits every pending command without a reply.
func (c *conn) flush() {
	for _, ex := range c.pend[c.ph:] {
		c.send(ex)
	}
	clear(c.pend)
	c.pend, c.ph = c.pend[:0], 0
}

// push queues a command for its reply.
func (c *conn) push(ex *exchange) {
	if c.pending() >= c.cfg.MaxPending {
		old := c.pend[c.ph]
		c.pend[c.ph] = nil
		c.ph++
		old.e.AddNote("not paired: too many commands pending")
		c.send(old)
	}
	if c.ph > 0 && len(c.pend) == cap(c.pend) {
		n := copy(c.pend, c.pend[c.ph:])
		clear(c.pend[n:])
		c.pend, c.ph = c.pend[:n], 0
	}
	c.pend = append(c.pend, ex)
}

// pop takes the command a reply that started at start answers, or nil.
func (c *conn) pop(h *half, start time.Time) *exchange {
	if c.pending() == 0 {
		return nil
	}
	i := c.ph
	if h.lost != "" {
		// Replies were lost: this one answers the latest command sent
		// before it started; older ones lost theirs.
		i = -1
		for j := len(c.pend) - 1; j >= c.ph; j-- {
			if !c.pend[j].e.Time.After(start) {
				i = j
				break
			}
		}
		if i < 0 {
			return nil
		}
		for j := c.ph; j < i; j++ {
			ex := c.pend[j]
			ex.e.Incomplete = true
			ex.e.AddNote(h.lost)
			c.send(ex)
			c.pend[j] = nil
		}
		h.lost = ""
	} else if c.pend[i].e.Time.After(start) {
		// A reply cannot start before its command.
		return nil
	}
	ex := c.pend[i]
	c.pend[i] = nil
	c.ph = i + 1
	if c.ph == len(c.pend) {
		c.pend, c.ph = c.pend[:0], 0
	}
	return ex
}

// send emits an entry.
func (c *conn) send(ex *exchange) {
	e := &ex.e
	c.stats.Entries.Add(1)
	if e.Incomplete {
		c.stats.Incomplete.Add(1)
	}
	if e.Response == nil {
		c.stats.Unanswered.Add(1)
	} else {
		e.Latency = e.Response.End.Sub(e.Time)
	}
	c.emit(e)
}

func (c *conn) newExchange(h *half) *exchange {
	// Field by field: a struct literal stored into the new exchange would
	// be copied with a write barrier over every word of it.
	ex := &exchange{}
	e := &ex.e
	e.Time = h.start
	e.Protocol = entry.ProtoRedis
	e.Src, e.Dst = c.src, c.dst
	e.ConnID = c.info.ID
	e.Request = &ex.req
	return ex
}

// setMessage fills the zero message m (of ex) with the message in h.
func (ex *exchange) setMessage(m *entry.Message, h *half) {
	m.Body = ex.keep(h.body)
	m.BodyBytes = h.wire
	m.Truncated = h.trunc
	m.Start = h.start
	m.End = h.last
}

// command handles a command parsed (whole or as far as it went).
func (c *conn) command(h *half) {
	ex := c.newExchange(h)
	e := &ex.e
	if h.cmd != nil {
		e.Method = h.cmd.name
		ex.subs = h.cmd.subs
		if ex.subs == 1 {
			c.subscribed = true
		}
	} else if m := ex.keep(upper(h.name[:h.nameLen])); len(m) > 0 {
		e.Method = unsafe.String(&m[0], len(m))
	}
	if len(h.path) > 0 {
		if h.cmd != nil && h.cmd.sub {
			upper(h.path)
		}
		p := ex.keep(h.path)
		e.Path = unsafe.String(&p[0], len(p))
	}
	ex.nargs = h.nargs - 1
	ex.setMessage(&ex.req, h)
	if h.incomplete {
		e.Incomplete = true
		e.AddNote(h.note)
	}
	c.push(ex)
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func upper(b []byte) []byte {
	for i, ch := range b {
		if 'a' <= ch && ch <= 'z' {
			b[i] = ch - ('a' - 'A')
		}
	}
	return b
}

// subKinds are the first elements of subscribe confirmations.
var subKinds = map[string]bool{
	"subscribe": true, "unsubscribe": true, "psubscribe": true,
	"punsubscribe": true, "ssubscribe": true, "sunsubscribe": true,
}

// reply handles a reply parsed (whole, or as far as it went when
// incomplete).
func (c *conn) reply(h *half) {
	if c.isPush(h) {
		kind := string(h.elems[0])
		switch {
		case (kind == "message" || kind == "smessage") && h.topN == 3:
			c.pushed(h, "", h.elems[1], h.elems[2])
			return
		case kind == "pmessage" && h.topN == 4:
			c.pushed(h, string(h.elems[1]), h.elems[2], h.elems[3])
			return
		case subKinds[kind] && h.topN == 3:
			if string(h.elems[2]) == "0" && kind != "subscribe" && kind != "psubscribe" && kind != "ssubscribe" {
				// Unsubscribed from everything.
				c.subscribed = false
			}
			if c.absorb > 0 && c.absorbKind == kind {
				c.absorb--
				return
			}
			if c.absorbAll && c.absorbKind == kind {
				return
			}
			c.absorbAll = false
			c.absorb = 0
			c.confirm(h, kind)
			return
		case h.topKind == '>':
			c.pushed(h, "", nil, nil)
			return
		}
	}
	c.absorbAll = false
	c.answer(h)
}

// confirm pairs a subscribe confirmation with its command and expects the
// confirmations of the command's other channels.
func (c *conn) confirm(h *half, kind string) {
	if c.pending() > 0 {
		if ex := c.pend[c.ph]; ex.subs != 0 {
			if ex.nargs > 1 {
				c.absorb, c.absorbKind = ex.nargs-1, kind
			} else if ex.nargs == 0 && ex.subs == 2 {
				c.absorbAll, c.absorbKind = true, kind
			}
		}
	}
	c.answer(h)
}

// answer pairs a reply with the oldest command.
func (c *conn) answer(h *half) {
	ex := c.pop(h, h.start)
	if ex == nil {
		c.stats.Orphans.Add(1)
		return
	}
	ex.setMessage(&ex.resp, h)
	e := &ex.e
	e.Response = &ex.resp
	if h.errReply {
		e.Status = 1
		e.Failed = true
		c.stats.Errors.Add(1)
	}
	if h.incomplete {
		e.Incomplete = true
		e.AddNote(h.note)
	}
	c.send(ex)
}

// pushed emits a message the server pushed without a command.
func (c *conn) pushed(h *half, pattern string, channel, payload []byte) {
	ex := &exchange{}
	e := &ex.e
	*e = entry.Entry{
		Time:     h.start,
		Protocol: entry.ProtoRedis,
		Src:      c.src,
		Dst:      c.dst,
		ConnID:   c.info.ID,
		Method:   "MESSAGE",
		Path:     string(channel),
		Response: &ex.resp,
	}
	ex.resp = entry.Message{BodyBytes: h.wire, Start: h.start, End: h.last}
	if channel == nil && payload == nil {
		// Another RESP3 push (client tracking invalidations, ...).
		e.Method = string(upper(append([]byte(nil), h.elems[0]...)))
		if e.Method == "" {
			e.Method = "PUSH"
		}
		ex.resp.Body = cloneBytes(h.body)
		ex.resp.Truncated = h.trunc
	} else {
		ex.resp.Body = cloneBytes(payload)
		ex.resp.Truncated = h.elemTrunc
		if pattern != "" {
			ex.resp.Headers = []entry.Header{{Name: "pattern", Value: pattern}}
		}
	}
	if h.incomplete {
		e.Incomplete = true
		e.AddNote(h.note)
	}
	c.stats.PushMessages.Add(1)
	c.stats.Entries.Add(1)
	if e.Incomplete {
		c.stats.Incomplete.Add(1)
	}
	c.emit(e)
}

// lose ends the message in progress as incomplete after its framing was
// lost, and sends the direction looking for the next message.
func (c *conn) lose(h *half, note string) {
	if h.st > stTop && h.st < stSync && c.roleKnown {
		h.markIncomplete(note)
		h.trunc = true
		if h.req {
			// The server got the command: keep it so its reply pairs.
			if h.nameDone {
				c.command(h)
			}
		} else if !c.isPush(h) {
			c.answer(h)
		}
	}
	c.resync(h, true)
}

// resync sends a direction looking for the next message start. lost says
// whole messages may have gone missing.
func (c *conn) resync(h *half, lost bool) {
	h.reset()
	h.st = stSync
	h.syncAt = true
	h.tail = h.tail[:0]
	if !c.roleKnown || !lost {
		return
	}
	// Replies may be missing (or commands whose replies will come): pair
	// the next reply by time.
	c.respHalf().lost = "reply lost in capture gap"
}

// malformed gives up the message in progress, counts it and resyncs; too
// many in a row give the connection up.
func (c *conn) malformed(h *half) {
	c.stats.Malformed.Add(1)
	if h.req {
		h.reset()
		h.st = stSync
		h.syncAt = false
		h.tail = h.tail[:0]
	} else {
		c.lose(h, "malformed reply")
		c.respHalf().lost = "reply lost in unparsable bytes"
	}
	c.bad++
	if c.bad >= maxBadStreak {
		c.abandon()
	}
}

// abandon stops parsing the connection.
func (c *conn) abandon() {
	for i := range c.h {
		c.h[i].reset()
		c.h[i].st = stDead
		c.h[i].tail = nil
		c.h[i].line = nil
	}
	c.dead = true
	c.flush()
}
