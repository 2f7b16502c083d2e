// Package http2 cuts the two byte streams of one TCP connection into HTTP/2
// entries, one per stream, and recognises gRPC calls among them.
//
// Frames are parsed as they arrive in both directions; only a frame header,
// the payloads that must be read whole but did not come whole (header
// blocks, small control frames) and the kept parts of bodies are buffered.
// Each direction has its own HPACK decoder (hpack.go); a connection picked
// up mid-way decodes what it can and marks what it cannot. A connection
// upgraded from HTTP/1.1 (h2c) is handed over with NewUpgraded.
//
// Each stream's entry, its messages and their first headers are one
// allocation; a kept body is one more, sized ahead when its length is
// known; header strings are shared with the HPACK tables or made one per
// header list. Buffers of ended connections serve the next ones.
package http2

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podwire/podwire/agent/dissect/sniff"
	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// Verdict is what Detect makes of a stream's first bytes.
type Verdict = sniff.Verdict

// Detect's answers.
const (
	No       = sniff.No
	Yes      = sniff.Yes
	NeedMore = sniff.NeedMore
)

const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// detectPrefix is how much of the preface must match for a Yes.
const detectPrefix = 16 // "PRI * HTTP/2.0\r\n"

// Detect says whether b starts an HTTP/2 connection: the client preface, or
// a server's first SETTINGS frame.
func Detect(b []byte) Verdict {
	n := min(len(b), len(preface))
	if n > 0 && string(b[:n]) == preface[:n] {
		if n >= detectPrefix {
			return Yes
		}
		return NeedMore
	}
	if len(b) == 0 {
		return NeedMore
	}
	// SETTINGS: length (a small multiple of 6), type 4, flags 0, stream 0.
	want := [9]byte{0, 0xff, 0xff, frameSettings, 0, 0, 0, 0, 0}
	for i := 0; i < len(b) && i < 9; i++ {
		switch i {
		case 1:
		case 2:
			l := int(b[1])<<8 | int(b[2])
			if l%6 != 0 || l > 6*32 {
				return No
			}
		default:
			if b[i] != want[i] {
				return No
			}
		}
	}
	if len(b) < 9 {
		return NeedMore
	}
	return Yes
}

// Defaults for the zero Config.
const (
	DefaultMaxBodyBytes       = 1 << 20
	DefaultMaxStreams         = 1000
	DefaultMaxHeaderListBytes = 64 << 10
	DefaultMaxGRPCMessages    = 8
)

// maxTableSize bounds each HPACK dynamic table, whatever the peers agree.
const maxTableSize = 64 << 10

// maxBadFrames malformed frames in a row give a direction up.
const maxBadFrames = 3

// Config bounds what one connection may hold.
type Config struct {
	// MaxBodyBytes bounds each kept (and rendered) body; 0: default 1 MiB.
	MaxBodyBytes int
	// MaxStreams bounds the open streams of a connection; streams beyond it
	// are dropped. 0: default 1000.
	MaxStreams int
	// MaxHeaderListBytes bounds a header block, compressed and decoded
	// (names and values plus 32 bytes each). 0: default 64 KiB.
	MaxHeaderListBytes int
	// MaxGRPCMessages is how many gRPC messages are kept per direction of
	// a call. 0: default 8.
	MaxGRPCMessages int
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxHeaderListBytes <= 0 {
		c.MaxHeaderListBytes = DefaultMaxHeaderListBytes
	}
	if c.MaxGRPCMessages <= 0 {
		c.MaxGRPCMessages = DefaultMaxGRPCMessages
	}
	return c
}

// Stats are counters shared by all the connections of a dissector.
type Stats struct {
	Entries     atomic.Uint64 // entries emitted
	Streams     atomic.Uint64 // streams opened (dropped ones included)
	Resets      atomic.Uint64 // RST_STREAM frames
	GoAways     atomic.Uint64 // GOAWAY frames
	Malformed   atomic.Uint64 // malformed frames, streams dropped over MaxStreams
	HPACKErrors atomic.Uint64 // header fields that could not be decoded
	Incomplete  atomic.Uint64 // entries emitted marked Incomplete
	Gaps        atomic.Uint64 // capture gaps reported
}

// Snapshot returns the counters by name.
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"entries":      s.Entries.Load(),
		"streams":      s.Streams.Load(),
		"resets":       s.Resets.Load(),
		"goaways":      s.GoAways.Load(),
		"malformed":    s.Malformed.Load(),
		"hpack_errors": s.HPACKErrors.Load(),
		"incomplete":   s.Incomplete.Load(),
		"gaps":         s.Gaps.Load(),
	}
}

// Frame types and flags (RFC 9113 section 6).
const (
	frameData         = 0
	frameHeaders      = 1
	framePriority     = 2
	frameRSTStream    = 3
	frameSettings     = 4
	framePushPromise  = 5
	framePing         = 6
	frameGoAway       = 7
	frameWindowUpdate = 8
	frameContinuation = 9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// Parser states of a direction.
const (
	stPreface  = iota // maybe a client preface
	stHeader          // reading a frame header
	stPayload         // keeping a frame's payload
	stSkip            // skipping the rest of a frame's payload
	stDataPad         // reading a DATA frame's pad length
	stData            // passing DATA bytes to the stream
	stDataSkip        // skipping a DATA frame's padding
	stDead            // framing lost
)

const (
	noteMidStream = "headers partly unknown (capture began mid-connection)"
	noteHPACK     = "headers partly undecodable"
)

type half struct {
	dir   tcp.Dir
	st    uint8
	pre   int // preface bytes matched
	hdr   [9]byte
	hn    int
	flen  int // frame length
	typ   uint8
	flags uint8
	sid   uint32
	keep  int    // payload bytes to keep
	buf   []byte // kept payload
	left  int    // payload bytes still to read (kept, skipped or data)
	pad   int    // DATA padding still to skip
	bad   int    // malformed frames in a row

	// header block being assembled across CONTINUATION frames
	inBlock   bool
	blockSid  uint32
	blockEnd  bool // END_STREAM on the HEADERS frame
	blockLost bool // part of the block was not kept
	blockPush bool // PUSH_PROMISE: decode for the table only
	block     []byte

	dyn     dynTable
	fields  []field
	arena   []byte // the list's literals not kept in the table
	astr    string // the arena as a string, while the list is handled
	listLen int
	over    bool // header list over the limit
}

type conn struct {
	cfg     Config
	info    *tcp.ConnInfo
	emit    func(*entry.Entry)
	stats   *Stats
	h       [2]half
	streams []*stream // open streams by id
	free    []*stream // finished streams to reuse
	scratch []byte    // gRPC bodies being rendered
	spare   *spare    // where the buffers came from, to go back to at End

	local, remote entry.Endpoint // the connection's ends, as entries have them
	client        int8           // direction of the client, -1 unknown
	fresh         bool           // the connection's start (preface) was seen
	started       bool
	ended         bool
}

// New returns the handler of one connection. emit is called once per entry,
// from the calls into the handler; stats may be shared.
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
	c := &conn{cfg: cfg.withDefaults(), info: info, emit: emit, stats: stats, client: -1,
		local: entry.EndpointAt(info.Local), remote: entry.EndpointAt(info.Remote)}
	sp, _ := spares.Get().(*spare)
	for i := range c.h {
		h := &c.h[i]
		h.dir = tcp.Dir(i)
		h.st = stPreface
		h.dyn.max, h.dyn.allowed = 4096, maxTableSize
		if sp != nil {
			h.dyn.ents, h.fields, h.arena = sp.ents[i], sp.fields[i], sp.arena[i]
			// Frame buffers as large as this connection's bounds let
			// its own grow.
			if limit := 2 * (c.cfg.MaxHeaderListBytes + 64); cap(sp.buf[i]) <= limit && cap(sp.block[i]) <= limit {
				h.buf, h.block = sp.buf[i], sp.block[i]
			}
		}
	}
	if sp != nil {
		c.streams, c.free, c.scratch = sp.streams, sp.free, sp.scratch
		*sp = spare{}
		c.spare = sp
	}
	return c
}

// spare is what an ended connection leaves to the next one: its buffers,
// emptied, at the sizes its traffic needed (within bounds).
type spare struct {
	ents              [2][]dynEntry
	fields            [2][]field
	arena, buf, block [2][]byte
	streams, free     []*stream
	scratch           []byte
}

var spares sync.Pool

// Bounds of what a spare keeps.
const (
	spareEnts   = 256
	spareFields = 256
	spareBytes  = 4096
)

// leave puts the connection's buffers, emptied, in the pool of spares.
func (c *conn) leave() {
	sp := c.spare
	if sp == nil {
		sp = new(spare)
	}
	for i := range c.h {
		h := &c.h[i]
		if e := h.dyn.ents; len(e) <= spareEnts {
			clear(e)
			sp.ents[i] = e
		}
		if cap(h.fields) <= spareFields {
			sp.fields[i] = h.fields[:0]
		}
		sp.arena[i], sp.buf[i], sp.block[i] = spareBuf(h.arena), spareBuf(h.buf), spareBuf(h.block)
		h.buf, h.block, h.fields, h.arena = nil, nil, nil, nil
		h.dyn = dynTable{}
	}
	clear(c.streams[:cap(c.streams)])
	if cap(c.streams) <= spareFields {
		sp.streams = c.streams[:0]
	}
	sp.free, sp.scratch = c.free, spareBuf(c.scratch)
	c.streams, c.free, c.scratch, c.spare = nil, nil, nil, nil
	spares.Put(sp)
}

func spareBuf(b []byte) []byte {
	if cap(b) > spareBytes {
		return nil
	}
	return b[:0]
}

// clientDir is the client's direction, or -1.
func (c *conn) clientDir() int8 {
	switch c.info.Role {
	case tcp.RoleClient:
		return int8(tcp.Egress)
	case tcp.RoleServer:
		return int8(tcp.Ingress)
	}
	return c.client
}

// Data implements tcp.Handler.
func (c *conn) Data(dir tcp.Dir, b []byte, t time.Time) {
	if c.ended || dir > 1 {
		return
	}
	c.feed(&c.h[dir], b, t)
}

func (c *conn) feed(h *half, b []byte, t time.Time) {
	for len(b) > 0 {
		switch h.st {
		case stDead:
			return
		case stPreface:
			n := min(len(b), len(preface)-h.pre)
			if string(b[:n]) == preface[h.pre:h.pre+n] {
				h.pre += n
				b = b[n:]
				if h.pre == len(preface) {
					h.st = stHeader
					c.prefaceSeen(h)
				}
				continue
			}
			// Not a preface: frames from the start, the matched part
			// included.
			matched := h.pre
			h.pre = 0
			h.st = stHeader
			if !c.started {
				c.started = true
			}
			if matched > 0 {
				c.feed(h, []byte(preface[:matched]), t)
			}
		case stHeader:
			c.started = true
			if h.hn == 0 && len(b) >= 9 {
				h.hdr = [9]byte(b)
				b = b[9:]
				c.frameHeader(h, t)
				continue
			}
			n := copy(h.hdr[h.hn:], b)
			h.hn += n
			b = b[n:]
			if h.hn == 9 {
				h.hn = 0
				c.frameHeader(h, t)
			}
		case stPayload:
			if len(h.buf) == 0 && h.keep == h.left && len(b) >= h.keep {
				// The whole payload is here: read in place.
				p := b[:h.keep]
				b = b[h.keep:]
				h.left = 0
				c.frameDone(h, p, t)
				continue
			}
			n := min(len(b), h.keep-len(h.buf))
			h.buf = append(h.buf, b[:n]...)
			b = b[n:]
			h.left -= n
			if len(h.buf) == h.keep {
				if h.left > 0 {
					h.st = stSkip
				} else {
					c.frameDone(h, h.buf, t)
				}
			}
		case stSkip:
			n := min(len(b), h.left)
			b = b[n:]
			h.left -= n
			if h.left == 0 {
				c.frameDone(h, h.buf, t)
			}
		case stDataPad:
			h.pad = int(b[0])
			b = b[1:]
			h.left--
			if h.pad > h.left {
				c.malformed(h, false)
				h.pad, h.st = 0, stSkip
				if h.left == 0 {
					c.next(h)
				}
				continue
			}
			h.left -= h.pad
			c.dataStart(h, t)
		case stData:
			n := min(len(b), h.left)
			c.data(h, b[:n], t)
			b = b[n:]
			h.left -= n
			if h.left == 0 {
				c.dataStart(h, t)
			}
		case stDataSkip:
			n := min(len(b), h.pad)
			b = b[n:]
			h.pad -= n
			if h.pad == 0 {
				c.dataEnd(h, t)
			}
		}
	}
}

// prefaceSeen: h is the client and the connection is seen from its start.
func (c *conn) prefaceSeen(h *half) {
	if c.client < 0 {
		c.client = int8(h.dir)
	}
	if !c.started {
		c.fresh = true
	}
	c.started = true
	if o := &c.h[h.dir^1]; o.st == stPreface && o.pre == 0 {
		o.st = stHeader
	}
}

func (c *conn) next(h *half) {
	h.st = stHeader
	h.buf = h.buf[:0]
	h.keep, h.left, h.pad = 0, 0, 0
}

// malformed counts a bad frame; fatal (or too many in a row) gives the
// direction up.
func (c *conn) malformed(h *half, fatal bool) {
	c.stats.Malformed.Add(1)
	h.bad++
	if fatal || h.bad >= maxBadFrames {
		c.kill(h)
	}
}

// kill gives a direction's framing up: its open streams can no longer end.
func (c *conn) kill(h *half) {
	h.st = stDead
	h.buf, h.block = nil, nil
	h.inBlock = false
	for _, s := range c.streams {
		s.incomplete = true
		s.e.AddNote("framing lost")
	}
}

func (c *conn) frameHeader(h *half, t time.Time) {
	p := h.hdr[:]
	h.flen = int(p[0])<<16 | int(p[1])<<8 | int(p[2])
	h.typ, h.flags = p[3], p[4]
	sid := uint32(p[5])<<24 | uint32(p[6])<<16 | uint32(p[7])<<8 | uint32(p[8])
	h.sid = sid &^ (1 << 31)
	h.buf = h.buf[:0]
	h.left = h.flen
	h.keep = 0
	// Peers never set the reserved bit nor send unknown high types: read
	// as garbage, the framing is lost.
	if sid>>31 != 0 || (h.typ > 0x10 && h.typ != 0xf0) {
		c.malformed(h, true)
		return
	}
	if h.inBlock && (h.typ != frameContinuation || h.sid != h.blockSid) {
		c.malformed(h, false)
		c.blockLostNow(h, t)
		if h.st == stDead {
			return
		}
	}
	ok := true
	switch h.typ {
	case frameData:
		if h.sid == 0 {
			ok = false
			break
		}
		if h.flags&flagPadded != 0 {
			if h.flen == 0 {
				ok = false
				break
			}
			h.st = stDataPad
			return
		}
		c.dataStart(h, t)
		return
	case frameHeaders, framePushPromise, frameContinuation:
		if h.sid == 0 || (h.typ == frameContinuation && !h.inBlock) {
			ok = false
			break
		}
		if h.flen <= c.cfg.MaxHeaderListBytes+64 {
			h.keep = h.flen
		}
	case framePriority:
		ok = h.flen == 5 && h.sid != 0
	case frameRSTStream:
		ok = h.flen == 4 && h.sid != 0
		h.keep = 4
	case frameSettings:
		ok = h.sid == 0 && h.flen%6 == 0 && (h.flags&flagAck == 0 || h.flen == 0)
	case framePing:
		ok = h.sid == 0 && h.flen == 8
	case frameGoAway:
		ok = h.sid == 0 && h.flen >= 8
		h.keep = 8
	case frameWindowUpdate:
		ok = h.flen == 4
	}
	if !ok {
		c.malformed(h, false)
		h.keep = 0
		h.typ = 0xff // skipped without effect
	} else if h.typ != frameContinuation && h.typ != frameHeaders && h.typ != framePushPromise {
		h.bad = 0
	}
	h.keep = min(h.keep, h.flen)
	if h.keep > 0 {
		h.st = stPayload
	} else {
		h.st = stSkip
		if h.left == 0 {
			c.frameDone(h, h.buf, t)
		}
	}
}

// frameDone handles a frame whose payload, p (as kept), has been read.
func (c *conn) frameDone(h *half, p []byte, t time.Time) {
	switch h.typ {
	case frameHeaders, framePushPromise:
		lost := len(p) < h.flen
		if h.flags&flagPadded != 0 && !lost {
			if len(p) < 1 || int(p[0]) > len(p)-1 {
				c.malformed(h, false)
				break
			}
			p = p[1 : len(p)-int(p[0])]
		}
		if h.typ == frameHeaders && h.flags&flagPriority != 0 && !lost {
			if len(p) < 5 {
				c.malformed(h, false)
				break
			}
			p = p[5:]
		}
		push := h.typ == framePushPromise
		if push && !lost {
			if len(p) < 4 {
				c.malformed(h, false)
				break
			}
			p = p[4:]
		}
		h.bad = 0
		h.inBlock, h.blockSid = true, h.sid
		h.blockEnd = h.flags&flagEndStream != 0 && !push
		h.blockPush, h.blockLost = push, lost
		if h.flags&flagEndHeaders != 0 {
			c.blockDone(h, p, t)
			break
		}
		h.block = append(h.block[:0], p...)
	case frameContinuation:
		h.bad = 0
		if len(p) < h.flen || len(h.block)+len(p) > c.cfg.MaxHeaderListBytes+64 {
			h.blockLost = true
		} else if !h.blockLost {
			h.block = append(h.block, p...)
		}
		if h.flags&flagEndHeaders != 0 {
			c.blockDone(h, h.block, t)
		}
	case frameRSTStream:
		c.stats.Resets.Add(1)
		code := uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		if s := c.stream(h.sid); s != nil {
			s.e.AddNote("reset: " + errCode(code))
			s.reset = code
			s.resetDir = h.dir
			c.finish(s, t)
		}
	case frameGoAway:
		c.stats.GoAways.Add(1)
		last := (uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])) &^ (1 << 31)
		code := uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7])
		i, _ := c.search(last + 1)
		for _, s := range slices.Clone(c.streams[i:]) {
			s.e.AddNote("goaway: not processed (" + errCode(code) + ")")
			s.goaway = true
			c.finish(s, t)
		}
	}
	c.next(h)
}

// blockLostNow drops a header block that did not finish.
func (c *conn) blockLostNow(h *half, t time.Time) {
	h.blockLost = true
	c.blockDone(h, nil, t)
}

// dataStart moves to a DATA frame's bytes, or its end.
func (c *conn) dataStart(h *half, t time.Time) {
	switch {
	case h.left > 0:
		h.st = stData
	case h.pad > 0:
		h.st = stDataSkip
	default:
		c.dataEnd(h, t)
	}
}

func (c *conn) dataEnd(h *half, t time.Time) {
	h.bad = 0
	if h.flags&flagEndStream != 0 {
		if s := c.stream(h.sid); s != nil {
			c.endSide(s, h.dir, t)
		}
	}
	c.next(h)
}

func (c *conn) data(h *half, b []byte, t time.Time) {
	s := c.stream(h.sid)
	if s == nil {
		return
	}
	s.write(c, h, b)
	seen(s.msg(h.dir), t)
}

// Gap implements tcp.Handler.
func (c *conn) Gap(dir tcp.Dir, n int, t time.Time) {
	if c.ended || dir > 1 {
		return
	}
	c.stats.Gaps.Add(1)
	h := &c.h[dir]
	switch h.st {
	case stData:
		if s := c.stream(h.sid); s != nil {
			s.incomplete = true
			s.e.AddNote("gap in body")
			s.body(h.dir).lost = true
		}
		if n <= h.left {
			h.left -= n
			if h.left == 0 {
				c.dataStart(h, t)
			}
			return
		}
	case stSkip:
		if n <= h.left {
			h.left -= n
			if h.left == 0 {
				c.frameDone(h, h.buf, t)
			}
			return
		}
	case stPayload:
		if n <= h.left && (h.typ == frameHeaders || h.typ == frameContinuation || h.typ == framePushPromise) {
			// The block is lost; the frame's end is still known.
			h.left -= n
			h.keep = len(h.buf)
			h.flen = h.flen + 1 // marks the payload short of its length
			h.st = stSkip
			if h.left == 0 {
				c.frameDone(h, h.buf, t)
			}
			return
		}
	}
	c.kill(h)
}

// End implements tcp.Handler.
func (c *conn) End(_ tcp.EndReason, t time.Time) {
	if c.ended {
		return
	}
	for _, s := range slices.Clone(c.streams) {
		s.incomplete = true
		if !s.reqEnded || !s.respEnded {
			s.e.AddNote("connection ended before the stream did")
		}
		c.finish(s, t)
	}
	c.ended = true
	c.leave()
}

func errCode(code uint32) string {
	names := [...]string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
		"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
		"COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}
	if int(code) < len(names) {
		return names[code]
	}
	return "0x" + strconv.FormatUint(uint64(code), 16)
}
