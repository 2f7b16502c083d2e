package dns

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
)

// Wire format limits (RFC 1035).
const (
	headerLen   = 12
	maxNameWire = 255
	// maxJumps bounds the compression pointers followed in one name.
	// Pointers must go strictly backwards, so a loop is impossible anyway;
	// this bounds the work a hostile message can cause.
	maxJumps = 64
)

var (
	errShort     = errors.New("truncated message")
	errPointer   = errors.New("bad compression pointer")
	errLabelType = errors.New("label too long or of unknown type")
	errNameLong  = errors.New("name longer than 255 bytes")
	errNoQuest   = errors.New("no question")
)

// header is the fixed 12-byte header.
type header struct {
	id             uint16
	flags          uint16
	qd, an, ns, ar uint16
	qr, tc         bool
	opcode, rcode  uint8
}

func parseHeader(b []byte) (header, bool) {
	if len(b) < headerLen {
		return header{}, false
	}
	h := header{
		id:    uint16(b[0])<<8 | uint16(b[1]),
		flags: uint16(b[2])<<8 | uint16(b[3]),
		qd:    uint16(b[4])<<8 | uint16(b[5]),
		an:    uint16(b[6])<<8 | uint16(b[7]),
		ns:    uint16(b[8])<<8 | uint16(b[9]),
		ar:    uint16(b[10])<<8 | uint16(b[11]),
	}
	h.qr = h.flags&0x8000 != 0
	h.tc = h.flags&0x0200 != 0
	h.opcode = uint8(h.flags>>11) & 0xF
	h.rcode = uint8(h.flags & 0xF)
	return h, true
}

// name modes for readName.
const (
	nameSkip = iota // only find the end
	nameAsIs        // presentation form as on the wire
)

// readName reads the (possibly compressed) name at off of msg. In the
// nameAsIs mode it appends the presentation form (with the trailing dot,
// "." for the root) to dst, escaped as dig does; on an error, what it
// appended is to be dropped. It returns dst and the offset just after the
// name where it started. Compression pointers must point before the start
// of the labels they continue and into the message body, so they always
// move backwards.
func readName(msg []byte, off int, dst []byte, mode int) ([]byte, int, error) {
	limit := off // pointers must go below this
	end := -1
	wire := 0
	jumps := 0
	start := len(dst)
	for {
		// The labels up to a pointer or the root lie side by side: check
		// them, then render them at once.
		run, plain := off, true
		var c byte
		for {
			if off >= len(msg) {
				return dst, 0, errShort
			}
			if c = msg[off]; c == 0 || c&0xC0 != 0 {
				break
			}
			l := int(c)
			if off+1+l > len(msg) {
				return dst, 0, errShort
			}
			wire += 1 + l
			if wire+1 > maxNameWire {
				return dst, 0, errNameLong
			}
			if mode != nameSkip && plain {
				for _, x := range msg[off+1 : off+1+l] {
					if !plainLabel[x] {
						plain = false
						break
					}
				}
			}
			off += 1 + l
		}
		if mode != nameSkip && off > run {
			dst = appendLabels(dst, msg[run:off], plain)
		}
		switch c & 0xC0 {
		case 0x00:
			if end < 0 {
				end = off + 1
			}
			if mode != nameSkip && len(dst) == start {
				dst = append(dst, '.') // the root
			}
			return dst, end, nil
		case 0xC0:
			if off+1 >= len(msg) {
				return dst, 0, errShort
			}
			p := int(c&0x3F)<<8 | int(msg[off+1])
			if p >= limit || p < headerLen {
				return dst, 0, errPointer
			}
			if jumps++; jumps > maxJumps {
				return dst, 0, errPointer
			}
			if end < 0 {
				end = off + 2
			}
			limit, off = p, p
		default:
			return dst, 0, errLabelType
		}
	}
}

// appendLabels appends the labels of run, in wire form, each followed by
// a dot. When plain (no byte needs escaping), that is run without its
// first length byte, the others turned into dots.
func appendLabels(dst, run []byte, plain bool) []byte {
	if !plain {
		for p := 0; p < len(run); p += 1 + int(run[p]) {
			dst = appendLabel(dst, run[p+1:p+1+int(run[p])])
			dst = append(dst, '.')
		}
		return dst
	}
	n := len(dst) - 1 // run[p] goes to dst[n+p]
	dst = append(dst, run[1:]...)
	dst = append(dst, '.')
	for p := 1 + int(run[0]); p < len(run); p += 1 + int(run[p]) {
		dst[n+p] = '.'
	}
	return dst
}

// plainLabel[c] is set for the bytes a label shows as they are: printable
// ASCII other than the ones dig escapes.
var plainLabel = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = true
	}
	for _, c := range []byte(`.;\"()@$`) {
		t[c] = false
	}
	return t
}()

// appendLabel escapes a label the way dig prints it.
func appendLabel(dst, l []byte) []byte {
	// Labels are nearly always plain: copy the run of plain bytes at once.
	i := 0
	for i < len(l) && plainLabel[l[i]] {
		i++
	}
	dst = append(dst, l[:i]...)
	for _, c := range l[i:] {
		switch {
		case plainLabel[c]:
			dst = append(dst, c)
		case c == '.' || c == ';' || c == '\\' || c == '"' || c == '(' || c == ')' || c == '@' || c == '$':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
		}
	}
	return dst
}

// lowerASCII lowers the ASCII upper case letters of b in place.
func lowerASCII(b []byte) {
	for i, c := range b {
		if c-'A' < 26 {
			b[i] = c + 'a' - 'A'
		}
	}
}

// appendString renders a character-string (TXT, CAA value) in quotes.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c > 0x7e:
			dst = append(dst, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Type numbers with a name.
const (
	typeA     = 1
	typeNS    = 2
	typeCNAME = 5
	typeSOA   = 6
	typePTR   = 12
	typeMX    = 15
	typeTXT   = 16
	typeAAAA  = 28
	typeSRV   = 33
	typeOPT   = 41
	typeSVCB  = 64
	typeHTTPS = 65
	typeCAA   = 257
)

// typeNames holds the mnemonics by type number; "" for the unnamed ones.
var typeNames = [...]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
	48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR",
	252: "AXFR", 255: "ANY", 257: "CAA",
}

// typeName returns the mnemonic of a type; only unknown types allocate.
func typeName(t uint16) string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "TYPE" + strconv.Itoa(int(t))
}

func appendType(dst []byte, t uint16) []byte {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return append(dst, typeNames[t]...)
	}
	return appendUint(append(dst, "TYPE"...), uint64(t))
}

func appendClass(dst []byte, c uint16) []byte {
	switch c {
	case 1:
		return append(dst, "IN"...)
	case 3:
		return append(dst, "CH"...)
	case 4:
		return append(dst, "HS"...)
	case 254:
		return append(dst, "NONE"...)
	case 255:
		return append(dst, "ANY"...)
	}
	return appendUint(append(dst, "CLASS"...), uint64(c))
}

var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI", "RCODE12", "RCODE13",
	"RCODE14", "RCODE15", "BADVERS"}

// rcodeText names an rcode (extended ones included: 0 to 4095); only the
// unnamed ones above 16 allocate.
func rcodeText(rc int) string {
	if rc >= 0 && rc < len(rcodeNames) {
		return rcodeNames[rc]
	}
	return "RCODE" + strconv.Itoa(rc)
}

var opcodeNames = [...]string{"QUERY", "IQUERY", "STATUS", "OPCODE3", "NOTIFY", "UPDATE"}

func appendOpcode(dst []byte, op uint8) []byte {
	if int(op) < len(opcodeNames) {
		return append(dst, opcodeNames[op]...)
	}
	return appendUint(append(dst, "OPCODE"...), uint64(op))
}

var headerFlags = [...]struct {
	bit  uint16
	name string
}{{0x8000, " qr"}, {0x0400, " aa"}, {0x0200, " tc"}, {0x0100, " rd"}, {0x0080, " ra"}, {0x0040, " z"}, {0x0020, " ad"}, {0x0010, " cd"}}

// appendFlags appends the set header flags in dig's order, each preceded
// by a space.
func appendFlags(dst []byte, f uint16) []byte {
	return append(dst, flagTexts[f>>4&0x7F|f>>8&0x80]...)
}

// flagTexts holds the text of every combination of the flags: bits 4-10
// of the header's flags word in bits 0-6 of the index, QR in bit 7.
var flagTexts = func() (t [256]string) {
	for i := range t {
		f := uint16(i&0x7F)<<4 | uint16(i&0x80)<<8
		var b []byte
		for _, fl := range &headerFlags {
			if f&fl.bit != 0 {
				b = append(b, fl.name...)
			}
		}
		t[i] = string(b)
	}
	return t
}()

// appendClassType appends " <class> <type>", as one string for the
// usual class.
func appendClassType(dst []byte, class, t uint16) []byte {
	if class == 1 && int(t) < len(inTypes) && inTypes[t] != "" {
		return append(dst, inTypes[t]...)
	}
	dst = append(dst, ' ')
	dst = appendClass(dst, class)
	dst = append(dst, ' ')
	return appendType(dst, t)
}

// inTypes holds " IN <type>" for the types with a name.
var inTypes = func() (t [len(typeNames)]string) {
	for i, n := range typeNames {
		if n != "" {
			t[i] = " IN " + n
		}
	}
	return t
}()

func u16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func u32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// appendGeneric renders rdata in the RFC 3597 form.
func appendGeneric(dst, rd []byte) []byte {
	dst = append(dst, `\# `...)
	dst = appendUint(dst, uint64(len(rd)))
	if len(rd) > 0 {
		dst = append(dst, ' ')
		dst = hex.AppendEncode(dst, rd)
	}
	return dst
}

// appendRdata renders the rdata of a record of type t that spans
// msg[off:end]. Names inside may point anywhere before them.
func appendRdata(dst, msg []byte, t uint16, off, end int) []byte {
	rd := msg[off:end]
	m := msg[:end] // names must end inside the rdata
	start := len(dst)
	var err error
	switch t {
	case typeA:
		if len(rd) == 4 {
			return appendIPv4(dst, rd)
		}
	case typeAAAA:
		if len(rd) == 16 {
			return appendIPv6(dst, (*[16]byte)(rd))
		}
	case typeNS, typeCNAME, typePTR, 39:
		var n int
		if dst, n, err = readName(m, off, dst, nameAsIs); err == nil && n == end {
			return dst
		}
	case typeMX:
		if len(rd) >= 3 {
			dst = appendUint(dst, uint64(u16(rd)))
			dst = append(dst, ' ')
			var n int
			if dst, n, err = readName(m, off+2, dst, nameAsIs); err == nil && n == end {
				return dst
			}
		}
	case typeTXT, 99:
		ok := len(rd) > 0
		for p := 0; p < len(rd); {
			l := int(rd[p])
			if p+1+l > len(rd) {
				ok = false
				break
			}
			if p > 0 {
				dst = append(dst, ' ')
			}
			dst = appendString(dst, rd[p+1:p+1+l])
			p += 1 + l
		}
		if ok {
			return dst
		}
	case typeSRV:
		if len(rd) >= 7 {
			for i := 0; i < 6; i += 2 {
				dst = appendUint(dst, uint64(u16(rd[i:])))
				dst = append(dst, ' ')
			}
			var n int
			if dst, n, err = readName(m, off+6, dst, nameAsIs); err == nil && n == end {
				return dst
			}
		}
	case typeSOA:
		var n int
		if dst, n, err = readName(m, off, dst, nameAsIs); err == nil {
			dst = append(dst, ' ')
			if dst, n, err = readName(m, n, dst, nameAsIs); err == nil && n+20 == end {
				for i := n; i < end; i += 4 {
					dst = append(dst, ' ')
					dst = appendUint(dst, uint64(u32(msg[i:])))
				}
				return dst
			}
		}
	case typeCAA:
		if len(rd) >= 2 && 2+int(rd[1]) <= len(rd) {
			dst = appendUint(dst, uint64(rd[0]))
			dst = append(dst, ' ')
			dst = append(dst, rd[2:2+rd[1]]...)
			dst = append(dst, ' ')
			return appendString(dst, rd[2+rd[1]:])
		}
	}
	return appendGeneric(dst[:start], rd)
}

// The renderers below write digits straight into dst, after making room:
// strconv's and netip's format into a buffer on the stack and copy it,
// and reading back bytes just stored one at a time stalls the copy.

// appendUint appends x in decimal.
func appendUint(dst []byte, x uint64) []byte {
	n := 1
	for y := x; y >= 10; y /= 10 {
		n++
	}
	dst = append(dst, "00000000000000000000"[:n]...)
	i := len(dst) - 1
	for ; x >= 10; i-- {
		dst[i] = byte('0' + x%10)
		x /= 10
	}
	dst[i] = byte('0' + x)
	return dst
}

// appendIPv4 appends the 4 bytes of ip as netip.Addr.AppendTo does.
func appendIPv4(dst, ip []byte) []byte {
	n := len(dst)
	dst = append(dst, "255.255.255.255"...)
	d := dst[n:]
	k := 0
	for i, x := range ip[:4] {
		if i > 0 {
			d[k] = '.'
			k++
		}
		if x >= 100 {
			d[k] = '0' + x/100
			k++
		}
		if x >= 10 {
			d[k] = '0' + x/10%10
			k++
		}
		d[k] = '0' + x%10
		k++
	}
	return dst[:n+k]
}

// appendIPv6 appends ip as netip.Addr.AppendTo does (RFC 5952: the
// longest run of two or more zero groups, the first of equals, is "::";
// an IPv4-mapped address ends in dotted decimal).
func appendIPv6(dst []byte, ip *[16]byte) []byte {
	if [12]byte(ip[:12]) == [12]byte{10: 0xff, 11: 0xff} {
		return appendIPv4(append(dst, "::ffff:"...), ip[12:])
	}
	var g [8]uint16
	for i := range g {
		g[i] = uint16(ip[2*i])<<8 | uint16(ip[2*i+1])
	}
	zeroStart, zeroEnd := 8, 8
	for i := 0; i < 8; {
		if g[i] != 0 {
			i++
			continue
		}
		j := i + 1
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i >= 2 && j-i > zeroEnd-zeroStart {
			zeroStart, zeroEnd = i, j
		}
		i = j
	}
	const hexDigits = "0123456789abcdef"
	n := len(dst)
	dst = append(dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"...)
	d := dst[n:]
	k := 0
	for i := 0; i < 8; i++ {
		if i == zeroStart {
			d[k], d[k+1] = ':', ':'
			k += 2
			if i = zeroEnd; i >= 8 {
				break
			}
		} else if i > 0 {
			d[k] = ':'
			k++
		}
		x := g[i]
		if x >= 0x1000 {
			d[k] = hexDigits[x>>12]
			k++
		}
		if x >= 0x100 {
			d[k] = hexDigits[x>>8&0xf]
			k++
		}
		if x >= 0x10 {
			d[k] = hexDigits[x>>4&0xf]
			k++
		}
		d[k] = hexDigits[x&0xf]
		k++
	}
	return dst[:n+k]
}

// EDNS option codes with a name.
var optNames = [...]string{3: "NSID", 8: "ECS", 10: "COOKIE", 11: "KEEPALIVE", 12: "PADDING", 15: "EDE"}

// appendOPT renders an OPT pseudo-record on one line:
// "; EDNS: version 0, flags: do, udp: 1232, COOKIE: 0123..".
func appendOPT(dst []byte, class uint16, ttl uint32, rd []byte) []byte {
	dst = append(dst, "; EDNS: version "...)
	dst = appendUint(dst, uint64(ttl>>16&0xFF))
	dst = append(dst, ", flags:"...)
	if ttl&0x8000 != 0 {
		dst = append(dst, " do"...)
	}
	dst = append(dst, ", udp: "...)
	dst = appendUint(dst, uint64(class))
	for len(rd) >= 4 {
		code, l := u16(rd), int(u16(rd[2:]))
		if 4+l > len(rd) {
			break
		}
		data := rd[4 : 4+l]
		dst = append(dst, ", "...)
		if int(code) < len(optNames) && optNames[code] != "" {
			dst = append(dst, optNames[code]...)
		} else {
			dst = appendUint(append(dst, "OPT"...), uint64(code))
		}
		dst = append(dst, ": "...)
		switch {
		case code == 12: // padding: only its size matters
			dst = appendUint(dst, uint64(l))
			dst = append(dst, " bytes"...)
		case code == 15 && l >= 2: // extended error: code and text
			dst = appendUint(dst, uint64(u16(data)))
			if l > 2 {
				dst = append(dst, ' ')
				dst = appendString(dst, data[2:])
			}
		case code == 8 && l >= 4: // client subnet: family, source/scope prefix
			fam, src, scope := u16(data), data[2], data[3]
			var a [16]byte
			copy(a[:], data[4:])
			var ip netip.Addr
			if fam == 1 {
				ip = netip.AddrFrom4([4]byte(a[:4]))
			} else {
				ip = netip.AddrFrom16(a)
			}
			dst = ip.AppendTo(dst)
			dst = append(dst, '/')
			dst = appendUint(dst, uint64(src))
			dst = append(dst, '/')
			dst = appendUint(dst, uint64(scope))
		default:
			dst = hex.AppendEncode(dst, data)
		}
		rd = rd[4+l:]
	}
	return dst
}
