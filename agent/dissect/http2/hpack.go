package http2

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"
)

// The HPACK decoder (RFC 7541) is the package's own: it decodes a block
// field by field, so that a field it cannot decode (an index from before
// the capture began) costs that field only, and it decodes without
// allocating or copying what it need not. A decoded field refers to its
// strings where they are: in the static table, among the common strings,
// in the dynamic table (whose entries a block refers to stay put until the
// block is handled), or in the half's arena, the block's other literals,
// which become one string per header list. Only strings entering the
// dynamic table are allocated, once, and shared by every list that uses
// them.

// hfield is a header field of a table.
type hfield struct {
	name, value string
}

// Kinds of sref.
const (
	refNone   = iota // ""
	refStatic        // static table entry n
	refDyn           // dynamic table entry of sequence number n
	refCommon        // common[n]
	refArena         // the arena's bytes n to n+l
)

// sref says where a decoded string is; value picks a table entry's value.
type sref struct {
	n     uint64
	l     uint32
	kind  uint8
	value bool
}

// field is a decoded field of the header list.
type field struct {
	name, value sref
}

// staticTable is RFC 7541 Appendix A.
var staticTable = [...]hfield{
	{":authority", ""},
	{":method", "GET"},
	{":method", "POST"},
	{":path", "/"},
	{":path", "/index.html"},
	{":scheme", "http"},
	{":scheme", "https"},
	{":status", "200"},
	{":status", "204"},
	{":status", "206"},
	{":status", "304"},
	{":status", "400"},
	{":status", "404"},
	{":status", "500"},
	{"accept-charset", ""},
	{"accept-encoding", "gzip, deflate"},
	{"accept-language", ""},
	{"accept-ranges", ""},
	{"accept", ""},
	{"access-control-allow-origin", ""},
	{"age", ""},
	{"allow", ""},
	{"authorization", ""},
	{"cache-control", ""},
	{"content-disposition", ""},
	{"content-encoding", ""},
	{"content-language", ""},
	{"content-length", ""},
	{"content-location", ""},
	{"content-range", ""},
	{"content-type", ""},
	{"cookie", ""},
	{"date", ""},
	{"etag", ""},
	{"expect", ""},
	{"expires", ""},
	{"from", ""},
	{"host", ""},
	{"if-match", ""},
	{"if-modified-since", ""},
	{"if-none-match", ""},
	{"if-range", ""},
	{"if-unmodified-since", ""},
	{"last-modified", ""},
	{"link", ""},
	{"location", ""},
	{"max-forwards", ""},
	{"proxy-authenticate", ""},
	{"proxy-authorization", ""},
	{"range", ""},
	{"referer", ""},
	{"refresh", ""},
	{"retry-after", ""},
	{"server", ""},
	{"set-cookie", ""},
	{"strict-transport-security", ""},
	{"transfer-encoding", ""},
	{"user-agent", ""},
	{"vary", ""},
	{"via", ""},
	{"www-authenticate", ""},
}

// common are strings that often come as literals; decoded, they are
// replaced by these constants instead of being allocated.
var common = [...]string{
	"application/grpc", "application/grpc+proto", "application/grpc+json", "application/grpc-web",
	"application/json", "application/json; charset=utf-8", "application/x-protobuf", "application/protobuf",
	"application/octet-stream", "application/x-www-form-urlencoded", "text/plain", "text/plain; charset=utf-8",
	"text/html", "text/html; charset=utf-8",
	"grpc-status", "grpc-message", "grpc-encoding", "grpc-accept-encoding", "grpc-timeout",
	"grpc-status-details-bin", "grpc-previous-rpc-attempts",
	"te", "trailers", "gzip", "deflate", "identity", "identity,deflate,gzip", "br", "zstd",
	"x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-envoy-upstream-service-time",
	"x-envoy-expected-rq-timeout-ms", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "traceparent",
	"tracestate", "envoy", "nginx", "istio-envoy", "keep-alive", "no-cache", "no-store", "*/*",
	"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
	"100", "101", "201", "202", "301", "302", "307", "308", "401", "403", "405", "409", "429",
	"502", "503", "504",
	"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "http", "https",
}

// interned maps the common strings, and those of the static table, to
// their index in internTab.
var internTab, interned = func() ([]string, map[string]uint32) {
	var tab []string
	m := make(map[string]uint32, len(common)+2*len(staticTable))
	add := func(s string) {
		if _, ok := m[s]; !ok && s != "" {
			m[s] = uint32(len(tab))
			tab = append(tab, s)
		}
	}
	for _, s := range common {
		add(s)
	}
	for _, f := range staticTable {
		add(f.name)
		add(f.value)
	}
	return tab, m
}()

// internLower says which interned strings are lower-case.
var internLower = func() []bool {
	l := make([]bool, len(internTab))
	for i, s := range internTab {
		l[i] = strings.ToLower(s) == s
	}
	return l
}()

// knownLower says whether the name r refers to is known to be lower-case.
func (h *half) knownLower(r sref) bool {
	switch r.kind {
	case refStatic:
		return true
	case refCommon:
		return internLower[r.n]
	case refDyn:
		return h.dyn.entry(r.n).lower
	}
	return false
}

// isLower says whether s is ASCII without upper-case letters (which
// strings.ToLower leaves as it is).
func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// maxInterned is the longest string looked up among the interned ones.
const maxInterned = 40

// intern finds b among the interned strings.
func intern(b []byte) (sref, bool) {
	if len(b) == 0 {
		return sref{}, true
	}
	if len(b) > maxInterned {
		return sref{}, false
	}
	i, ok := interned[string(b)]
	return sref{kind: refCommon, n: uint64(i)}, ok
}

// Huffman decoding (RFC 7541 Appendix B) walks 8-bit tables: huffTab[n*256+b]
// is, for node n and the next 8 bits b, a leaf (huffLeaf, the bits of the
// code left at this level, and the symbol), another node, or 0 (no code).
const huffLeaf = 1 << 31

var huffTab = buildHuffman()

// buildHuffman builds the tables from the code of each symbol, taken from
// x/net's encoder: eight of a symbol take exactly its code length in
// bytes, and start with its code.
func buildHuffman() []uint32 {
	tab := make([]uint32, 256)
	for sym := range 256 {
		var eight [8]byte
		for i := range eight {
			eight[i] = byte(sym)
		}
		n := uint(hpack.HuffmanEncodeLength(string(eight[:])))
		enc := hpack.AppendHuffmanString(nil, string(eight[:]))
		code := binary.BigEndian.Uint32(enc) >> (32 - n)
		node := 0
		for n > 8 {
			n -= 8
			i := node*256 + int(uint8(code>>n))
			if tab[i] == 0 {
				tab[i] = uint32(len(tab) / 256)
				tab = append(tab, make([]uint32, 256)...)
			}
			node = int(tab[i])
		}
		shift := 8 - n
		start := int(uint8(code << shift))
		for i := start; i < start+1<<shift; i++ {
			tab[node*256+i] = huffLeaf | uint32(n)<<8 | uint32(sym)
		}
	}
	return tab
}

var (
	errHuffman   = errors.New("hpack: invalid Huffman-encoded data")
	errStrLen    = errors.New("hpack: string too long")
	errIndex     = errors.New("hpack: invalid index")
	errSizeLate  = errors.New("hpack: dynamic table size update after the first field")
	errSizeLarge = errors.New("hpack: dynamic table size update too large")
)

// appendHuffman decodes v onto dst; the decoded string may be at most max
// bytes (0: any).
func appendHuffman(dst, v []byte, max int) ([]byte, error) {
	tab := huffTab
	limit := len(dst) + max
	if max == 0 {
		limit = int(^uint(0) >> 1)
	}
	node := uint32(0)
	cur, cbits, sbits := uint(0), uint(0), uint(0)
	for _, b := range v {
		cur = cur<<8 | uint(b)
		cbits += 8
		sbits += 8
		for cbits >= 8 {
			e := tab[node*256+uint32(uint8(cur>>(cbits-8)))]
			switch {
			case e == 0:
				return dst, errHuffman
			case e&huffLeaf != 0:
				if len(dst) >= limit {
					return dst, errStrLen
				}
				dst = append(dst, byte(e))
				cbits -= uint(e>>8) & 0xff
				node = 0
				sbits = cbits
			default:
				node = e
				cbits -= 8
			}
		}
	}
	for cbits > 0 {
		e := tab[node*256+uint32(uint8(cur<<(8-cbits)))]
		if e == 0 {
			return dst, errHuffman
		}
		if e&huffLeaf == 0 || uint(e>>8)&0xff > cbits {
			break
		}
		if len(dst) >= limit {
			return dst, errStrLen
		}
		dst = append(dst, byte(e))
		cbits -= uint(e>>8) & 0xff
		node = 0
		sbits = cbits
	}
	if sbits > 7 {
		return dst, errHuffman // an incomplete code, or overlong padding
	}
	if mask := uint(1)<<cbits - 1; cur&mask != mask {
		return dst, errHuffman // padding is not a prefix of EOS
	}
	return dst, nil
}

// dynEntry is an entry of a dynamic table.
type dynEntry struct {
	hfield
	lower bool // the name is known to be lower-case
}

// dynTable is a dynamic table: a ring of entries, each with a sequence
// number, the newest last.
type dynTable struct {
	ents    []dynEntry // entry of sequence number q at q&(len-1); len a power of two, or 0
	first   uint64     // sequence number of the oldest entry
	next    uint64     // that the next entry gets
	pin     uint64     // while pinned, entries from pin on stay in ents, evicted or not
	pinned  bool
	size    uint32
	max     uint32 // current maximum size
	allowed uint32 // bound of max
}

func entrySize(f hfield) uint32 { return uint32(len(f.name) + len(f.value) + 32) }

// lookup is index i of the static and dynamic tables, as a reference to
// its name.
func (t *dynTable) lookup(i uint64) (sref, bool) {
	if i == 0 {
		return sref{}, false
	}
	if i <= uint64(len(staticTable)) {
		return sref{kind: refStatic, n: i - 1}, true
	}
	i -= uint64(len(staticTable))
	if i > t.next-t.first {
		return sref{}, false
	}
	return sref{kind: refDyn, n: t.next - i}, true
}

// entry is the entry of sequence number q, which is in the table or pinned.
func (t *dynTable) entry(q uint64) *dynEntry { return &t.ents[q&uint64(len(t.ents)-1)] }

// add adds f and returns its sequence number.
func (t *dynTable) add(f hfield) uint64 {
	keep := t.first
	if t.pinned {
		keep = t.pin
	}
	if t.next-keep >= uint64(len(t.ents)) {
		// A small table first; past that, room for as many entries as
		// the table's size allows (of 32 bytes and more each).
		size := 16
		if len(t.ents) > 0 {
			size = max(2*len(t.ents), roundPow2(int(t.max/32)))
		}
		t.resize(max(size, roundPow2(int(t.next-keep)+1)), keep)
	}
	q := t.next
	*t.entry(q) = dynEntry{f, isLower(f.name)}
	t.next++
	t.size += entrySize(f)
	t.evict()
	return q
}

func (t *dynTable) setMax(v uint32) {
	t.max = v
	t.evict()
}

// evict drops the oldest entries while the table is over its size (the
// newest too, when it alone is larger).
func (t *dynTable) evict() {
	for t.size > t.max && t.first < t.next {
		e := t.entry(t.first)
		t.size -= entrySize(e.hfield)
		if !t.pinned {
			*e = dynEntry{}
		}
		t.first++
	}
}

// pinAll keeps the entries now in the table where they are until unpin,
// evicted or not: a block's fields refer to them.
func (t *dynTable) pinAll() {
	t.pin, t.pinned = t.first, true
}

func (t *dynTable) unpin() {
	for q := t.pin; q < t.first; q++ {
		*t.entry(q) = dynEntry{}
	}
	t.pinned = false
	// A block that added many entries, evicted as it went, grew the
	// ring past what the table holds.
	if size := max(16, roundPow2(2*int(t.next-t.first))); len(t.ents) > max(256, size) {
		t.resize(size, t.first)
	}
}

// resize moves the entries from keep on to a ring of size entries.
func (t *dynTable) resize(size int, keep uint64) {
	ents := make([]dynEntry, size)
	for q := keep; q < t.next; q++ {
		ents[q&uint64(size-1)] = *t.entry(q)
	}
	t.ents = ents
}

// roundPow2 is the least power of two >= n (1 for n <= 1).
func roundPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// str is the string r refers to.
func (h *half) str(r sref) string {
	switch r.kind {
	case refStatic:
		if r.value {
			return staticTable[r.n].value
		}
		return staticTable[r.n].name
	case refDyn:
		e := h.dyn.entry(r.n)
		if r.value {
			return e.value
		}
		return e.name
	case refCommon:
		return internTab[r.n]
	case refArena:
		return h.astr[r.n : r.n+uint64(r.l)]
	}
	return ""
}

// blockDone decodes a finished header block, blk, and hands its fields on.
func (c *conn) blockDone(h *half, blk []byte, t time.Time) {
	h.inBlock = false
	h.fields = h.fields[:0]
	h.arena = h.arena[:0]
	h.listLen, h.over = 0, false
	h.dyn.pinAll()
	partial := h.blockLost
	if !h.blockLost {
		partial = c.decodeBlock(h, blk)
	} else {
		c.stats.HPACKErrors.Add(1)
	}
	if len(h.block) > 4096 {
		h.block = nil
	} else {
		h.block = h.block[:0]
	}
	if !h.blockPush {
		if len(h.arena) > 0 {
			h.astr = string(h.arena) // the list's literals, one string
		}
		c.headers(h, h.blockSid, h.fields, partial, h.blockEnd, t)
		h.astr = ""
	}
	h.dyn.unpin()
	if cap(h.arena) > 4096 {
		h.arena = nil
	}
}

// decodeBlock decodes the block one field at a time, so that a field it
// cannot decode (an index from before the capture began) costs that field
// only; the dynamic table stays aligned with the encoder's by a placeholder
// for each indexed literal that could not be decoded. It reports whether
// some fields were lost.
func (c *conn) decodeBlock(h *half, p []byte) (partial bool) {
	first := true // a table size update may come first
	for len(p) > 0 {
		n, ok := fieldLen(p)
		if !ok {
			c.stats.HPACKErrors.Add(1)
			return true
		}
		f := p[:n]
		p = p[n:]
		if c.decodeField(h, f, first) == nil {
			first = false
			continue
		}
		c.stats.HPACKErrors.Add(1)
		partial = true
		first = true
		if f[0]&0xc0 == 0x40 {
			// Literal with incremental indexing: add an entry in its place.
			first = c.placeholder(h, f)
		}
	}
	return partial || h.over
}

// placeholder adds an entry named "?" for the indexed literal f that could
// not be decoded, with f's value when that decodes, else empty. It reports
// whether a size update may follow (as after an error).
func (c *conn) placeholder(h *half, f []byte) bool {
	if v, ok := valueOf(f); ok {
		mark := len(h.arena)
		b, err := c.readString(h, v)
		h.arena = h.arena[:mark]
		if err == nil {
			h.dyn.add(hfield{"?", h.keepString(b)})
			return false
		}
	}
	h.dyn.add(hfield{"?", ""})
	return true
}

// readString decodes the string literal s (whole, as fieldLen checked) onto
// the arena and returns its bytes there.
func (c *conn) readString(h *half, s []byte) ([]byte, error) {
	l, n := varint(s, 7)
	if l > uint64(c.cfg.MaxHeaderListBytes) {
		return nil, errStrLen
	}
	mark := len(h.arena)
	lit := s[n : n+int(l)]
	if s[0]&0x80 == 0 {
		h.arena = append(h.arena, lit...)
		return h.arena[mark:], nil
	}
	var err error
	h.arena, err = appendHuffman(h.arena, lit, c.cfg.MaxHeaderListBytes)
	if err != nil {
		h.arena = h.arena[:mark]
		return nil, err
	}
	return h.arena[mark:], nil
}

// keepString is b as a string of its own (or a common one).
func (h *half) keepString(b []byte) string {
	if r, ok := intern(b); ok {
		return h.str(r)
	}
	return string(b)
}

// decodeField decodes one field representation, f, whole as fieldLen found
// it. On an error the dynamic table is as before.
func (c *conn) decodeField(h *half, f []byte, first bool) error {
	b := f[0]
	switch {
	case b&0x80 != 0:
		idx, _ := varint(f, 7)
		r, ok := h.dyn.lookup(idx)
		if !ok {
			return errIndex
		}
		v := r
		v.value = true
		var e *hfield
		if r.kind == refStatic {
			e = &staticTable[r.n]
		} else {
			e = &h.dyn.entry(r.n).hfield
		}
		_, err := c.field(h, r, v, len(e.name), len(e.value))
		return err
	case b&0xe0 == 0x20:
		if !first && h.dyn.size > 0 {
			return errSizeLate
		}
		size, _ := varint(f, 5)
		if size > uint64(h.dyn.allowed) {
			return errSizeLarge
		}
		h.dyn.setMax(uint32(size))
		return nil
	}
	prefix := uint(4)
	indexing := b&0xc0 == 0x40
	if indexing {
		prefix = 6
	}
	idx, n := varint(f, prefix)
	var nr sref
	if idx > 0 {
		var ok bool
		if nr, ok = h.dyn.lookup(idx); !ok {
			return errIndex
		}
	}
	mark := len(h.arena)
	var name []byte
	if idx == 0 {
		l, _ := stringLen(f[n:])
		var err error
		if name, err = c.readString(h, f[n:n+l]); err != nil {
			return err
		}
		n += l
		if !indexing {
			if r, ok := intern(name); ok {
				nr = r
				h.arena = h.arena[:mark]
			} else {
				nr = sref{kind: refArena, n: uint64(mark), l: uint32(len(name))}
			}
		}
	}
	vmark := len(h.arena)
	value, err := c.readString(h, f[n:])
	if err != nil {
		h.arena = h.arena[:mark]
		return err
	}
	if indexing {
		// The table keeps its own strings; the lists share them.
		var nv hfield
		ns, nok := h.str(nr), idx > 0
		if !nok {
			var r sref
			r, nok = intern(name)
			ns = h.str(r)
		}
		vr, vok := intern(value)
		switch {
		case nok && vok:
			nv = hfield{ns, h.str(vr)}
		case nok:
			nv = hfield{ns, string(value)}
		case vok:
			nv = hfield{string(name), h.str(vr)}
		default:
			s := string(h.arena[mark:])
			nv = hfield{s[:len(name)], s[len(name):]}
		}
		h.arena = h.arena[:mark]
		q := h.dyn.add(nv)
		_, err := c.field(h, sref{kind: refDyn, n: q}, sref{kind: refDyn, n: q, value: true}, len(nv.name), len(nv.value))
		return err
	}
	nl := len(name)
	if idx > 0 {
		nl = len(h.str(nr))
	}
	vr, ok := intern(value)
	if ok {
		h.arena = h.arena[:vmark]
	} else {
		vr = sref{kind: refArena, n: uint64(vmark), l: uint32(len(value))}
	}
	kept, err := c.field(h, nr, vr, nl, len(value))
	if !kept {
		h.arena = h.arena[:mark]
	}
	return err
}

// field adds a decoded field, its name and value nl and vl bytes long, to
// the list, unless the list is over its limit; it reports whether the
// field was kept.
func (c *conn) field(h *half, name, value sref, nl, vl int) (bool, error) {
	if max := c.cfg.MaxHeaderListBytes; nl > max || vl > max {
		return false, errStrLen
	}
	h.listLen += nl + vl + 32
	if h.listLen > c.cfg.MaxHeaderListBytes {
		h.over = true
		return false, nil
	}
	h.fields = append(h.fields, field{name, value})
	return true, nil
}

// varint reads an HPACK integer with an n-bit prefix; it returns the bytes
// used, 0 when p is short or the value overlong.
func varint(p []byte, n uint) (v uint64, used int) {
	if len(p) == 0 {
		return 0, 0
	}
	mask := uint64(1)<<n - 1
	v = uint64(p[0]) & mask
	if v < mask {
		return v, 1
	}
	var m uint
	for i := 1; i < len(p) && i < 6; i++ {
		b := p[i]
		v += uint64(b&0x7f) << m
		if b&0x80 == 0 {
			return v, i + 1
		}
		m += 7
	}
	return 0, 0
}

// stringLen is the length of the string literal at the start of p.
func stringLen(p []byte) (int, bool) {
	l, n := varint(p, 7)
	if n == 0 || l > uint64(len(p)-n) {
		return 0, false
	}
	return n + int(l), true
}

// fieldLen is the length of the field representation at the start of p.
func fieldLen(p []byte) (int, bool) {
	var prefix uint
	switch b := p[0]; {
	case b&0x80 != 0:
		_, n := varint(p, 7)
		return n, n > 0
	case b&0xe0 == 0x20:
		_, n := varint(p, 5)
		return n, n > 0
	case b&0xc0 == 0x40:
		prefix = 6
	default:
		prefix = 4
	}
	idx, n := varint(p, prefix)
	if n == 0 {
		return 0, false
	}
	if idx == 0 {
		l, ok := stringLen(p[n:])
		if !ok {
			return 0, false
		}
		n += l
	}
	l, ok := stringLen(p[n:])
	if !ok {
		return 0, false
	}
	return n + l, true
}

// valueOf is the value string literal of a literal field representation.
func valueOf(f []byte) ([]byte, bool) {
	prefix := uint(4)
	if f[0]&0xc0 == 0x40 {
		prefix = 6
	}
	idx, n := varint(f, prefix)
	if n == 0 {
		return nil, false
	}
	if idx == 0 {
		l, ok := stringLen(f[n:])
		if !ok {
			return nil, false
		}
		n += l
	}
	l, ok := stringLen(f[n:])
	if !ok {
		return nil, false
	}
	return f[n : n+l], true
}
