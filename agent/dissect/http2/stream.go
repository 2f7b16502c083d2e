package http2

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// recordHead is what a stream emits: its entry and the entry's messages,
// with room for a note.
type recordHead struct {
	e         entry.Entry
	req, resp entry.Message
	notes     [1]string
}

// recordClass is the allocation size class records are made to fit.
const recordClass = 704

// inlineHeaders is how many headers (request, response and trailers
// together) a record holds without another allocation: as many as fit
// its size class, the allocation's header (8 bytes) included.
const inlineHeaders = max(0, (recordClass-8-int(unsafe.Sizeof(recordHead{})))/int(unsafe.Sizeof(entry.Header{})))

// record is a stream's entry in one allocation.
type record struct {
	recordHead
	hdrs [inlineHeaders]entry.Header
}

type stream struct {
	id         uint32
	e          *entry.Entry
	req, resp  *entry.Message
	reqDir     tcp.Dir
	sawReq     bool // request headers seen
	sawResp    bool // final response headers seen
	reqEnded   bool
	respEnded  bool
	incomplete bool
	grpc       bool
	goaway     bool
	upgraded   bool // stream 1 of an h2c upgrade: the request came in HTTP/1.1
	resetDir   tcp.Dir
	reset      uint32
	authority  string
	enc        [2]string // content-encoding / grpc-encoding by side (0 req, 1 resp)
	clen       [2]int64  // content-length by side, -1 unknown
	bodies     [2]body
	room       []entry.Header // the record's headers not yet used
}

func (s *stream) side(dir tcp.Dir) int {
	if dir == s.reqDir {
		return 0
	}
	return 1
}

func (s *stream) body(dir tcp.Dir) *body { return &s.bodies[s.side(dir)] }

func (s *stream) msg(dir tcp.Dir) *entry.Message {
	if s.side(dir) == 0 {
		return s.req
	}
	return s.resp
}

// search is where stream sid is, or would be, in c.streams.
func (c *conn) search(sid uint32) (int, bool) {
	lo, hi := 0, len(c.streams)
	if hi > 0 && c.streams[hi-1].id < sid {
		return hi, false // the usual case: a new stream, the highest id
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.streams[m].id < sid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(c.streams) && c.streams[lo].id == sid
}

// stream is open stream sid, or nil.
func (c *conn) stream(sid uint32) *stream {
	if n := len(c.streams); n > 0 && c.streams[n-1].id == sid {
		return c.streams[n-1]
	}
	if i, ok := c.search(sid); ok {
		return c.streams[i]
	}
	return nil
}

// maxGuess bounds a buffer sized ahead on a length the peer announced.
const maxGuess = 64 << 10

// maxScratch bounds the rendering buffer a connection keeps.
const maxScratch = 8 << 10

// maxFree bounds the finished streams a connection keeps for reuse.
const maxFree = 4

// maxReuse bounds the gRPC message buffers a finished stream keeps.
const maxReuse = 4 << 10

// open opens stream sid, which is not open.
func (c *conn) open(sid uint32) *stream {
	var s *stream
	if n := len(c.free); n > 0 {
		s, c.free = c.free[n-1], c.free[:n-1]
	} else {
		s = new(stream)
	}
	r := new(record)
	s.id = sid
	s.e, s.req, s.resp = &r.e, &r.req, &r.resp
	// Fields known now are set now, with the others of the entry's first
	// cache lines: fresh memory is slow to write to, less so at once.
	s.e.HTTPVersion, s.e.Protocol = "2", entry.ProtoHTTP
	s.e.Src, s.e.Dst = c.local, c.remote
	s.e.Notes = r.notes[:0]
	s.room = r.hdrs[:]
	s.clen = [2]int64{-1, -1}
	i, _ := c.search(sid)
	c.streams = slices.Insert(c.streams, i, s)
	return s
}

// forget closes stream s.
func (c *conn) forget(s *stream) {
	if i, ok := c.search(s.id); ok && c.streams[i] == s {
		c.streams = slices.Delete(c.streams, i, i+1)
	}
}

// release keeps finished stream s for reuse, with its gRPC message buffers
// (the entry holds copies of what it needs).
func (c *conn) release(s *stream) {
	if len(c.free) >= maxFree || c.ended {
		return
	}
	var msgs [2][]grpcMsg
	budget := maxReuse
	for i := range s.bodies {
		all := s.bodies[i].g.msgs
		all = all[:cap(all)]
		for j := range all {
			d := all[j].data[:0]
			if cap(d) > budget {
				d = nil
			}
			budget -= cap(d)
			all[j] = grpcMsg{data: d}
		}
		msgs[i] = all[:0]
	}
	*s = stream{}
	s.bodies[0].g.msgs, s.bodies[1].g.msgs = msgs[0], msgs[1]
	c.free = append(c.free, s)
}

// listInfo is what headers needs of a header list, read in one pass.
type listInfo struct {
	method, status, path, authority string
	regular                         int    // fields not pseudo-headers
	host                            string // the first host field's value
}

// scan reads the pseudo-headers that start the list (the first of each
// name counts) and counts the other fields.
func (h *half) scan(fields []field) (l listInfo) {
	var seen [4]bool
	lead := true // still among the leading pseudo-headers
	hostSeen := false
	for i := range fields {
		f := &fields[i]
		name := h.str(f.name)
		if strings.HasPrefix(name, ":") {
			if !lead {
				continue
			}
			var k int
			var dst *string
			switch name {
			case ":method":
				k, dst = 0, &l.method
			case ":status":
				k, dst = 1, &l.status
			case ":path":
				k, dst = 2, &l.path
			case ":authority":
				k, dst = 3, &l.authority
			default:
				continue
			}
			if !seen[k] {
				seen[k], *dst = true, h.str(f.value)
			}
			continue
		}
		lead = false
		l.regular++
		if !hostSeen && len(name) == 4 && strings.EqualFold(name, "host") {
			hostSeen, l.host = true, h.str(f.value)
		}
	}
	return l
}

// headers handles a decoded header block of stream sid sent by h.
func (c *conn) headers(h *half, sid uint32, fields []field, partial, end bool, t time.Time) {
	l := h.scan(fields)
	method, status := l.method, l.status
	if c.client < 0 {
		if method != "" {
			c.client = int8(h.dir)
		} else if status != "" {
			c.client = int8(h.dir ^ 1)
		}
	}
	s := c.stream(sid)
	if s == nil {
		if sid%2 == 0 {
			return // server push: not followed
		}
		c.stats.Streams.Add(1)
		if len(c.streams) >= c.cfg.MaxStreams {
			c.stats.Malformed.Add(1)
			return
		}
		s = c.open(sid)
		s.e.ConnID = c.info.ID
		switch cd := c.clientDir(); {
		case cd >= 0:
			s.reqDir = tcp.Dir(cd)
		case status != "":
			s.reqDir = h.dir ^ 1
		default:
			s.reqDir = h.dir
		}
	}
	side := s.side(h.dir)
	m := s.msg(h.dir)
	if partial {
		s.incomplete = true
		if c.fresh {
			s.e.AddNote(noteHPACK)
		} else {
			s.e.AddNote(noteMidStream)
		}
	}
	if h.over {
		s.e.AddNote("headers over the limit dropped")
	}
	seen(m, t)
	var trailers bool
	if side == 0 {
		trailers = s.sawReq
		if !trailers {
			s.sawReq = true
			s.e.Method = method
			s.e.Path = l.path
			s.authority = l.authority
		}
	} else {
		st, ok := atoi(status)
		if ok && st >= 100 && st < 200 {
			if st == 100 {
				s.e.AddNote("100-continue")
			}
			return
		}
		trailers = s.sawResp
		if !trailers {
			s.sawResp = true
			if ok {
				s.e.Status = int32(st)
			}
		}
	}
	// The list is sized once.
	n := l.regular
	addHost := side == 0 && !trailers && s.authority != "" && l.host == "" && m.Header("host") == ""
	if addHost {
		n++
	}
	list := &m.Headers
	if trailers {
		list = &m.Trailers
	}
	hs := *list
	if hs == nil && n <= len(s.room) {
		hs, s.room = s.room[:0:n], s.room[n:]
	} else {
		hs = slices.Grow(hs, n)
	}
	for i := range fields {
		f := &fields[i]
		name := h.str(f.name)
		if strings.HasPrefix(name, ":") {
			continue
		}
		if !h.knownLower(f.name) {
			name = strings.ToLower(name)
		}
		hd := entry.Header{Name: name, Value: h.str(f.value)}
		hs = append(hs, hd)
		if trailers {
			continue
		}
		switch hd.Name {
		case "content-type":
			if strings.HasPrefix(hd.Value, "application/grpc") && (side == 0 || !s.sawReq) {
				s.grpc = true
			}
		case "content-encoding", "grpc-encoding":
			s.enc[side] = strings.ToLower(strings.TrimSpace(hd.Value))
		case "content-length":
			if n, ok := atoi(hd.Value); ok && n >= 0 {
				s.clen[side] = int64(n)
			}
		}
	}
	if addHost {
		hs = append(hs, entry.Header{Name: "host", Value: s.authority})
	}
	if n > 0 || *list != nil {
		*list = hs
	}
	if end {
		c.endSide(s, h.dir, t)
	}
}

// seen notes bytes of message m seen at t.
func seen(m *entry.Message, t time.Time) {
	if m.Start.IsZero() {
		m.Start = t
	}
	setTime(&m.End, t)
}

// setTime sets *p to t; most frames come in the same segment as the one
// before, and an unchanged time costs no store (nor write barrier).
func setTime(p *time.Time, t time.Time) {
	if *p != t {
		*p = t
	}
}

// atoi is strconv.Atoi without the error value (and its allocation).
func atoi(s string) (int, bool) {
	if len(s) == 0 {
		return 0, false
	}
	if len(s) < 10 {
		n := 0
		for i := 0; i < len(s); i++ {
			d := s[i] - '0'
			if d > 9 {
				goto slow
			}
			n = n*10 + int(d)
		}
		return n, true
	}
slow:
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (c *conn) endSide(s *stream, dir tcp.Dir, t time.Time) {
	if s.side(dir) == 0 {
		s.reqEnded = true
	} else {
		s.respEnded = true
	}
	setTime(&s.msg(dir).End, t)
	if s.reqEnded && s.respEnded {
		c.finish(s, t)
	}
}

// messagesNotes are the usual "messages:" notes of gRPC entries.
var messagesNotes = func() (n [4][4]string) {
	for i := range n {
		for j := range n[i] {
			n[i][j] = formatMessagesNote(i, j)
		}
	}
	return n
}()

func messagesNote(sent, received int) string {
	if sent < len(messagesNotes) && received < len(messagesNotes[sent]) {
		return messagesNotes[sent][received]
	}
	return formatMessagesNote(sent, received)
}

func formatMessagesNote(sent, received int) string {
	return "messages: " + strconv.Itoa(sent) + " sent, " + strconv.Itoa(received) + " received"
}

// finish emits the stream's entry and forgets it.
func (c *conn) finish(s *stream, t time.Time) {
	c.forget(s)
	e := s.e
	reqDir := s.reqDir
	if cd := c.clientDir(); cd >= 0 {
		reqDir = tcp.Dir(cd)
	}
	if reqDir != tcp.Egress {
		e.Src, e.Dst = c.remote, c.local
	}
	e.Time = s.req.Start
	if e.Time.IsZero() {
		e.Time = s.resp.Start
	}
	if !s.resp.End.IsZero() && !s.req.Start.IsZero() {
		e.Latency = s.resp.End.Sub(s.req.Start)
	}
	if !s.sawReq {
		s.incomplete = true
		e.AddNote("request not captured")
	}
	max := c.cfg.MaxBodyBytes
	msgs := [2]*entry.Message{s.req, s.resp}
	if s.grpc {
		e.Protocol = entry.ProtoGRPC
		e.Method = e.Path
		// Both bodies are rendered into the connection's scratch buffer,
		// then copied to one allocation of their size.
		out := c.scratch[:0]
		var at [2]int
		for i, m := range msgs {
			b := &s.bodies[i]
			if i == 0 && s.upgraded {
				continue // the HTTP/1.1 request, as it came
			}
			m.BodyBytes = b.total
			at[i] = len(out)
			out, m.Body, m.Truncated = b.renderGRPC(out, s.enc[i], max)
		}
		if len(out) > 0 {
			buf := append([]byte(nil), out...)
			for i, m := range msgs {
				if len(m.Body) > 0 && !(i == 0 && s.upgraded) {
					m.Body = buf[at[i] : at[i]+len(m.Body) : at[i]+len(m.Body)]
				}
			}
		}
		if cap(out) <= maxScratch {
			c.scratch = out[:0]
		} else {
			c.scratch = nil
		}
		e.AddNote(messagesNote(s.bodies[0].g.count, s.bodies[1].g.count))
		st := s.resp.Header("grpc-status")
		msg := s.resp.Header("grpc-message")
		for _, h := range s.resp.Trailers {
			switch h.Name {
			case "grpc-status":
				st = h.Value
			case "grpc-message":
				msg = h.Value
			}
		}
		if code, ok := atoi(st); ok {
			e.Status = int32(code)
			e.Failed = code != 0
		} else {
			e.Status = 0
			e.Failed = s.reset != 0 && s.reset != 8
			if s.sawResp && s.respEnded {
				e.AddNote("no grpc-status")
			}
		}
		if msg != "" {
			if dm, err := url.PathUnescape(msg); err == nil {
				msg = dm
			}
			e.AddNote("grpc-message: " + msg)
		}
	} else {
		for i, m := range msgs {
			b := &s.bodies[i]
			if i == 0 && s.upgraded {
				continue // the HTTP/1.1 request, as it came
			}
			m.Body, m.BodyBytes, m.Truncated = b.raw, b.total, b.total > int64(len(b.raw))
			if s.enc[i] == "gzip" && len(m.Body) > 0 {
				out, complete, err := gunzip(m.Body, max)
				if err != nil && !(m.Truncated && len(out) > 0 && errors.Is(err, io.ErrUnexpectedEOF)) {
					e.AddNote("undecodable gzip body")
				} else {
					m.Body = out
					if !complete {
						m.Truncated = true
					}
				}
			}
		}
		e.Failed = e.Status >= 500 || (s.reset != 0 && s.reset != 8 && !s.respEnded)
	}
	for i := range s.bodies {
		if s.bodies[i].lost {
			s.incomplete = true
		}
	}
	if len(e.Notes) == 0 {
		e.Notes = nil
	}
	e.Request = s.req
	if s.sawResp || s.resp.BodyBytes > 0 || len(s.resp.Trailers) > 0 {
		e.Response = s.resp
	}
	e.Incomplete = s.incomplete
	if e.Incomplete {
		c.stats.Incomplete.Add(1)
	}
	c.stats.Entries.Add(1)
	c.emit(e)
	c.release(s)
}

// body is what one side of a stream sent in DATA frames.
type body struct {
	raw   []byte
	total int64
	lost  bool // a gap hit it
	g     grpcParse
}

// write takes DATA bytes p, which h is reading, for the stream.
func (s *stream) write(c *conn, h *half, p []byte) {
	side := s.side(h.dir)
	b := &s.bodies[side]
	b.total += int64(len(p))
	limit := c.cfg.MaxBodyBytes
	if s.grpc {
		b.g.write(p, limit, c.cfg.MaxGRPCMessages)
		return
	}
	n := min(len(p), limit-len(b.raw))
	if n <= 0 {
		return
	}
	if b.raw == nil {
		// One allocation for the body, as large as its content-length
		// says, else as the rest of this frame: within the limit, and
		// within what a length not followed by the bytes may cost.
		size := h.left
		if cl := s.clen[side]; cl >= 0 {
			size = int(min(cl, int64(limit)))
		}
		if size = min(size, limit, max(n, maxGuess)); size <= n {
			b.raw = append([]byte(nil), p[:n]...)
			return
		}
		b.raw = make([]byte, 0, size)
	}
	b.raw = append(b.raw, p[:n]...)
}

// gunzip decodes raw, returning at most limit bytes; complete is false when
// there was more.
func gunzip(raw []byte, limit int) (out []byte, complete bool, err error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, false, err
	}
	out, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if len(out) > limit {
		return out[:limit], false, nil
	}
	if err != nil {
		return out, false, err
	}
	return out, true, nil
}
