package http1

import (
	"bytes"
	"time"

	"github.com/podwire/podwire/agent/dissect/sniff"
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

// detectMaxTarget is the longest request target Detect waits for.
const detectMaxTarget = 8 << 10

// Detect reports whether b, the first bytes of one direction, starts an
// HTTP/1.x request line (with a known method) or status line. It does not
// allocate.
func Detect(b []byte) Verdict {
	if len(b) == 0 {
		return NeedMore
	}
	r := detectStatus(b)
	if r == Yes {
		return Yes
	}
	q := detectRequest(b)
	if q == Yes {
		return Yes
	}
	if r == NeedMore || q == NeedMore {
		return NeedMore
	}
	return No
}

func detectStatus(b []byte) Verdict {
	const v = "HTTP/1."
	for i := 0; i < len(v); i++ {
		if i == len(b) {
			return NeedMore
		}
		if b[i] != v[i] {
			return No
		}
	}
	for i := 7; i < 13; i++ {
		if i == len(b) {
			return NeedMore
		}
		c := b[i]
		ok := false
		switch i {
		case 7, 10, 11:
			ok = c >= '0' && c <= '9'
		case 8:
			ok = c == ' '
		case 9:
			ok = c >= '1' && c <= '5'
		case 12:
			ok = c == ' ' || c == '\r' || c == '\n'
		}
		if !ok {
			return No
		}
	}
	return Yes
}

func detectRequest(b []byte) Verdict {
	k := 0
	for k < len(b) && k < 12 && b[k] >= 'A' && b[k] <= 'Z' {
		k++
	}
	if k == len(b) {
		if knownMethodPrefix(b) {
			return NeedMore
		}
		return No
	}
	if b[k] != ' ' || !knownMethod(b[:k]) {
		return No
	}
	i := k + 1
	lim := min(len(b), i+detectMaxTarget)
	j := bytes.IndexByte(b[i:lim], ' ')
	if j < 0 {
		if bytes.IndexByte(b[i:lim], '\n') >= 0 || lim < len(b) || lim == i+detectMaxTarget {
			return No
		}
		return NeedMore
	}
	if j == 0 || bytes.IndexByte(b[i:i+j], '\n') >= 0 {
		return No
	}
	i += j + 1
	const v = "HTTP/1."
	for n := 0; n < len(v)+2; n++ {
		if i+n == len(b) {
			return NeedMore
		}
		c := b[i+n]
		switch {
		case n < len(v):
			if c != v[n] {
				return No
			}
		case n == len(v):
			if c < '0' || c > '9' {
				return No
			}
		default:
			if c == '\n' {
				return Yes
			}
			if c != '\r' {
				return No
			}
			if i+n+1 == len(b) {
				return NeedMore
			}
			if b[i+n+1] == '\n' {
				return Yes
			}
			return No
		}
	}
	return No
}

var httpPrefix = []byte("HTTP/1.")

// findStart returns the offset of the first request line (when wantReq)
// or status line (when wantResp) in w, and which one it is; -1 if none.
// A request line counts only with its line end; a status line from
// "HTTP/1.x NNN" and the byte after.
func findStart(w []byte, wantReq, wantResp bool) (int, bool) {
	off := 0
	for off < len(w) {
		i := bytes.Index(w[off:], httpPrefix)
		if i < 0 {
			return -1, false
		}
		i += off
		if wantResp && statusAt(w, i) {
			return i, false
		}
		if wantReq {
			if p := requestAt(w, i); p >= 0 {
				return p, true
			}
		}
		off = i + 1
	}
	return -1, false
}

// statusAt reports whether w[i:] starts "HTTP/1.x NNN" followed by SP or
// a line end.
func statusAt(w []byte, i int) bool {
	if i+13 > len(w) {
		return false
	}
	d := func(c byte) bool { return c >= '0' && c <= '9' }
	s := w[i:]
	return d(s[7]) && s[8] == ' ' && s[9] >= '1' && s[9] <= '5' && d(s[10]) && d(s[11]) &&
		(s[12] == ' ' || s[12] == '\r' || s[12] == '\n')
}

// requestAt finds the start of the request line whose version is at
// w[i:], or -1: "METHOD SP target SP HTTP/1.x [CR] LF" with a known method.
// The method may follow any bytes (the end of a previous body).
func requestAt(w []byte, i int) int {
	if i < 4 || i+9 > len(w) || w[i-1] != ' ' || w[i+7] < '0' || w[i+7] > '9' {
		return -1
	}
	switch w[i+8] {
	case '\n':
	case '\r':
		if i+10 > len(w) || w[i+9] != '\n' {
			return -1
		}
	default:
		return -1
	}
	sp := i - 1
	lo := max(0, sp-syncKeep)
	j := bytes.LastIndexByte(w[lo:sp], ' ')
	if j < 0 {
		return -1
	}
	j += lo
	if j+1 == sp {
		return -1
	}
	for _, c := range w[j+1 : sp] {
		if c < '!' || c == 0x7f {
			return -1
		}
	}
	k := j
	for k > 0 && j-k < 12 && w[k-1] >= 'A' && w[k-1] <= 'Z' {
		k--
	}
	for s := k; s < j; s++ {
		if knownMethod(w[s:j]) {
			return s
		}
	}
	return -1
}

// sync looks for the next message start. It keeps the bytes after the
// last line end (at most syncKeep) between calls, so that a start line
// split across calls is still found.
func (c *conn) sync(h *half, dir tcp.Dir, b []byte, t time.Time) []byte {
	wantReq, wantResp := true, true
	if c.roleKnown {
		wantReq, wantResp = h.req, !h.req
	}
	if old := len(h.buf); old > 0 {
		n := min(len(b), syncKeep)
		h.buf = append(h.buf, b[:n]...)
		p, isReq := findStart(h.buf, wantReq, wantResp)
		if p >= 0 && p < old {
			// The message starts in the kept tail.
			h.dropped += int64(p)
			c.synced(h, dir, isReq)
			copy(h.buf, h.buf[p:old])
			h.buf = h.buf[:old-p]
			h.scan = 0
			h.st = stHeader
			// The start line began in an earlier call; its time is not
			// kept, and the time it completed is never too early to
			// pair a response by.
			h.start = t
			return b
		}
		if p < 0 && n == len(b) {
			start := tailStart(h.buf)
			h.dropped += int64(start)
			h.buf = h.buf[:copy(h.buf, h.buf[start:])]
			return nil
		}
		h.dropped += int64(old)
		h.buf = h.buf[:0]
	}
	p, isReq := findStart(b, wantReq, wantResp)
	if p >= 0 {
		h.dropped += int64(p)
		c.synced(h, dir, isReq)
		h.st = stStart
		return b[p:]
	}
	start := tailStart(b)
	h.dropped += int64(start)
	h.buf = append(h.buf[:0], b[start:]...)
	return nil
}

// tailStart is where the bytes of w that a start line found later may
// begin in start: after the last line end, at most syncKeep from the end.
func tailStart(w []byte) int {
	start := bytes.LastIndexByte(w, '\n') + 1
	if len(w)-start > syncKeep {
		start = len(w) - syncKeep
	}
	return start
}

// synced ends a resync at a message start of the given kind, which fixes
// the role when it was unknown.
func (c *conn) synced(h *half, dir tcp.Dir, isReq bool) {
	if h.dropped > 0 {
		c.stats.Resyncs.Add(1)
		c.stats.SkippedBytes.Add(uint64(h.dropped))
	}
	h.dropped = 0
	if !c.roleKnown {
		if isReq {
			c.setRole(dir)
		} else {
			c.setRole(dir ^ 1)
		}
	}
}
