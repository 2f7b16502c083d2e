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
	"sync/atomic"
	"time"
	"unsafe"

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

// pending is a query waiting for its response: what its entry will hold,
// with the request body rendered. The Tracker and each TCP connection
// keep the pendings they are done with for the next queries, so that a
// query allocates nothing; its entry is made, in one allocation, once it
// is complete (see exchange).
type pending struct {
	body            []byte // the request body; its capacity is reused
	nameAt, nameEnd int    // the first question's name in body
	time            time.Time
	method          string
	bodyBytes       int64
	src, dst        entry.Endpoint
	connID          uint64
	retries         int
	id              uint16
	dir             uint8 // TCP: the direction the query came from
	cut             bool  // request records left out
	malformed       bool  // request records that could not be read
}

// reset readies q for reuse. A body grown large (a query with many
// records) is let go rather than kept with q.
func (q *pending) reset() {
	body := q.body[:0]
	if cap(body) > 1024 {
		body = nil
	}
	*q = pending{body: body}
}

// path is the first question's name as the entry's Path has it: without
// the trailing dot, but the root stays ".".
func (q *pending) path() []byte {
	name := q.body[q.nameAt:q.nameEnd]
	if len(name) > 1 {
		name = name[:len(name)-1]
	}
	return name
}

// fill sets what e and its request get from q. text is where the
// strings go: the path (lower-cased), then the request body. It returns
// what is left of text. When the request is the last thing in text, its
// body keeps the rest of text as capacity, so that the entry's Size counts
// it; otherwise its capacity ends with it, so that an append to it never
// writes over what follows.
func (q *pending) fill(e *entry.Entry, req *entry.Message, text []byte, last bool) []byte {
	path := q.path()
	copy(text, path)
	lowerASCII(text[:len(path)])
	e.Path = unsafe.String(&text[0], len(path))
	text = text[len(path):]
	n := copy(text, q.body)
	if last {
		req.Body = text[:n]
	} else {
		req.Body = text[:n:n]
	}
	e.Time = q.time
	e.Protocol = entry.ProtoDNS
	e.Method = q.method
	e.Src, e.Dst = q.src, q.dst
	e.ConnID = q.connID
	req.Truncated = q.cut
	req.BodyBytes = q.bodyBytes
	req.Start, req.End = q.time, q.time
	e.Request = req
	if q.malformed {
		e.AddNote("malformed query")
	}
	return text[n:]
}

// parser renders messages; it is not safe for concurrent use.
type parser struct {
	cfg   Config
	stats *Stats
	buf   []byte // scratch for response bodies
}

// query parses the query msg into q; an error means the header or the
// question could not be parsed and the message is dropped.
func (p *parser) query(q *pending, msg []byte, h *header, ts time.Time) error {
	if h.qd == 0 {
		return errNoQuest
	}
	b := q.body[:0]
	defer func() { q.body = b }()
	b = append(b, "id "...)
	b = appendUint(b, uint64(h.id))
	if h.opcode != 0 {
		b = append(b, " opcode "...)
		b = appendOpcode(b, h.opcode)
	}
	b = appendFlags(b, h.flags)
	off := headerLen
	var qtype uint16
	var err error
	for i := 0; i < int(h.qd); i++ {
		// The first question is always shown (MaxRecords > 0, b is
		// short); its name, lower-cased, is the entry's path.
		show := i < p.cfg.MaxRecords && len(b) <= maxBody || i == 0
		mode := nameSkip
		if show {
			b = append(b, "\n;"...)
			mode = nameAsIs
		}
		at := len(b)
		if b, off, err = readName(msg, off, b, mode); err != nil {
			return err
		}
		if off+4 > len(msg) {
			return errShort
		}
		t, c := u16(msg[off:]), u16(msg[off+2:])
		if i == 0 {
			qtype = t
			q.nameAt, q.nameEnd = at, len(b)
		}
		off += 4
		if show {
			b = appendClassType(b, c, t)
		}
	}
	// Queries rarely carry more than an OPT record; UPDATE carries records.
	var ok bool
	b, _, q.cut, ok = p.sections(b, msg, off, h, false)
	if !ok {
		p.stats.Malformed.Add(1)
		q.malformed = true
	}
	q.id = h.id
	q.time = ts
	q.method = typeName(qtype)
	q.bodyBytes = int64(len(msg))
	return nil
}

// unanswered returns the entry of q without a response.
func (p *parser) unanswered(q *pending) *entry.Entry {
	r, text := newRequest(len(q.path()) + len(q.body))
	r.e.Notes = r.notes[:0]
	q.fill(&r.e, &r.req, text, true)
	return &r.e
}

// answer returns the entry of q with the response msg.
func (p *parser) answer(q *pending, msg []byte, h *header, ts time.Time) *entry.Entry {
	b := p.buf[:0]
	// The status goes after "status: " once EDNS is known.
	b = append(b, ";; ->>HEADER<<- opcode: "...)
	b = appendOpcode(b, h.opcode)
	b = append(b, ", status: "...)
	statusAt := len(b)
	b = append(b, ", id: "...)
	b = appendUint(b, uint64(h.id))
	b = append(b, "\n;; flags:"...)
	b = appendFlags(b, h.flags)
	b = append(b, "; QUERY: "...)
	b = appendUint(b, uint64(h.qd))
	b = append(b, ", ANSWER: "...)
	b = appendUint(b, uint64(h.an))
	b = append(b, ", AUTHORITY: "...)
	b = appendUint(b, uint64(h.ns))
	b = append(b, ", ADDITIONAL: "...)
	b = appendUint(b, uint64(h.ar))
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
	var cut bool
	if ok {
		var ext int
		b, ext, cut, ok = p.sections(b, msg, off, h, true)
		rcode |= ext << 4
	}
	if !ok {
		b = append(b, "\n;; malformed response"...)
		p.stats.Malformed.Add(1)
	}
	p.buf = b
	status := rcodeText(rcode)

	ex, text := newExchange(len(q.path()) + len(q.body) + len(b) + len(status))
	e := &ex.e
	text = q.fill(e, &ex.req, text, false)
	n := copy(text, b[:statusAt])
	n += copy(text[n:], status)
	n += copy(text[n:], b[statusAt:])
	ex.resp.Body = text[:n] // the rest of text as capacity, for Size
	ex.resp.Truncated = cut
	if !ok {
		e.AddNote("malformed response")
	}
	if h.tc {
		p.stats.Truncated.Add(1)
		e.AddNote("truncated (TC)")
	}
	ex.resp.BodyBytes = int64(len(msg))
	ex.resp.Start, ex.resp.End = ts, ts
	e.Response = &ex.resp
	e.Status = int32(rcode)
	e.Failed = rcode != 0
	if e.Latency = ts.Sub(e.Time); e.Latency < 0 {
		e.Latency = 0
	}
	return e
}

// ptrNames remembers where the text of owner names that were a bare
// compression pointer went in the body, by the offset pointed to. The
// text of such a name depends on nothing but the message and that
// offset, so another name that is the same pointer (and may point there:
// backwards, past the header) copies it rather than reading the labels
// again. Only names whose record is shown whole are remembered: an OPT
// record's name is overwritten.
type ptrNames struct {
	n    int
	last [4]struct{ ptr, at, end int }
}

func (s *ptrNames) find(ptr, off int) (txt struct{ ptr, at, end int }, ok bool) {
	if ptr < headerLen || ptr >= off {
		return txt, false
	}
	for _, t := range s.last[:min(s.n, len(s.last))] {
		if t.ptr == ptr {
			return t, true
		}
	}
	return txt, false
}

func (s *ptrNames) add(ptr, at, end int) {
	s.last[s.n%len(s.last)] = struct{ ptr, at, end int }{ptr, at, end}
	s.n++
}

var sectionNames = [3]string{"\n;; ANSWER SECTION:", "\n;; AUTHORITY SECTION:", "\n;; ADDITIONAL SECTION:"}

// sections renders the answer, authority and additional sections that
// start at off. It returns the extended rcode bits of an OPT record,
// whether records were left out (MaxRecords, maxBody) and false when the
// message is malformed.
func (p *parser) sections(b, msg []byte, off int, h *header, resp bool) (_ []byte, ext int, cut bool, ok bool) {
	counts := [3]int{int(h.an), int(h.ns), int(h.ar)}
	var seen ptrNames
	for s := range len(counts) {
		n := counts[s]
		if n == 0 {
			continue
		}
		if resp || s != 2 || n != 1 {
			b = append(b, sectionNames[s]...)
		}
		for i := 0; i < n; i++ {
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
			// Most owner names are a bare pointer to one met before.
			ptr := -1
			if show && off+1 < len(msg) && msg[off]&0xC0 == 0xC0 {
				ptr = int(msg[off]&0x3F)<<8 | int(msg[off+1])
			}
			if txt, ok := seen.find(ptr, off); ok {
				b = append(b, b[txt.at:txt.end]...)
				off += 2
				ptr = -1 // remembered already
			} else {
				var err error
				if b, off, err = readName(msg, off, b, mode); err != nil {
					return b[:nameAt], ext, cut, false
				}
			}
			if off+10 > len(msg) {
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
				if ptr >= 0 {
					seen.add(ptr, nameAt+1, len(b))
				}
				b = append(b, ' ')
				b = appendUint(b, uint64(ttl))
				b = appendClassType(b, class, t)
				b = append(b, ' ')
				b = appendRdata(b, msg, t, off, off+rdl)
			}
			off += rdl
		}
	}
	return b, ext, cut, true
}
