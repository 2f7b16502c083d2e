// Package http2 cuts the two byte streams of one TCP connection into HTTP/2
// entries, one per stream, and recognises gRPC calls among them.
//
// Frames are parsed as they arrive in both directions; only a frame header,
// the payloads that must be read whole (header blocks, small control frames)
// and the kept parts of bodies are buffered. Each direction has its own HPACK
// decoder; a connection picked up mid-way decodes what it can and marks what
// it cannot.
package http2

import (
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"

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

	dec     *hpack.Decoder
	fields  []hpack.HeaderField
	listLen int
	over    bool // header list over the limit
	mute    bool // placeholder fields fed to keep the table aligned
}

type conn struct {
	cfg     Config
	info    *tcp.ConnInfo
	emit    func(*entry.Entry)
	stats   *Stats
	h       [2]half
	streams map[uint32]*stream
	client  int8 // direction of the client, -1 unknown
	fresh   bool // the connection's start (preface) was seen
	started bool
	ended   bool
	synth   []byte
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
		streams: make(map[uint32]*stream)}
	for i := range c.h {
		h := &c.h[i]
		h.dir = tcp.Dir(i)
		h.st = stPreface
		h.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { c.field(h, f) })
		h.dec.SetMaxStringLength(c.cfg.MaxHeaderListBytes)
		h.dec.SetAllowedMaxDynamicTableSize(maxTableSize)
	}
	return c
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
			n := copy(h.hdr[h.hn:], b)
			h.hn += n
			b = b[n:]
			if h.hn == 9 {
				h.hn = 0
				c.frameHeader(h, t)
			}
		case stPayload:
			n := min(len(b), h.keep-len(h.buf))
			h.buf = append(h.buf, b[:n]...)
			b = b[n:]
			h.left -= n
			if len(h.buf) == h.keep {
				if h.left > 0 {
					h.st = stSkip
				} else {
					c.frameDone(h, t)
				}
			}
		case stSkip:
			n := min(len(b), h.left)
			b = b[n:]
			h.left -= n
			if h.left == 0 {
				c.frameDone(h, t)
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
			c.frameDone(h, t)
		}
	}
}

// frameDone handles a frame whose payload has been read.
func (c *conn) frameDone(h *half, t time.Time) {
	p := h.buf
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
		h.block = append(h.block[:0], p...)
		if h.flags&flagEndHeaders != 0 {
			c.blockDone(h, t)
		}
	case frameContinuation:
		h.bad = 0
		if len(p) < h.flen || len(h.block)+len(p) > c.cfg.MaxHeaderListBytes+64 {
			h.blockLost = true
		} else if !h.blockLost {
			h.block = append(h.block, p...)
		}
		if h.flags&flagEndHeaders != 0 {
			c.blockDone(h, t)
		}
	case frameRSTStream:
		c.stats.Resets.Add(1)
		code := uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		if s := c.streams[h.sid]; s != nil {
			s.e.AddNote("reset: " + errCode(code))
			s.reset = code
			s.resetDir = h.dir
			c.finish(s, t)
		}
	case frameGoAway:
		c.stats.GoAways.Add(1)
		last := (uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])) &^ (1 << 31)
		code := uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7])
		for _, s := range c.sortedStreams() {
			if s.id > last {
				s.e.AddNote("goaway: not processed (" + errCode(code) + ")")
				s.goaway = true
				c.finish(s, t)
			}
		}
	}
	c.next(h)
}

// blockLostNow drops a header block that did not finish.
func (c *conn) blockLostNow(h *half, t time.Time) {
	h.blockLost = true
	c.blockDone(h, t)
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
		if s := c.streams[h.sid]; s != nil {
			c.endSide(s, h.dir, t)
		}
	}
	c.next(h)
}

func (c *conn) data(h *half, b []byte, t time.Time) {
	s := c.streams[h.sid]
	if s == nil {
		return
	}
	s.body(h.dir).write(c, s, b)
	if m := s.msg(h.dir); m != nil {
		if m.Start.IsZero() {
			m.Start = t
		}
		m.End = t
	}
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
		if s := c.streams[h.sid]; s != nil {
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
				c.frameDone(h, t)
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
				c.frameDone(h, t)
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
	for _, s := range c.sortedStreams() {
		s.incomplete = true
		if !s.reqEnded || !s.respEnded {
			s.e.AddNote("connection ended before the stream did")
		}
		c.finish(s, t)
	}
	c.ended = true
	for i := range c.h {
		c.h[i].buf, c.h[i].block, c.h[i].fields = nil, nil, nil
	}
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
