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
	nameSkip  = iota // only find the end
	nameAsIs         // presentation form as on the wire
	nameLower        // presentation form, lower-cased
)

// readName reads the (possibly compressed) name at off of msg. In the
// nameAsIs and nameLower modes it appends the presentation form (with
// the trailing dot, "." for the root) to dst, escaped as dig does. It
// returns dst and the offset just after the name where it started.
// Compression pointers must point before the start of the labels they
// continue and into the message body, so they always move backwards.
func readName(msg []byte, off int, dst []byte, mode int) ([]byte, int, error) {
	limit := off // pointers must go below this
	end := -1
	wire := 0
	jumps := 0
	wrote := false
	for {
		if off >= len(msg) {
			return dst, 0, errShort
		}
		c := msg[off]
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				if mode != nameSkip && !wrote {
					dst = append(dst, '.')
				}
				return dst, end, nil
			}
			l := int(c)
			if off+1+l > len(msg) {
				return dst, 0, errShort
			}
			wire += 1 + l
			if wire+1 > maxNameWire {
				return dst, 0, errNameLong
			}
			if mode != nameSkip {
				dst = appendLabel(dst, msg[off+1:off+1+l], mode == nameLower)
				dst = append(dst, '.')
				wrote = true
			}
			off += 1 + l
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

// appendLabel escapes a label the way dig prints it.
func appendLabel(dst, l []byte, lower bool) []byte {
	for _, c := range l {
		switch {
		case c >= 'A' && c <= 'Z':
			if lower {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		case c == '.' || c == ';' || c == '\\' || c == '"' || c == '(' || c == ')' || c == '@' || c == '$':
			dst = append(dst, '\\', c)
		case c < 0x21 || c > 0x7e:
			dst = append(dst, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
		default:
			dst = append(dst, c)
		}
	}
	return dst
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

var typeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
	48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR",
	252: "AXFR", 255: "ANY", 257: "CAA",
}

// typeName returns the mnemonic of a type; only unknown types allocate.
func typeName(t uint16) string {
	switch t { // the common ones without a map lookup
	case typeA:
		return "A"
	case typeAAAA:
		return "AAAA"
	}
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

func appendType(dst []byte, t uint16) []byte {
	if s, ok := typeNames[t]; ok {
		return append(dst, s...)
	}
	return strconv.AppendUint(append(dst, "TYPE"...), uint64(t), 10)
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
	return strconv.AppendUint(append(dst, "CLASS"...), uint64(c), 10)
}

var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI", "RCODE12", "RCODE13",
	"RCODE14", "RCODE15", "BADVERS"}

func appendRcode(dst []byte, rc int) []byte {
	if rc >= 0 && rc < len(rcodeNames) {
		return append(dst, rcodeNames[rc]...)
	}
	return strconv.AppendInt(append(dst, "RCODE"...), int64(rc), 10)
}

var opcodeNames = [...]string{"QUERY", "IQUERY", "STATUS", "OPCODE3", "NOTIFY", "UPDATE"}

func appendOpcode(dst []byte, op uint8) []byte {
	if int(op) < len(opcodeNames) {
		return append(dst, opcodeNames[op]...)
	}
	return strconv.AppendUint(append(dst, "OPCODE"...), uint64(op), 10)
}

// appendFlags appends the set header flags in dig's order, each preceded
// by a space.
func appendFlags(dst []byte, f uint16) []byte {
	for _, fl := range [...]struct {
		bit  uint16
		name string
	}{{0x8000, " qr"}, {0x0400, " aa"}, {0x0200, " tc"}, {0x0100, " rd"}, {0x0080, " ra"}, {0x0040, " z"}, {0x0020, " ad"}, {0x0010, " cd"}} {
		if f&fl.bit != 0 {
			dst = append(dst, fl.name...)
		}
	}
	return dst
}

func u16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func u32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// appendGeneric renders rdata in the RFC 3597 form.
func appendGeneric(dst, rd []byte) []byte {
	dst = append(dst, `\# `...)
	dst = strconv.AppendInt(dst, int64(len(rd)), 10)
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
			return netip.AddrFrom4([4]byte(rd)).AppendTo(dst)
		}
	case typeAAAA:
		if len(rd) == 16 {
			return netip.AddrFrom16([16]byte(rd)).AppendTo(dst)
		}
	case typeNS, typeCNAME, typePTR, 39:
		var n int
		if dst, n, err = readName(m, off, dst, nameAsIs); err == nil && n == end {
			return dst
		}
	case typeMX:
		if len(rd) >= 3 {
			dst = strconv.AppendUint(dst, uint64(u16(rd)), 10)
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
				dst = strconv.AppendUint(dst, uint64(u16(rd[i:])), 10)
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
					dst = strconv.AppendUint(dst, uint64(u32(msg[i:])), 10)
				}
				return dst
			}
		}
	case typeCAA:
		if len(rd) >= 2 && 2+int(rd[1]) <= len(rd) {
			dst = strconv.AppendUint(dst, uint64(rd[0]), 10)
			dst = append(dst, ' ')
			dst = append(dst, rd[2:2+rd[1]]...)
			dst = append(dst, ' ')
			return appendString(dst, rd[2+rd[1]:])
		}
	}
	return appendGeneric(dst[:start], rd)
}

// EDNS option codes with a name.
var optNames = map[uint16]string{3: "NSID", 8: "ECS", 10: "COOKIE", 11: "KEEPALIVE", 12: "PADDING", 15: "EDE"}

// appendOPT renders an OPT pseudo-record on one line:
// "; EDNS: version 0, flags: do, udp: 1232, COOKIE: 0123..".
func appendOPT(dst []byte, class uint16, ttl uint32, rd []byte) []byte {
	dst = append(dst, "; EDNS: version "...)
	dst = strconv.AppendUint(dst, uint64(ttl>>16&0xFF), 10)
	dst = append(dst, ", flags:"...)
	if ttl&0x8000 != 0 {
		dst = append(dst, " do"...)
	}
	dst = append(dst, ", udp: "...)
	dst = strconv.AppendUint(dst, uint64(class), 10)
	for len(rd) >= 4 {
		code, l := u16(rd), int(u16(rd[2:]))
		if 4+l > len(rd) {
			break
		}
		data := rd[4 : 4+l]
		dst = append(dst, ", "...)
		if s, ok := optNames[code]; ok {
			dst = append(dst, s...)
		} else {
			dst = strconv.AppendUint(append(dst, "OPT"...), uint64(code), 10)
		}
		dst = append(dst, ": "...)
		switch {
		case code == 12: // padding: only its size matters
			dst = strconv.AppendInt(dst, int64(l), 10)
			dst = append(dst, " bytes"...)
		case code == 15 && l >= 2: // extended error: code and text
			dst = strconv.AppendUint(dst, uint64(u16(data)), 10)
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
			dst = strconv.AppendUint(dst, uint64(src), 10)
			dst = append(dst, '/')
			dst = strconv.AppendUint(dst, uint64(scope), 10)
		default:
			dst = hex.AppendEncode(dst, data)
		}
		rd = rd[4+l:]
	}
	return dst
}
