package http1

import (
	"bytes"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// header reads a header block. When the whole block is in b it is parsed
// in place; otherwise its bytes are buffered (up to MaxHeaderBytes+1).
func (c *conn) header(h *half, dir tcp.Dir, b []byte, t time.Time) []byte {
	lim := c.cfg.MaxHeaderBytes
	if len(h.buf) == 0 {
		fs, lineEnd, end, ok := scanBlock(b, true, c.fields[:0])
		c.keepFields(fs)
		if end < 0 {
			if len(b) > lim || !plausible(b, h.req) {
				c.malformed(h, b, malformedNote(h))
				return b[1:]
			}
			h.buf = append(h.buf, b...)
			_, h.scan = blankLineEnd(b, 0)
			return nil
		}
		if end > lim || !ok || !c.headDone(h, string(b[:end]), lineEnd, fs) {
			c.malformed(h, b, malformedNote(h))
			return b[1:]
		}
		if h.st == stChunkSize {
			h.hint = chunkedSize(b[end:])
		}
		return b[end:]
	}
	old := len(h.buf)
	take := len(b)
	// A resync may hand over more kept bytes than a header block may have.
	if room := max(lim+1-old, 0); take > room {
		take = room
	}
	h.buf = append(h.buf, b[:take]...)
	end, resume := blankLineEnd(h.buf, h.scan)
	if end < 0 {
		h.scan = resume
		if len(h.buf) <= lim && (old >= 32 || plausible(h.buf, h.req)) {
			return b[take:]
		}
	}
	unit := h.buf
	// An end inside the bytes buffered before this call is one the first
	// scan did not accept (the two scans disagree only on malformed
	// input): it goes the malformed way below.
	if end >= old && end <= lim {
		fs, lineEnd, _, ok := scanBlock(unit[:end], true, c.fields[:0])
		c.keepFields(fs)
		if ok && c.headDone(h, string(unit[:end]), lineEnd, fs) {
			h.buf = h.buf[:0]
			return b[end-old:]
		}
	}
	c.malformed(h, unit, malformedNote(h))
	c.reinject(h, dir, unit, t)
	return b[take:]
}

// keepFields keeps the field scratch for the next block unless a large
// block made it big.
func (c *conn) keepFields(fs []field) {
	if cap(fs) <= 256 {
		c.fields = fs
	} else {
		c.fields = nil
	}
}

func malformedNote(h *half) string {
	if h.req {
		return "malformed request"
	}
	return "malformed response"
}

// plausible reports whether b may start a request (or a status) line.
func plausible(b []byte, req bool) bool {
	if !req {
		const v = "HTTP/1."
		n := min(len(b), len(v))
		return string(b[:n]) == v[:n]
	}
	for i := 0; i < len(b) && i < 32; i++ {
		if b[i] == ' ' {
			return i > 0
		}
		if !isTchar(b[i]) {
			return false
		}
	}
	return len(b) < 32
}

// headDone acts on a complete header block s: it starts the message's
// body or finishes the message.
func (c *conn) headDone(h *half, s string, lineEnd int, fs []field) bool {
	var p head
	if !parseHead(s, lineEnd, fs, h.req, &p) {
		return false
	}
	if h.req {
		return c.requestHead(h, &p)
	}
	return c.responseHead(h, &p)
}

// newExchange starts the entry of a request.
func (c *conn) newExchange(h *half, p *head) *exchange {
	// Fields are set one by one: the new exchange is already zeroed.
	ex := new(exchange)
	ex.head = p.method == "HEAD"
	ex.connect = p.method == "CONNECT"
	ex.req.Headers = p.headers
	ex.req.Start, ex.req.End = h.start, h.last
	e := &ex.e
	e.Time = h.start
	e.Protocol = entry.ProtoHTTP
	e.HTTPVersion = p.version
	e.Src, e.Dst = c.src, c.dst
	e.Method, e.Path = p.method, p.target
	e.Request = &ex.req
	e.ConnID = c.info.ID
	return ex
}

// requestHead starts a request whose header block was parsed.
func (c *conn) requestHead(h *half, p *head) bool {
	if p.te == teOther {
		// A request body must be chunked when a transfer coding is used:
		// its length is unknown otherwise.
		return false
	}
	ex := c.newExchange(h, p)
	c.push(ex)
	h.ex, h.msg = ex, &ex.req
	h.enc = p.enc
	switch {
	case p.te == teChunked:
		h.st = stChunkSize
	case p.cl > 0:
		h.st = stBody
		h.remain = p.cl
		h.hint = p.cl
	default:
		c.finish(h, false)
	}
	return true
}

// responseHead starts a response whose header block was parsed: it pairs
// it with its request and picks how its body is delimited.
func (c *conn) responseHead(h *half, p *head) bool {
	if p.status < 200 && p.status != 101 {
		// Interim: the final response is still to come.
		if p.status == 100 && len(c.pend) > 0 {
			c.pend[0].e.AddNote("100-continue")
		}
		h.st = stStart
		c.bad = 0
		return true
	}
	ex := c.pair(h)
	if ex == nil {
		c.stats.Orphans.Add(1)
	} else {
		ex.resp.Headers = p.headers
		ex.resp.Start, ex.resp.End = h.start, h.last
		h.msg = &ex.resp
		ex.e.Status = int32(p.status)
		ex.e.Failed = p.status >= 500
	}
	h.ex = ex
	h.enc = p.enc
	switch {
	case p.status == 101:
		handed := false
		if ex != nil {
			up := p.upgrade
			if up == "" {
				up = ex.req.Header("upgrade")
			}
			ex.e.AddNote("upgrade: " + up)
			handed = c.upgrade(ex, up)
		}
		c.finish(h, false)
		c.handOver()
		if handed {
			h.st = stIgnore // the rest of this segment goes to c.next
		}
	case ex != nil && ex.connect && p.status/100 == 2:
		ex.e.AddNote("tunnel")
		c.finish(h, false)
		c.handOver()
	case (ex != nil && ex.head) || p.status == 204 || p.status == 304:
		c.finish(h, false)
	case p.te == teChunked:
		h.st = stChunkSize
	case p.te == teOther:
		h.st = stClose
	case p.cl > 0:
		h.st = stBody
		h.remain = p.cl
		h.hint = p.cl
	case p.cl == 0:
		c.finish(h, false)
	default:
		h.st = stClose
	}
	return true
}

// addBody counts body bytes and keeps them up to the limit.
func (c *conn) addBody(h *half, p []byte) {
	m := h.msg
	if m == nil {
		return
	}
	m.BodyBytes += int64(len(p))
	if h.nokeep {
		return
	}
	lim := c.cfg.MaxBodyBytes
	if room := lim - len(m.Body); len(p) > room {
		p = p[:room]
		m.Truncated = true
		h.nokeep = true
	}
	if len(p) == 0 {
		return
	}
	if m.Body == nil && int64(len(p)) >= h.hint {
		// The whole (kept) body at once: one copy, no zeroing.
		m.Body = append([]byte(nil), p...)
		return
	}
	if need := len(m.Body) + len(p); need > cap(m.Body) {
		n := max(2*cap(m.Body), len(m.Body)+int(min(h.hint, int64(lim))), need, 512)
		nb := make([]byte, len(m.Body), min(n, lim))
		copy(nb, m.Body)
		m.Body = nb
	}
	m.Body = append(m.Body, p...)
}

// chunkedSize adds up the sizes of the chunks whose size lines are in b,
// the start of a chunked body: a hint for the size of the body.
func chunkedSize(b []byte) int64 {
	var total int64
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		n, ok := parseChunkSize(b[:i])
		if !ok || n == 0 || n > int64(len(b)) {
			total += n
			break
		}
		total += n
		b = b[min(int64(len(b)), int64(i+1)+n+2):]
	}
	return total
}

// chunkSize reads a chunk-size line.
func (c *conn) chunkSize(h *half, dir tcp.Dir, b []byte, t time.Time) []byte {
	var line, rest []byte
	if len(h.buf) == 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(b) > maxChunkLine {
				c.malformed(h, nil, chunkNote(h))
				return b[1:]
			}
			h.buf = append(h.buf, b...)
			return nil
		}
		line, rest = b[:i], b[i+1:]
	} else {
		old := len(h.buf)
		take := min(len(b), max(maxChunkLine+1-old, 0))
		h.buf = append(h.buf, b[:take]...)
		i := bytes.IndexByte(h.buf[old:], '\n')
		if i < 0 {
			if len(h.buf) <= maxChunkLine {
				return b[take:]
			}
			unit := h.buf
			c.malformed(h, nil, chunkNote(h))
			c.reinject(h, dir, unit, t)
			return b[take:]
		}
		line, rest = h.buf[:old+i], b[i+1:]
		h.buf = h.buf[:0]
	}
	n, ok := parseChunkSize(line)
	if !ok || len(line) > maxChunkLine {
		// Resume just past the line's first byte.
		if len(line) == 0 || &line[0] == &b[0] {
			c.malformed(h, nil, chunkNote(h))
			return b[1:]
		}
		unit := append(append([]byte(nil), line[1:]...), '\n')
		c.malformed(h, nil, chunkNote(h))
		if !c.dead {
			c.feed(h, dir, unit, t)
		}
		return rest
	}
	if n == 0 {
		h.st = stTrailer
		h.scan = 0
		return rest
	}
	h.st = stChunkData
	h.remain = n
	return rest
}

func chunkNote(h *half) string {
	if h.req {
		return "malformed chunked request body"
	}
	return "malformed chunked response body"
}

// parseChunkSize parses "HEX [ext]" with an optional trailing CR.
func parseChunkSize(line []byte) (int64, bool) {
	line = trimCR(line)
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if n >= 1<<58 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, false
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	if i < len(line) && line[i] != ';' {
		return 0, false
	}
	return n, true
}

// chunkEnd reads the CRLF after chunk data.
func (c *conn) chunkEnd(h *half, dir tcp.Dir, b []byte, t time.Time) []byte {
	switch {
	case b[0] == '\n':
		h.cr = false
		h.st = stChunkSize
		return b[1:]
	case b[0] == '\r' && !h.cr:
		h.cr = true
		return b[1:]
	}
	c.malformed(h, nil, chunkNote(h))
	return b
}

// trailer reads the trailer block after the last chunk.
func (c *conn) trailer(h *half, dir tcp.Dir, b []byte, t time.Time) []byte {
	lim := c.cfg.MaxHeaderBytes
	var block, rest []byte
	if len(h.buf) == 0 {
		end, resume := blankLineEnd(b, 0)
		if end < 0 || end > lim {
			if end > lim || len(b) > lim {
				c.malformed(h, nil, chunkNote(h))
				return b[1:]
			}
			h.buf = append(h.buf, b...)
			h.scan = resume
			return nil
		}
		block, rest = b[:end], b[end:]
	} else {
		old := len(h.buf)
		take := min(len(b), max(lim+1-old, 0))
		h.buf = append(h.buf, b[:take]...)
		end, resume := blankLineEnd(h.buf, h.scan)
		if end < 0 || end > lim {
			h.scan = resume
			if end < 0 && len(h.buf) <= lim {
				return b[take:]
			}
			unit := h.buf
			c.malformed(h, nil, chunkNote(h))
			c.reinject(h, dir, unit, t)
			return b[take:]
		}
		block, rest = h.buf[:end], b[end-old:]
	}
	if len(block) > 2 || (len(block) == 2 && block[0] != '\r') {
		fs, _, _, ok := scanBlock(block, false, c.fields[:0])
		c.keepFields(fs)
		var hs []entry.Header
		if ok {
			hs, ok = buildHeaders(string(block), fs)
		}
		if !ok {
			c.malformed(h, nil, chunkNote(h))
			return rest
		}
		if h.msg != nil {
			h.msg.Trailers = hs
		}
	}
	h.buf = h.buf[:0]
	c.finish(h, false)
	return rest
}
