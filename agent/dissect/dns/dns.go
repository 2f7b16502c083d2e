// Package dns pairs DNS queries and responses, over UDP (Tracker) and over
// TCP (New, a tcp.Handler), into entries whose bodies read like dig's
// output.
//
// The parser is written for untrusted input: compression pointers may
// only point backwards, names are bounded to 255 wire bytes, every length
// is checked against the message, and what is rendered and kept is bounded
// by Config, so a malformed or hostile message costs bounded time and
// memory and never panics.
package dns

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/podwire/podwire/agent/dissect/sniff"
	"github.com/podwire/podwire/agent/entry"
)

// Verdict is what Detect makes of a stream's first bytes.
type Verdict = sniff.Verdict

// Detect's answers.
const (
	No       = sniff.No
	Yes      = sniff.Yes
	NeedMore = sniff.NeedMore
)

// Defaults for the zero Config.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxPending = 4096
	DefaultMaxRecords = 64
)

// maxBody bounds the rendered text of one message: compression lets a
// 64 KiB message name thousands of 255-byte names.
const maxBody = 64 << 10

// Config bounds what a Tracker or a connection holds.
type Config struct {
	// Timeout is how long a query waits for its response before it
	// becomes an unanswered entry. 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxPending bounds the queries awaiting a response (per Tracker, per
	// TCP connection); beyond it the oldest is emitted unanswered.
	// 0 means DefaultMaxPending.
	MaxPending int
	// MaxRecords is how many records of each section are rendered; the
	// rest are counted. 0 means DefaultMaxRecords.
	MaxRecords int
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	return c
}

// Stats are counters shared by a Tracker and the TCP connections.
type Stats struct {
	Entries    atomic.Uint64 // entries emitted
	Timeouts   atomic.Uint64 // queries emitted without a response (timed out, evicted, connection ended)
	Malformed  atomic.Uint64 // messages that could not be (wholly) parsed
	Orphans    atomic.Uint64 // responses dropped for want of a query
	Truncated  atomic.Uint64 // responses with the TC bit
	Duplicates atomic.Uint64 // responses dropped because their query was already answered
	Retries    atomic.Uint64 // queries sent again with the same id before the answer
}

// Snapshot returns the counters by name.
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"entries":    s.Entries.Load(),
		"timeouts":   s.Timeouts.Load(),
		"malformed":  s.Malformed.Load(),
		"orphans":    s.Orphans.Load(),
		"truncated":  s.Truncated.Load(),
		"duplicates": s.Duplicates.Load(),
		"retries":    s.Retries.Load(),
	}
}

// Detect says whether b starts with a plausible DNS message: sane header
// counts, opcode QUERY..UPDATE, and a first question that parses. With
// tcpFramed, b starts with the 2-byte length prefix of DNS over TCP.
// It does not allocate.
func Detect(b []byte, tcpFramed bool) Verdict {
	msg, partial := b, false
	size := len(b)
	if tcpFramed {
		if len(b) < 2 {
			return NeedMore
		}
		size = int(u16(b))
		msg = b[2:]
		if len(msg) > size {
			msg = msg[:size]
		} else if len(msg) < size {
			partial = true
		}
	}
	// A header, the root name and a type and class at the least.
	if size < headerLen+5 {
		return No
	}
	if len(msg) < headerLen {
		return NeedMore
	}
	h, _ := parseHeader(msg)
	if h.opcode > 5 || h.opcode == 3 || h.flags&0x0040 != 0 || (!h.qr && h.rcode != 0) {
		return No
	}
	if h.qd == 0 || h.qd > 4 {
		return No
	}
	// The smallest record is 11 bytes, the smallest question 5.
	if (int(h.an)+int(h.ns)+int(h.ar))*11 > size-headerLen-5*int(h.qd) {
		return No
	}
	_, n, err := readName(msg, headerLen, nil, nameSkip)
	if err != nil {
		if err == errShort && partial {
			return NeedMore
		}
		return No
	}
	if n+4 > len(msg) {
		if partial {
			return NeedMore
		}
		return No
	}
	switch u16(msg[n+2:]) { // class
	case 1, 3, 4, 254, 255:
	default:
		return No
	}
	if u16(msg[n:]) == 0 {
		return No
	}
	return Yes
}

// exchange is one query and its response; the entry and its messages
// live in one allocation.
type exchange struct {
	e         entry.Entry
	req, resp entry.Message
	id        uint16
	retries   int
	dir       uint8 // TCP: the direction the query came from
}

// parser renders messages; it is not safe for concurrent use.
type parser struct {
	cfg   Config
	stats *Stats
	buf   []byte // scratch for bodies
	path  []byte // scratch for the first question's name
}

// query parses a query into a new exchange; an error means the header
// or the question could not be parsed and the message is dropped.
func (p *parser) query(msg []byte, h *header, ts time.Time) (*exchange, error) {
	if h.qd == 0 {
		return nil, errNoQuest
	}
	b := p.buf[:0]
	b = append(b, "id "...)
	b = strconv.AppendUint(b, uint64(h.id), 10)
	if h.opcode != 0 {
		b = append(b, " opcode "...)
		b = appendOpcode(b, h.opcode)
	}
	b = appendFlags(b, h.flags)
	off := headerLen
	var qtype uint16
	var err error
	for i := 0; i < int(h.qd); i++ {
		show := i < p.cfg.MaxRecords && len(b) <= maxBody
		mode := nameSkip
		if show {
			b = append(b, "\n;"...)
			mode = nameAsIs
		}
		if i == 0 {
			if p.path, _, err = readName(msg, off, p.path[:0], nameLower); err != nil {
				p.buf = b
				return nil, err
			}
		}
		if b, off, err = readName(msg, off, b, mode); err != nil {
			p.buf = b
			return nil, err
		}
		if off+4 > len(msg) {
			p.buf = b
			return nil, errShort
		}
		t, c := u16(msg[off:]), u16(msg[off+2:])
		if i == 0 {
			qtype = t
		}
		off += 4
		if show {
			b = append(b, ' ')
			b = appendClass(b, c)
			b = append(b, ' ')
			b = appendType(b, t)
		}
	}
	ex := &exchange{id: h.id}
	e := &ex.e
	e.Time = ts
	e.Protocol = entry.ProtoDNS
	e.Method = typeName(qtype)
	path := p.path
	if len(path) > 1 {
		path = path[:len(path)-1] // no trailing dot, but the root stays "."
	}
	e.Path = string(path)
	// Queries rarely carry more than an OPT record; UPDATE carries records.
	b, _, cut, ok := p.sections(b, msg, off, h, false)
	ex.req.Truncated = cut
	if !ok {
		p.stats.Malformed.Add(1)
		e.AddNote("malformed query")
	}
	ex.req.Body = append([]byte(nil), b...)
	ex.req.BodyBytes = int64(len(msg))
	ex.req.Start, ex.req.End = ts, ts
	e.Request = &ex.req
	p.buf = b
	return ex, nil
}

// answer adds the response msg to ex.
func (p *parser) answer(ex *exchange, msg []byte, h *header, ts time.Time) {
	e := &ex.e
	b := p.buf[:0]
	b = append(b, ";; ->>HEADER<<- opcode: "...)
	b = appendOpcode(b, h.opcode)
	b = append(b, ", status: "...)
	statusAt := len(b)
	b = append(b, ", id: "...)
	b = strconv.AppendUint(b, uint64(h.id), 10)
	b = append(b, "\n;; flags:"...)
	b = appendFlags(b, h.flags)
	b = append(b, "; QUERY: "...)
	b = strconv.AppendUint(b, uint64(h.qd), 10)
	b = append(b, ", ANSWER: "...)
	b = strconv.AppendUint(b, uint64(h.an), 10)
	b = append(b, ", AUTHORITY: "...)
	b = strconv.AppendUint(b, uint64(h.ns), 10)
	b = append(b, ", ADDITIONAL: "...)
	b = strconv.AppendUint(b, uint64(h.ar), 10)
	// Skip the question: the request shows it.
	off, ok := headerLen, true
	for i := 0; i < int(h.qd) && ok; i++ {
		var err error
		if _, off, err = readName(msg, off, nil, nameSkip); err != nil || off+4 > len(msg) {
			ok = false
		}
		off += 4
	}
	rcode := int(h.rcode)
	if ok {
		var ext int
		b, ext, ex.resp.Truncated, ok = p.sections(b, msg, off, h, true)
		rcode |= ext << 4
	}
	if !ok {
		b = append(b, "\n;; malformed response"...)
		p.stats.Malformed.Add(1)
		e.AddNote("malformed response")
	}
	// The status goes into the first line now that EDNS is known.
	var st [16]byte
	name := appendRcode(st[:0], rcode)
	b = append(b, name...)
	copy(b[statusAt+len(name):], b[statusAt:len(b)-len(name)])
	copy(b[statusAt:], name)
	if h.tc {
		p.stats.Truncated.Add(1)
		e.AddNote("truncated (TC)")
	}
	ex.resp.Body = append([]byte(nil), b...)
	ex.resp.BodyBytes = int64(len(msg))
	ex.resp.Start, ex.resp.End = ts, ts
	e.Response = &ex.resp
	e.Status = int32(rcode)
	e.Failed = rcode != 0
	if e.Latency = ts.Sub(e.Time); e.Latency < 0 {
		e.Latency = 0
	}
	p.buf = b
}

var sectionNames = [3]string{"\n;; ANSWER SECTION:", "\n;; AUTHORITY SECTION:", "\n;; ADDITIONAL SECTION:"}

// sections renders the answer, authority and additional sections that
// start at off. It returns the extended rcode bits of an OPT record,
// whether records were left out (MaxRecords, maxBody) and false when the
// message is malformed.
func (p *parser) sections(b, msg []byte, off int, h *header, resp bool) (_ []byte, ext int, cut bool, ok bool) {
	counts := [3]uint16{h.an, h.ns, h.ar}
	for s, n := range counts {
		if n == 0 {
			continue
		}
		if resp || s != 2 || n != 1 {
			b = append(b, sectionNames[s]...)
		}
		for i := 0; i < int(n); i++ {
			show := i < p.cfg.MaxRecords && len(b) <= maxBody
			if !show && !cut {
				b = append(b, "\n;; ... records left out"...)
				cut = true
			}
			nameAt := len(b)
			mode := nameSkip
			if show {
				b = append(b, '\n')
				mode = nameAsIs
			}
			var err error
			if b, off, err = readName(msg, off, b, mode); err != nil || off+10 > len(msg) {
				return b[:nameAt], ext, cut, false
			}
			t, class, ttl := u16(msg[off:]), u16(msg[off+2:]), u32(msg[off+4:])
			rdl := int(u16(msg[off+8:]))
			off += 10
			if off+rdl > len(msg) {
				return b[:nameAt], ext, cut, false
			}
			if t == typeOPT {
				ext = int(ttl >> 24)
				if show {
					b = appendOPT(b[:nameAt+1], class, ttl, msg[off:off+rdl])
				}
			} else if show {
				b = append(b, ' ')
				b = strconv.AppendUint(b, uint64(ttl), 10)
				b = append(b, ' ')
				b = appendClass(b, class)
				b = append(b, ' ')
				b = appendType(b, t)
				b = append(b, ' ')
				b = appendRdata(b, msg, t, off, off+rdl)
			}
			off += rdl
		}
	}
	return b, ext, cut, true
}
