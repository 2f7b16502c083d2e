package entry

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"time"
	"unsafe"
)

// The packed form of an entry: one pointer-free byte run, so that a store
// of them is a few large blocks the garbage collector need not scan.
// Integers are varints, strings and bodies a length then the bytes.
//
// Layout: version, flags, the summary length (4 bytes, little-endian:
// the bytes from the start up to the notes), time, names, numbers, the
// endpoints, then notes and messages. The summary comes first so that a
// scan can copy and read it alone (SummaryLen, SummaryReader).

const codecVersion = 2

// Entry flags in the packed form.
const (
	pkFailed = 1 << iota
	pkIncomplete
	pkRequest
	pkResponse
	pkTimeZero
)

// Message flags in the packed form.
const (
	pmTruncated = 1 << iota
	pmStartZero
	pmEndZero
)

// AppendPacked appends e's packed form to dst.
func AppendPacked(dst []byte, e *Entry) []byte {
	var fl byte
	if e.Failed {
		fl |= pkFailed
	}
	if e.Incomplete {
		fl |= pkIncomplete
	}
	if e.Request != nil {
		fl |= pkRequest
	}
	if e.Response != nil {
		fl |= pkResponse
	}
	if e.Time.IsZero() {
		fl |= pkTimeZero
	}
	start := len(dst)
	dst = append(dst, codecVersion, fl, 0, 0, 0, 0)
	if !e.Time.IsZero() {
		dst = binary.AppendVarint(dst, e.Time.UnixNano())
	}
	for _, s := range [...]string{e.ID, e.Protocol, e.HTTPVersion, e.Method, e.Path, e.Node} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendVarint(dst, int64(e.Status))
	dst = binary.AppendVarint(dst, int64(e.Latency))
	dst = binary.AppendUvarint(dst, e.ConnID)
	dst = appendEndpoint(dst, &e.Src)
	dst = appendEndpoint(dst, &e.Dst)
	binary.LittleEndian.PutUint32(dst[start+2:], uint32(len(dst)-start))
	dst = binary.AppendUvarint(dst, uint64(len(e.Notes)))
	for _, n := range e.Notes {
		dst = appendString(dst, n)
	}
	if e.Request != nil {
		dst = appendMessage(dst, e.Request)
	}
	if e.Response != nil {
		dst = appendMessage(dst, e.Response)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Address kinds in the packed form.
const (
	addrNone = iota
	addr4
	addr6
	addr6Zone
)

func appendEndpoint(dst []byte, p *Endpoint) []byte {
	switch {
	case !p.IP.IsValid():
		dst = append(dst, addrNone)
	case p.IP.Is4():
		a := p.IP.As4()
		dst = append(append(dst, addr4), a[:]...)
	case p.IP.Zone() != "":
		a := p.IP.As16()
		dst = append(append(dst, addr6Zone), a[:]...)
		dst = appendString(dst, p.IP.Zone())
	default:
		a := p.IP.As16()
		dst = append(append(dst, addr6), a[:]...)
	}
	dst = binary.AppendUvarint(dst, uint64(p.Port))
	if p.Who == nil {
		return append(dst, 0)
	}
	id := p.Who
	dst = append(dst, 1)
	for _, s := range [...]string{id.Pod, id.Namespace, id.Workload, id.WorkloadKind, id.Service, id.Node, id.Process} {
		dst = appendString(dst, s)
	}
	return dst
}

func appendMessage(dst []byte, m *Message) []byte {
	var fl byte
	if m.Truncated {
		fl |= pmTruncated
	}
	if m.Start.IsZero() {
		fl |= pmStartZero
	}
	if m.End.IsZero() {
		fl |= pmEndZero
	}
	dst = append(dst, fl)
	if !m.Start.IsZero() {
		dst = binary.AppendVarint(dst, m.Start.UnixNano())
	}
	if !m.End.IsZero() {
		dst = binary.AppendVarint(dst, m.End.UnixNano())
	}
	dst = binary.AppendVarint(dst, m.BodyBytes)
	dst = appendHeaders(dst, m.Headers)
	dst = appendHeaders(dst, m.Trailers)
	dst = binary.AppendUvarint(dst, uint64(len(m.Body)))
	return append(dst, m.Body...)
}

func appendHeaders(dst []byte, hs []Header) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(hs)))
	for _, h := range hs {
		dst = appendString(dst, h.Name)
		dst = appendString(dst, h.Value)
	}
	return dst
}

// ErrPacked is returned for bytes that are not a packed entry.
var ErrPacked = errors.New("entry: malformed packed entry")

// Unpack decodes a packed entry. Its strings and bodies point into b, which
// must not change while the entry is in use.
func Unpack(b []byte) (*Entry, error) {
	r := reader{b: b}
	if r.byte() != codecVersion {
		return nil, ErrPacked
	}
	e := &Entry{}
	fl := r.head(e, nil, nil)
	if n := r.count(1); n > 0 {
		e.Notes = make([]string, n)
		for i := range e.Notes {
			e.Notes[i] = r.string()
		}
	}
	if fl&(pkRequest|pkResponse) == pkRequest|pkResponse {
		// Both messages in one allocation.
		ms := new([2]Message)
		r.message(&ms[0])
		r.message(&ms[1])
		e.Request, e.Response = &ms[0], &ms[1]
	} else if fl&pkRequest != 0 {
		e.Request = new(Message)
		r.message(e.Request)
	} else if fl&pkResponse != 0 {
		e.Response = new(Message)
		r.message(e.Response)
	}
	if r.bad || r.off != len(b) {
		return nil, ErrPacked
	}
	return e, nil
}

// head reads everything before the notes: time, names, numbers, flags
// and both endpoints. Identities go to src and dst when they are not nil,
// else to new ones. It returns the entry flags.
func (r *reader) head(e *Entry, src, dst *Identity) byte {
	fl := r.byte()
	end := -1
	if p := r.bytes(4); p != nil {
		end = int(binary.LittleEndian.Uint32(p))
	}
	e.Time = time.Time{}
	if fl&pkTimeZero == 0 {
		e.Time = time.Unix(0, r.varint())
	}
	e.ID, e.Protocol, e.HTTPVersion = r.string(), r.string(), r.string()
	e.Method, e.Path, e.Node = r.string(), r.string(), r.string()
	st := r.varint()
	if st < math.MinInt32 || st > math.MaxInt32 {
		r.bad = true
	}
	e.Status = int32(st)
	e.Latency = time.Duration(r.varint())
	e.ConnID = r.uvarint()
	e.Src = r.endpoint(src)
	e.Dst = r.endpoint(dst)
	e.Failed = fl&pkFailed != 0
	e.Incomplete = fl&pkIncomplete != 0
	if r.off != end {
		r.bad = true
	}
	return fl
}

// SummaryReader decodes packed entries without their notes, headers and
// bodies, into storage it reuses, so that scanning many entries allocates
// nothing. A zero SummaryReader is ready to use; it is not safe for
// concurrent use.
type SummaryReader struct {
	e        Entry
	src, dst Identity
}

// SummaryLen returns how many bytes at the start of a packed entry hold
// its summary: what SummaryReader.Read needs. For bytes that are not a
// packed entry it returns len(b).
func SummaryLen(b []byte) int {
	if len(b) < 6 || b[0] != codecVersion {
		return len(b)
	}
	n := int(binary.LittleEndian.Uint32(b[2:]))
	if n < 6 || n > len(b) {
		return len(b)
	}
	return n
}

// Read decodes the summary of a packed entry: everything but Notes,
// Request and Response, which are nil. b is the packed entry or its first
// SummaryLen bytes. The entry, its identities and its strings (which point
// into b) are valid until the next Read; b must not change meanwhile.
func (d *SummaryReader) Read(b []byte) (*Entry, error) {
	r := reader{b: b}
	if r.byte() != codecVersion {
		return nil, ErrPacked
	}
	d.e = Entry{}
	r.head(&d.e, &d.src, &d.dst)
	if r.bad {
		return nil, ErrPacked
	}
	return &d.e, nil
}

// reader reads a packed entry; a read past the end or a bad length sets
// bad and reads zeros from then on.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) byte() byte {
	if r.off >= len(r.b) {
		r.bad = true
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

// count reads a count of items that take at least min bytes each.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off)/uint64(min) {
		r.bad = true
		return 0
	}
	return int(n)
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b)-r.off {
		r.bad = true
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) string() string {
	// Most strings are shorter than 128 bytes: a one-byte length.
	if o := r.off; o < len(r.b) && !r.bad {
		if n := int(r.b[o]); n < 0x80 && n < len(r.b)-o {
			r.off = o + 1 + n
			if n == 0 {
				return ""
			}
			return unsafe.String(&r.b[o+1], n)
		}
	}
	n := r.count(1)
	p := r.bytes(n)
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

// endpoint reads an endpoint; its identity goes into id when id is not
// nil, else into a new one.
func (r *reader) endpoint(id *Identity) Endpoint {
	var p Endpoint
	switch kind := r.byte(); kind {
	case addrNone:
	case addr4:
		if a := r.bytes(4); a != nil {
			p.IP = netip.AddrFrom4([4]byte(a))
		}
	case addr6, addr6Zone:
		if a := r.bytes(16); a != nil {
			p.IP = netip.AddrFrom16([16]byte(a))
		}
		if kind == addr6Zone {
			p.IP = p.IP.WithZone(r.string())
		}
	default:
		r.bad = true
	}
	port := r.uvarint()
	if port > math.MaxUint16 {
		r.bad = true
	}
	p.Port = uint16(port)
	switch r.byte() {
	case 0:
	case 1:
		if id == nil {
			id = new(Identity)
		}
		*id = Identity{Pod: r.string(), Namespace: r.string(), Workload: r.string(), WorkloadKind: r.string(),
			Service: r.string(), Node: r.string(), Process: r.string()}
		p.Who = id
	default:
		r.bad = true
	}
	return p
}

func (r *reader) message(m *Message) {
	fl := r.byte()
	if fl&pmStartZero == 0 {
		m.Start = time.Unix(0, r.varint())
	}
	if fl&pmEndZero == 0 {
		m.End = time.Unix(0, r.varint())
	}
	m.Truncated = fl&pmTruncated != 0
	m.BodyBytes = r.varint()
	m.Headers = r.headers()
	m.Trailers = r.headers()
	if n := r.count(1); n > 0 {
		m.Body = r.bytes(n)
	}
}

func (r *reader) headers() []Header {
	n := r.count(2)
	if n == 0 {
		return nil
	}
	hs := make([]Header, n)
	for i := range hs {
		hs[i].Name, hs[i].Value = r.string(), r.string()
	}
	return hs
}
