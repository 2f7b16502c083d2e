package redis

import (
	"bytes"
	"math/bits"
	"time"
	"unsafe"

	"github.com/podwire/podwire/agent/tcp"
)

// keepBody bounds the body buffer a direction keeps between messages.
const keepBody = 8 << 10

// pstate is where a direction's parser stands.
type pstate uint8

const (
	stTop    pstate = iota // at a message boundary
	stLine                 // in a header line (partial line in line)
	stBulk                 // in a bulk payload: remain bytes left
	stBulkCR               // at the CR after a bulk payload
	stBulkLF               // at the LF after a bulk payload
	stSync                 // looking for the next message start
	stDead                 // nothing more is parsed
)

// What the current argument of a command is kept for.
const (
	argQuoted uint8 = iota // rendered quoted as it streams
	argName                // the command name
	argPath                // the argument shown as Path
	argHidden              // a secret: not rendered
)

// frame is an aggregate in progress.
type frame struct {
	kind        byte
	w           uint8 // digits of the element count, the width of the indices
	indent      int32
	total, left int64
}

// half is the parser of one direction, and the message it is building.
type half struct {
	dir    tcp.Dir
	st     pstate
	req    bool
	inline bool
	max    int
	line   []byte // partial header line, at most maxLine+2 bytes
	tail   []byte // cut-off candidate message start while syncing
	syncAt bool   // while syncing: the next byte may start a message
	btyp   byte   // type of the bulk in progress
	remain int64  // bulk payload bytes left
	stack  []frame
	mute   int // attribute frames open: nothing is rendered
	wire   int64
	start  time.Time
	last   time.Time
	lost   string // reply side: replies were lost, pair the next by time

	// The rendered message, at most max bytes.
	body       []byte
	full       bool
	trunc      bool
	nl         int // index after the last newline in body
	incomplete bool
	note       string

	// Command.
	nargs    int64
	argKind  uint8
	nameDone bool
	hidden   bool
	name     [maxName]byte
	nameLen  int
	nameOver bool
	cmd      *cmdInfo
	path     []byte
	pathOver bool

	// Reply.
	errReply  bool
	topKind   byte
	topN      int64
	capElems  bool
	capIdx    int
	elems     [4][]byte
	elemTrunc bool
	verbSkip  int
}

// reset clears the per-message state.
func (h *half) reset() {
	h.inline = false
	h.line = h.line[:0]
	h.remain = 0
	h.stack = h.stack[:0]
	h.mute = 0
	h.wire = 0
	if cap(h.body) > keepBody {
		h.body = nil
	}
	h.body = h.body[:0]
	h.full, h.trunc = false, false
	h.nl = 0
	h.incomplete = false
	h.note = ""
	h.nargs = 0
	h.argKind = argQuoted
	h.nameDone, h.hidden = false, false
	h.nameLen, h.nameOver = 0, false
	h.cmd = nil
	h.path = h.path[:0]
	h.pathOver = false
	h.errReply = false
	h.topKind, h.topN = 0, -1
	h.capElems, h.capIdx = false, -1
	for i := range h.elems {
		if cap(h.elems[i]) > 8<<10 {
			h.elems[i] = nil
		}
		h.elems[i] = h.elems[i][:0]
	}
	h.elemTrunc = false
	h.verbSkip = 0
}

func (h *half) markIncomplete(note string) {
	if !h.incomplete {
		h.incomplete = true
		h.note = note
	}
}

// reserve makes room for n more bytes of body, which the caller has
// checked fit under max. The buffer doubles (up to max), so a message costs
// a few allocations at most, and nothing once the buffer is warm.
func (h *half) reserve(n int) {
	if len(h.body)+n > cap(h.body) {
		h.grow(n)
	}
}

func (h *half) grow(n int) {
	need := len(h.body) + n
	// Powers of two: a buffer grown from an odd size (a reserve for a
	// whole array) would pass keepBody sooner and be dropped by every
	// reset.
	c := max(min(1<<bits.Len(uint(max(2*cap(h.body), need, 256)-1)), h.max), need)
	nb := make([]byte, len(h.body), c)
	copy(nb, h.body)
	h.body = nb
}

// The renderers write into the room reserve made and then reslice body
// onto itself (h.body = h.body[:n]): unlike append, that stores no pointer,
// so no write barrier runs while the GC is marking.

// put renders s, or nothing once the body is full.
func (h *half) put(s string) {
	if h.full || h.mute > 0 {
		return
	}
	n := len(h.body)
	if n+len(s) > h.max {
		h.full, h.trunc = true, true
		return
	}
	h.reserve(len(s))
	h.body = h.body[:n+len(s)]
	copy(h.body[n:], s)
}

// newline renders a line break and indent spaces, as many of them as fit.
func (h *half) newline(indent int32) {
	if h.full {
		return
	}
	if h.mute > 0 {
		h.nl = len(h.body)
		return
	}
	n := len(h.body)
	room := h.max - n
	if room < 1 {
		h.full, h.trunc = true, true
		return
	}
	k := min(1+max(int(indent), 0), room)
	h.reserve(k)
	h.body = h.body[:n+k]
	h.body[n] = '\n'
	for i := n + 1; i < n+k; i++ {
		h.body[i] = ' '
	}
	h.nl = n + 1
	if k < 1+int(indent) {
		h.full, h.trunc = true, true
	}
}

func (h *half) col() int32 { return int32(len(h.body) - h.nl) }

const hexDigits = "0123456789abcdef"

// escTab is what each byte takes escaped: 1 (itself), 2 (\n, \", ...) or 4
// (\xNN).
var escTab = func() (t [256]uint8) {
	for i := range t {
		t[i] = uint8(escLen(byte(i)))
	}
	return t
}()

// escSize is the length of b escaped.
func escSize(b []byte) int {
	n := 0
	for _, c := range b {
		n += int(escTab[c])
	}
	return n
}

// escInto writes b escaped into dst, which has room for it, and returns
// the bytes written. Runs of bytes shown as they are are copied at once.
func escInto(dst, b []byte) int {
	k := 0
	for len(b) > 0 {
		i := 0
		for i < len(b) && escTab[b[i]] == 1 {
			i++
		}
		if i < 16 {
			d := dst[k : k+i]
			for j := range d {
				d[j] = b[j]
			}
			k += i
		} else {
			k += copy(dst[k:], b[:i])
		}
		if i == len(b) {
			break
		}
		k += escByte(dst[k:], b[i])
		b = b[i+1:]
	}
	return k
}

// escByte writes one byte that needs escaping and returns its length.
func escByte(dst []byte, c byte) int {
	switch c {
	case '"', '\\':
		dst[0], dst[1] = '\\', c
		return 2
	case '\n':
		dst[0], dst[1] = '\\', 'n'
		return 2
	case '\r':
		dst[0], dst[1] = '\\', 'r'
		return 2
	case '\t':
		dst[0], dst[1] = '\\', 't'
		return 2
	}
	if c < 0x20 || c > 0x7e {
		dst[0], dst[1], dst[2], dst[3] = '\\', 'x', hexDigits[c>>4], hexDigits[c&15]
		return 4
	}
	dst[0] = c
	return 1
}

// putEsc renders b escaped as redis-cli does. When it does not fit, what
// does is rendered as if byte by byte, so the result does not depend on
// how b was cut.
func (h *half) putEsc(b []byte) {
	if h.full || h.mute > 0 || len(b) == 0 {
		return
	}
	n := len(h.body)
	room := h.max - n
	e := 4 * len(b)
	if len(b) > 32 || e > room {
		e = escSize(b)
	}
	if e <= room {
		h.reserve(e)
		k := escInto(h.body[n:n+e], b)
		h.body = h.body[:n+k]
		return
	}
	// Truncated: as much as fits, without cutting an escape.
	h.reserve(room)
	dst := h.body[n : n+room]
	k := 0
	for len(b) > 0 {
		i := 0
		for i < len(b) && escTab[b[i]] == 1 {
			i++
		}
		if i > room-k {
			k += copy(dst[k:], b[:room-k])
			break
		}
		k += copy(dst[k:], b[:i])
		if i == len(b) {
			break
		}
		if int(escTab[b[i]]) > room-k {
			break
		}
		k += escByte(dst[k:], b[i])
		b = b[i+1:]
	}
	h.body = h.body[:n+k]
	h.full, h.trunc = true, true
}

func escLen(c byte) int {
	switch {
	case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
		return 2
	case c < 0x20 || c > 0x7e:
		return 4
	}
	return 1
}

// plain says whether b can be shown without quotes.
func plain(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > 0x7e || c == '"' || c == '\\' || c == '\'' {
			return false
		}
	}
	return true
}

func (h *half) putQuoted(b []byte, over bool) {
	h.put(`"`)
	h.putEsc(b)
	if over {
		h.put("...")
	}
	h.put(`"`)
}

// putIndex renders the index i right-aligned in w digits, then mark and a
// space ("  7) "), all or nothing.
func (h *half) putIndex(i int64, w int, mark byte) {
	if h.full || h.mute > 0 {
		return
	}
	k := max(w, digits(i)) + 2
	n := len(h.body)
	if n+k > h.max {
		h.full, h.trunc = true, true
		return
	}
	h.reserve(k)
	h.body = h.body[:n+k]
	putNum(h.body[n:n+k-2], i)
	h.body[n+k-2], h.body[n+k-1] = mark, ' '
}

// putNum writes v (>= 0) right-aligned in dst, spaces before it.
func putNum(dst []byte, v int64) {
	j := len(dst) - 1
	for ; j >= 0; j-- {
		dst[j] = byte('0' + v%10)
		if v /= 10; v == 0 {
			break
		}
	}
	for j--; j >= 0; j-- {
		dst[j] = ' '
	}
}

func digits(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// parseInt reads a RESP integer.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// feed runs b through a direction's parser.
func (c *conn) feed(h *half, b []byte, t time.Time) {
	for len(b) > 0 && !c.dead {
		switch h.st {
		case stTop:
			if h.req {
				i := 0
				for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
					i++
				}
				if b = b[i:]; len(b) == 0 {
					return
				}
			}
			h.reset()
			h.start = t
			h.st = stLine
			h.inline = h.req && b[0] != '*'
		case stLine:
			if b[0] == '$' && len(h.line) == 0 && !h.inline {
				if n := c.fastBulks(h, b); n > 0 {
					b = b[n:]
					continue
				}
			}
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if len(h.line)+len(b) > maxLine+2 {
					h.wire += int64(len(b))
					b = nil
					c.malformed(h)
					continue
				}
				h.line = append(h.line, b...)
				h.wire += int64(len(b))
				return
			}
			ln := b[:i+1]
			h.wire += int64(i + 1)
			b = b[i+1:]
			if len(h.line) > 0 {
				if len(h.line)+len(ln) > maxLine+2 {
					c.malformed(h)
					continue
				}
				h.line = append(h.line, ln...)
				ln = h.line
			}
			ok := c.onLine(h, ln)
			h.line = h.line[:0]
			if !ok {
				c.malformed(h)
			}
		case stBulk:
			n := min(int64(len(b)), h.remain)
			c.bulkData(h, b[:n])
			h.remain -= n
			h.wire += n
			b = b[n:]
			if h.remain == 0 {
				h.st = stBulkCR
			}
		case stBulkCR, stBulkLF:
			want := byte('\r')
			if h.st == stBulkLF {
				want = '\n'
			}
			if b[0] != want {
				c.malformed(h)
				continue
			}
			b = b[1:]
			h.wire++
			if h.st == stBulkCR {
				h.st = stBulkLF
			} else {
				c.bulkEnd(h)
			}
		case stSync:
			b = c.sync(h, b, t)
		default:
			return
		}
	}
}

// fastBulks parses the run of whole bulk strings ("$3\r\nxxx\r\n") at
// the start of b, the bulk of most commands and replies, in one step each
// instead of a header line, the payload and its CRLF one state at a time;
// it returns the bytes it consumed. It stops (leaving the rest to the
// general path) at anything else: another type, a bulk cut by the end of
// b, a header or trailer that is not plain digits and CRLF, an element the
// general path must see (muted, captured for pub/sub).
func (c *conn) fastBulks(h *half, b []byte) int {
	p := 0
	for p < len(b) && b[p] == '$' && h.st == stLine && !c.dead {
		if !h.req && !h.full && h.mute == 0 && len(h.stack) > 0 {
			if f := &h.stack[len(h.stack)-1]; f.left > 1 && f.total > f.left && f.kind != '%' && f.kind != '|' &&
				(len(h.stack) > 1 || !h.capElems || f.total-f.left >= 4) {
				if n := h.fastElems(f, b[p:]); n > 0 {
					p += n
					continue
				}
			}
		}
		v, end, ok := wholeBulk(b, p)
		if !ok {
			break
		}
		wire := int64(end + 2 - p)
		if h.req {
			if len(h.stack) == 0 {
				break
			}
			h.wire += wire
			c.argStart(h)
			if end > v {
				c.bulkData(h, b[v:end])
			}
			c.bulkEnd(h)
		} else if !c.fastBulk(h, b[v:end], wire) {
			break
		}
		p = end + 2
	}
	return p
}

// wholeBulk reads the bulk string "$<len>\r\n<value>\r\n" whose '$' is
// at b[p] when all of it is in b: the value is b[v:end], and the string
// ends at end+2. A length of more than 10 digits, a missing CRLF or a
// string cut by the end of b gives ok false.
func wholeBulk(b []byte, p int) (v, end int, ok bool) {
	q, l := p+1, 0
	for q < len(b) && q-p <= 10 && '0' <= b[q] && b[q] <= '9' {
		l = l*10 + int(b[q]-'0')
		q++
	}
	if q == p+1 || q+1 >= len(b) || b[q] != '\r' || b[q+1] != '\n' {
		return 0, 0, false
	}
	v = q + 2
	end = v + l
	if end+2 > len(b) || end < v || b[end] != '\r' || b[end+1] != '\n' {
		return 0, 0, false
	}
	return v, end, true
}

// fastElems renders the run of whole bulk strings at the start of b that
// are elements of the array, set or push f, after its first and before its
// last (which take the general way in and out of the aggregate), and
// returns the bytes it consumed. The caller has checked that none is
// captured or muted and that the body is not full; it stops at the first
// element that would not fit under max. Each element is rendered as
// beginValue, put and putEsc would: "\n", the indent, the index
// right-aligned (counted up in place instead of formatted each time), the
// mark and the quoted value.
func (h *half) fastElems(f *frame, b []byte) int {
	w, indent := int(f.w), max(int(f.indent), 0)
	if w > 10 {
		return 0
	}
	mark := byte(')')
	if f.kind == '~' {
		mark = '~'
	}
	var lab [10]byte
	num := f.total - f.left // the index shown by the previous element
	putNum(lab[:w], num)
	body := h.body
	n, nl := len(body), h.nl
	var wire int64
	p := 0
	for f.left > 1 && p < len(b) && b[p] == '$' {
		v, end, ok := wholeBulk(b, p)
		if !ok {
			break
		}
		l := end - v
		val := b[v:end]
		ev := 4 * l
		if l > 32 {
			ev = escSize(val)
		}
		need := 1 + indent + w + 4 + ev
		if n+need > h.max {
			break
		}
		if n+need > cap(body) {
			h.body = body[:n]
			h.reserve(need)
			body = h.body
		}
		dst := body[n : n+need]
		dst[0] = '\n'
		k := 1
		for ; k <= indent; k++ {
			dst[k] = ' '
		}
		for i := w - 1; i >= 0; i-- {
			if c := lab[i]; c == '9' {
				lab[i] = '0'
				continue
			} else if c == ' ' {
				lab[i] = '1'
			} else {
				lab[i] = c + 1
			}
			break
		}
		k += copy(dst[k:k+w], lab[:w])
		dst[k], dst[k+1], dst[k+2] = mark, ' ', '"'
		k += 3
		if l <= 32 {
			for _, c := range val {
				if escTab[c] == 1 {
					dst[k] = c
					k++
				} else {
					k += escByte(dst[k:], c)
				}
			}
		} else {
			k += escInto(dst[k:], val)
		}
		dst[k] = '"'
		nl = n + 1
		n += k + 1
		wire += int64(end + 2 - p)
		f.left--
		p = end + 2
	}
	h.body = body[:n]
	h.nl = nl
	h.wire += wire
	if p > 0 {
		h.capIdx = -1
		h.btyp = '$'
	}
	return p
}

// fastBulk is a whole bulk string v of a reply, an element of the
// aggregate in progress or the whole reply: it does what onLine, bulkData
// and bulkEnd would. It does nothing and reports false when the element
// needs the general path.
func (c *conn) fastBulk(h *half, v []byte, wire int64) bool {
	if h.mute > 0 {
		return false
	}
	var f *frame
	var idx int64
	if d := len(h.stack); d > 0 {
		f = &h.stack[d-1]
		idx = f.total - f.left
		if d == 1 && h.capElems && idx < 4 {
			return false
		}
	}
	h.capIdx = -1
	h.btyp = '$'
	h.wire += wire
	if !h.full && !h.renderBulk(f, idx, v) {
		// Near the limit: render it step by step, to cut it where the
		// general path would.
		c.beginValue(h)
		h.put(`"`)
		h.putEsc(v)
		h.put(`"`)
	}
	if f != nil && f.left > 1 {
		f.left--
		return true
	}
	c.endValue(h)
	return true
}

// renderBulk renders element idx of f (nil: a reply on its own), the bulk
// string v, with its prefix, as beginValue, put and putEsc would, when it
// all fits under max; otherwise it renders nothing and reports false.
func (h *half) renderBulk(f *frame, idx int64, v []byte) bool {
	ev := 4 * len(v)
	if len(v) > 32 {
		ev = escSize(v)
	}
	need := ev + 2
	var mark byte
	indent := -1
	num := idx + 1
	if f != nil {
		mark = ')'
		switch f.kind {
		case '%':
			if idx%2 == 1 {
				mark = 0 // " => " and the value
				need += 4
				break
			}
			idx /= 2
			num = idx + 1
			mark = '#'
		case '~':
			mark = '~'
		}
		if mark != 0 {
			if idx > 0 {
				indent = max(int(f.indent), 0)
				need += 1 + indent
			}
			need += max(int(f.w), digits(num)) + 2
		}
	}
	n := len(h.body)
	if n+need > h.max {
		return false
	}
	h.reserve(need)
	dst := h.body[n : n+need]
	k := 0
	if f != nil {
		if mark == 0 {
			k = copy(dst, " => ")
		} else {
			if indent >= 0 {
				dst[0] = '\n'
				for i := 1; i <= indent; i++ {
					dst[i] = ' '
				}
				k = 1 + indent
				h.nl = n + 1
			}
			w := max(int(f.w), digits(num))
			putNum(dst[k:k+w], num)
			k += w
			dst[k], dst[k+1] = mark, ' '
			k += 2
		}
	}
	dst[k] = '"'
	k++
	k += escInto(dst[k:], v)
	dst[k] = '"'
	h.body = h.body[:n+k+1]
	return true
}

// onLine handles one whole line (with its LF); false means malformed.
func (c *conn) onLine(h *half, ln []byte) bool {
	if h.inline {
		return c.inlineCmd(h, ln)
	}
	n := len(ln)
	if n < 3 || ln[n-2] != '\r' {
		return false
	}
	typ, arg := ln[0], ln[1:n-2]
	if h.req {
		if len(h.stack) == 0 {
			cnt, ok := parseInt(arg)
			if typ != '*' || !ok || cnt < 1 {
				return false
			}
			h.nargs = cnt
			h.topKind, h.topN = '*', cnt
			h.stack = append(h.stack, frame{kind: '*', total: cnt, left: cnt})
			return true
		}
		l, ok := parseInt(arg)
		if typ != '$' || !ok || l < 0 || l > 1<<32 {
			return false
		}
		c.argStart(h)
		h.remain = l
		h.st = stBulk
		if l == 0 {
			h.st = stBulkCR
		}
		return true
	}
	if typ != '|' {
		c.beginValue(h)
	}
	capture := h.capIdx >= 0
	switch typ {
	case '+':
		h.putEsc(arg)
	case '-':
		if len(h.stack) == 0 {
			h.errReply = true
		}
		h.put("(error) ")
		h.putEsc(arg)
	case ':':
		if _, ok := parseInt(arg); !ok {
			return false
		}
		h.put("(integer) ")
		h.putEsc(arg)
	case ',':
		if len(arg) == 0 || !printable(arg) {
			return false
		}
		h.put("(double) ")
		h.putEsc(arg)
	case '(':
		if _, ok := parseInt(arg); !ok && (len(arg) == 0 || !printable(arg)) {
			return false
		}
		h.put("(big number) ")
		h.putEsc(arg)
	case '#':
		switch string(arg) {
		case "t":
			h.put("(true)")
		case "f":
			h.put("(false)")
		default:
			return false
		}
	case '_':
		if len(arg) != 0 {
			return false
		}
		h.put("(nil)")
		capture = false
	case '$', '!', '=':
		l, ok := parseInt(arg)
		if !ok || l < -1 || l > 1<<32 || (l == -1 && typ != '$') || (typ == '=' && l < 4) {
			return false
		}
		if l == -1 {
			h.put("(nil)")
			break
		}
		h.btyp = typ
		if typ == '!' {
			if len(h.stack) == 0 {
				h.errReply = true
			}
			h.put("(error) ")
		} else {
			h.put(`"`)
		}
		if typ == '=' {
			h.verbSkip = 4
		}
		h.remain = l
		h.st = stBulk
		if l == 0 {
			h.st = stBulkCR
		}
		return true
	case '*', '%', '~', '>', '|':
		cnt, ok := parseInt(arg)
		if !ok || cnt < -1 || cnt > 1<<32 || (cnt == -1 && typ != '*') {
			return false
		}
		if cnt == -1 {
			h.put("(nil)")
			break
		}
		if len(h.stack) >= c.cfg.MaxDepth {
			return false
		}
		elems := cnt
		if typ == '%' || typ == '|' {
			elems *= 2
		}
		if len(h.stack) == 0 && typ != '|' && h.mute == 0 {
			h.topKind, h.topN = typ, cnt
			h.capElems = (typ == '>' && cnt >= 1) || (typ == '*' && cnt >= 2 && cnt <= 4)
			if !h.full {
				// Each element takes at least its index, mark, space,
				// two characters and a line break: room for that at once
				// spares a large reply most steps of growing. Up to what
				// reset keeps, so that a header alone cannot make a
				// connection hold more than a message would.
				h.reserve(min(h.max-len(h.body), keepBody, int(min(elems, keepBody))*(digits(cnt)+5)))
			}
		}
		if typ == '|' {
			h.mute++
		}
		if elems == 0 {
			switch typ {
			case '|':
				h.mute--
				return true
			case '%':
				h.put("(empty map)")
			case '~':
				h.put("(empty set)")
			default:
				h.put("(empty array)")
			}
			break
		}
		h.stack = append(h.stack, frame{kind: typ, w: uint8(digits(cnt)), total: elems, left: elems, indent: h.col()})
		return true
	default:
		return false
	}
	if capture {
		h.capture(arg)
	}
	c.endValue(h)
	return true
}

// beginValue renders the prefix of an element of the aggregate in
// progress and decides whether the element is captured.
func (c *conn) beginValue(h *half) {
	h.capIdx = -1
	if h.mute > 0 || len(h.stack) == 0 {
		return
	}
	f := &h.stack[len(h.stack)-1]
	idx := f.total - f.left
	if len(h.stack) == 1 && h.capElems && idx < 4 {
		if idx == 1 && !pushWord(h.elems[0]) {
			h.capElems = false
		} else {
			h.capIdx = int(idx)
		}
	}
	mark := byte(')')
	switch f.kind {
	case '%':
		if idx%2 == 1 {
			h.put(" => ")
			return
		}
		idx /= 2
		mark = '#'
	case '~':
		mark = '~'
	}
	if idx > 0 {
		h.newline(f.indent)
	}
	h.putIndex(idx+1, int(f.w), mark)
}

func pushWord(b []byte) bool {
	switch string(b) {
	case "message", "pmessage", "smessage":
		return true
	}
	return subKinds[string(b)]
}

// capture keeps part of a top-level element for pub/sub.
func (h *half) capture(b []byte) {
	i := h.capIdx
	limit := maxCapture
	if i == 0 {
		limit = 16
	} else if i >= 2 {
		limit = h.max
	}
	room := limit - len(h.elems[i])
	if len(b) > room {
		b = b[:max(room, 0)]
		h.elemTrunc = true
	}
	h.elems[i] = append(h.elems[i], b...)
}

// endValue closes a value and every aggregate it completes.
func (c *conn) endValue(h *half) {
	h.capIdx = -1
	for {
		if len(h.stack) == 0 {
			c.complete(h)
			return
		}
		f := &h.stack[len(h.stack)-1]
		if f.left--; f.left > 0 {
			return
		}
		kind := f.kind
		h.stack = h.stack[:len(h.stack)-1]
		if kind == '|' {
			// The value it annotates is still to come.
			h.mute--
			return
		}
	}
}

func (c *conn) bulkData(h *half, b []byte) {
	if h.req {
		switch h.argKind {
		case argName:
			if h.nameLen+len(b) > maxName {
				h.nameOver = true
				b = b[:maxName-h.nameLen]
			}
			h.nameLen += copy(h.name[h.nameLen:], b)
		case argPath:
			if room := maxCapture - len(h.path); len(b) > room {
				h.pathOver = true
				b = b[:room]
			}
			h.path = append(h.path, b...)
		case argQuoted:
			h.putEsc(b)
		}
		return
	}
	if h.verbSkip > 0 {
		k := min(h.verbSkip, len(b))
		b = b[k:]
		h.verbSkip -= k
	}
	if h.mute == 0 {
		h.putEsc(b)
	}
	if h.capIdx >= 0 {
		h.capture(b)
	}
}

func (c *conn) bulkEnd(h *half) {
	h.st = stLine
	if !h.req {
		if h.btyp != '!' {
			h.put(`"`)
		}
		c.endValue(h)
		return
	}
	switch h.argKind {
	case argName:
		h.nameDone = true
		if !h.nameOver {
			h.cmd = lookup(h.name[:h.nameLen])
		}
		if h.cmd != nil {
			h.put(h.cmd.name)
		} else {
			var up [maxName]byte
			n := copy(up[:], h.name[:h.nameLen])
			h.putEsc(upper(up[:n]))
		}
	case argPath:
		if plain(h.path) && !h.pathOver {
			h.put(unsafe.String(unsafe.SliceData(h.path), len(h.path)))
		} else {
			h.putQuoted(h.path, h.pathOver)
		}
	case argQuoted:
		h.put(`"`)
	}
	f := &h.stack[0]
	if f.left--; f.left == 0 {
		c.complete(h)
	}
}

// argStart sets up the rendering of the next argument of a command.
func (c *conn) argStart(h *half) {
	idx := h.nargs - h.stack[0].left
	if idx == 0 {
		h.argKind = argName
		return
	}
	cmd := h.cmd
	switch {
	case cmd != nil && cmd.redact && (idx >= 2 || cmd.name != "HELLO"):
		h.argKind = argHidden
		if !h.hidden {
			h.hidden = true
			h.put(" (redacted)")
		}
		return
	case cmd != nil && int64(cmd.key) == idx:
		h.argKind = argPath
	default:
		h.argKind = argQuoted
	}
	h.put(" ")
	if h.argKind == argQuoted {
		h.put(`"`)
	}
}

// inlineCmd handles an inline command line.
func (c *conn) inlineCmd(h *half, ln []byte) bool {
	ln = bytes.TrimRight(ln, "\r\n")
	fields := 0
	for len(ln) > 0 {
		ln = bytes.TrimLeft(ln, " \t")
		if len(ln) == 0 {
			break
		}
		i := bytes.IndexAny(ln, " \t")
		if i < 0 {
			i = len(ln)
		}
		tok := ln[:i]
		ln = ln[i:]
		if fields == 0 {
			if len(tok) > maxName {
				return false
			}
			for _, ch := range tok {
				if !nameByte(ch) {
					return false
				}
			}
			h.nameLen = copy(h.name[:], tok)
			h.nameDone = true
			h.cmd = lookup(tok)
			if h.cmd != nil {
				h.put(h.cmd.name)
			} else {
				var up [maxName]byte
				h.putEsc(upper(up[:copy(up[:], tok)]))
			}
		} else if cmd := h.cmd; cmd != nil && cmd.redact && (fields >= 2 || cmd.name != "HELLO") {
			if !h.hidden {
				h.hidden = true
				h.put(" (redacted)")
			}
		} else if cmd != nil && int(cmd.key) == fields {
			h.path = append(h.path[:0], tok[:min(len(tok), maxCapture)]...)
			h.put(" ")
			if plain(tok) {
				h.putEsc(tok)
			} else {
				h.putQuoted(tok, false)
			}
		} else {
			h.put(" ")
			h.putQuoted(tok, false)
		}
		fields++
	}
	if fields == 0 {
		// A blank line.
		h.st = stTop
		return true
	}
	h.nargs = int64(fields)
	c.complete(h)
	return true
}

// complete hands over a whole message.
func (c *conn) complete(h *half) {
	h.st = stTop
	c.bad = 0
	if h.req {
		c.command(h)
	} else {
		c.reply(h)
	}
}

// isPush says whether the reply in h is pushed by the server rather than
// answering a command.
func (c *conn) isPush(h *half) bool {
	if h.topKind == '>' {
		return true
	}
	if h.topKind != '*' || len(h.elems[0]) == 0 {
		return false
	}
	return (c.subscribed || c.pending() == 0 || h.lost != "") && pushWord(h.elems[0])
}

// sync looks for the next message start in b (after the tail kept from
// earlier calls) and returns the bytes from there, or nil.
func (c *conn) sync(h *half, b []byte, t time.Time) []byte {
	if len(h.tail) > 0 {
		var tmp [2 * syncKeep]byte
		n := copy(tmp[:], h.tail)
		tl := n
		n += copy(tmp[n:], b)
		data := tmp[:n]
		h.tail = h.tail[:0]
		for p := 0; p < tl; p++ {
			if p > 0 && data[p-1] != '\n' {
				continue
			}
			switch c.check(h, data[p:]) {
			case Yes:
				c.resume(h, data[p:])
				var rest [syncKeep]byte
				k := copy(rest[:], data[p:tl])
				c.feed(h, rest[:k], t)
				return b
			case NeedMore:
				if n-p <= syncKeep && n-tl == len(b) {
					h.tail = append(h.tail, data[p:]...)
					return nil
				}
			}
		}
		h.syncAt = data[tl-1] == '\n'
	}
	for p := 0; p < len(b); {
		if p > 0 || !h.syncAt {
			i := bytes.IndexByte(b[p:], '\n')
			if i < 0 {
				break
			}
			p += i + 1
			if p == len(b) {
				break
			}
		}
		switch c.check(h, b[p:]) {
		case Yes:
			c.resume(h, b[p:])
			return b[p:]
		case NeedMore:
			if len(b)-p <= syncKeep {
				h.tail = append(h.tail[:0], b[p:]...)
				h.syncAt = false
				return nil
			}
		}
		if p == 0 {
			h.syncAt = false
		}
	}
	h.syncAt = b[len(b)-1] == '\n'
	return nil
}

// resume ends a sync at a message start.
func (c *conn) resume(h *half, _ []byte) {
	if !c.roleKnown {
		c.setRole(h.dir)
		// The other direction now looks for replies.
		o := &c.h[h.dir^1]
		o.st = stSync
	}
	h.st = stTop
	h.syncAt = false
}

// check says whether b starts a message of the direction.
func (c *conn) check(h *half, b []byte) Verdict {
	if !c.roleKnown || h.req {
		if b[0] != '*' {
			return No
		}
		return Detect(b)
	}
	return checkReply(b)
}

// checkReply says whether b plausibly starts a reply.
func checkReply(b []byte) Verdict {
	i := bytes.IndexByte(b[:min(len(b), syncKeep)], '\n')
	if i < 0 {
		if len(b) < syncKeep {
			return NeedMore
		}
		return No
	}
	if i < 2 || b[i-1] != '\r' {
		return No
	}
	arg := b[1 : i-1]
	switch b[0] {
	case '+':
		if len(arg) > 0 && printable(arg) {
			return Yes
		}
	case '-':
		if len(arg) > 0 && arg[0] >= 'A' && arg[0] <= 'Z' && printable(arg) {
			return Yes
		}
	case ':', '$', '*', '%', '~', '>', '|', '!', '=', '(':
		if n, ok := parseInt(arg); ok && n >= -1 {
			return Yes
		}
	case '_':
		if len(arg) == 0 {
			return Yes
		}
	case '#':
		if string(arg) == "t" || string(arg) == "f" {
			return Yes
		}
	case ',':
		if len(arg) > 0 && printable(arg) {
			return Yes
		}
	}
	return No
}
