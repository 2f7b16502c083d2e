package http2

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// grpcParse splits one direction of a gRPC call into its length-prefixed
// messages, keeping the first few.
type grpcParse struct {
	hdr   [5]byte
	hn    int
	left  int // bytes of the current message still to come
	keep  bool
	count int
	kept  int // bytes kept over all messages
	msgs  []grpcMsg
}

type grpcMsg struct {
	compressed bool
	size       int
	data       []byte
	cut        bool
}

func (g *grpcParse) write(p []byte, maxBytes, maxMsgs int) {
	for len(p) > 0 {
		if g.left == 0 && g.hn < 5 {
			n := copy(g.hdr[g.hn:], p)
			g.hn += n
			p = p[n:]
			if g.hn < 5 {
				return
			}
			size := int(binary.BigEndian.Uint32(g.hdr[1:]))
			g.count++
			g.keep = len(g.msgs) < maxMsgs
			if g.keep {
				// Room for the message as its prefix says, within
				// what a prefix not followed by the bytes may cost.
				g.add(g.hdr[0]&1 != 0, size, min(size, maxBytes-g.kept, maxGuess))
			}
			g.left = size
			if size == 0 {
				g.hn = 0
				continue
			}
		}
		n := min(len(p), g.left)
		if g.keep {
			m := &g.msgs[len(g.msgs)-1]
			k := min(n, maxBytes-g.kept)
			if k < n {
				m.cut = true
			}
			if k > 0 {
				m.data = append(m.data, p[:k]...)
				g.kept += k
			}
		}
		p = p[n:]
		g.left -= n
		if g.left == 0 {
			g.hn = 0
		}
	}
}

// add starts a kept message, with room for want bytes.
func (g *grpcParse) add(compressed bool, size, want int) {
	var data []byte
	if n := len(g.msgs); n < cap(g.msgs) {
		data = g.msgs[:n+1][n].data[:0] // a buffer left by a former stream
	}
	if want > cap(data) {
		data = make([]byte, 0, want)
	}
	g.msgs = append(g.msgs, grpcMsg{compressed: compressed, size: size, data: data})
}

// renderGRPC appends the kept messages, rendered as protobuf field trees,
// to dst, at most limit bytes of them. It returns dst extended, the body
// rendered (with no room for appends past it) and whether it is short of
// the messages.
func (b *body) renderGRPC(dst []byte, enc string, limit int) (_, body []byte, trunc bool) {
	g := &b.g
	if g.count == 0 {
		return dst, nil, false
	}
	start := len(dst)
	out := dst
	trunc = g.count > len(g.msgs) || g.left > 0 || (g.hn > 0 && g.hn < 5)
	for i, m := range g.msgs {
		if g.count > 1 {
			out = append(out, "# message "...)
			out = strconv.AppendInt(out, int64(i+1), 10)
			out = append(out, " ("...)
			out = strconv.AppendInt(out, int64(m.size), 10)
			out = append(out, " bytes)\n"...)
		}
		data, cut := m.data, m.cut || len(m.data) < m.size
		if m.compressed {
			if enc == "gzip" {
				if d, complete, err := gunzip(data, limit); err == nil || (cut && len(d) > 0) {
					data, cut = d, cut || !complete
				} else {
					out = append(out, "(undecodable gzip message)\n"...)
					data = nil
				}
			} else {
				out = append(out, "(compressed: "...)
				out = append(out, enc...)
				out = append(out, ")\n"...)
				out = appendHex(out, data)
				out = append(out, '\n')
				data = nil
			}
		}
		if data != nil || !m.compressed {
			if cut {
				trunc = true
				out = appendHex(out, data)
				out = append(out, '\n')
			} else {
				out = appendProto(out, data, 0)
			}
		}
		if len(out)-start > limit {
			out = out[:start+limit]
			return out, out[start:len(out):len(out)], true
		}
	}
	if n := len(out); n > start && out[n-1] == '\n' {
		out = out[:n-1]
	}
	if len(out) == start {
		return out, []byte{}, trunc
	}
	return out, out[start:len(out):len(out)], trunc
}

func appendHex(out, b []byte) []byte {
	out = append(out, "0x"...)
	return hex.AppendEncode(out, b)
}

const maxProtoDepth = 16

// appendProto renders message p as a field tree; a message that does not
// parse is shown in hex.
func appendProto(out, p []byte, depth int) []byte {
	if len(p) == 0 {
		return out
	}
	mark := len(out)
	o, ok := appendFields(out, p, depth)
	if ok {
		return o
	}
	out = indent(o[:mark], depth)
	out = appendHex(out, p)
	return append(out, '\n')
}

// appendFields renders p as fields, each a line; it reports false when p
// does not parse (what it appended is then to be dropped). Each byte is
// read once per depth: a field that does not parse as a message is shown
// as a string or in hex instead.
func appendFields(out, p []byte, depth int) ([]byte, bool) {
	for len(p) > 0 {
		key, k := uvarint(p)
		if k <= 0 || key>>3 == 0 || key>>3 > 1<<29-1 {
			return out, false
		}
		p = p[k:]
		var v uint64
		var data []byte
		switch wt := key & 7; wt {
		case 0:
			if v, k = uvarint(p); k <= 0 {
				return out, false
			}
			p = p[k:]
		case 1:
			if len(p) < 8 {
				return out, false
			}
			v, p = binary.LittleEndian.Uint64(p), p[8:]
		case 5:
			if len(p) < 4 {
				return out, false
			}
			v, p = uint64(binary.LittleEndian.Uint32(p)), p[4:]
		case 2:
			l, m := uvarint(p)
			if m <= 0 || l > uint64(len(p)-m) {
				return out, false
			}
			data, p = p[m:m+int(l)], p[m+int(l):]
		default:
			return out, false
		}
		out = indent(out, depth)
		out = appendUint(out, key>>3)
		switch key & 7 {
		case 0:
			out = append(out, ": "...)
			out = appendUint(out, v)
		case 1:
			out = append(out, ": 0x"...)
			out = appendHexDigits(out, v, 16)
		case 5:
			out = append(out, ": 0x"...)
			out = appendHexDigits(out, v, 8)
		case 2:
			if depth+1 < maxProtoDepth && len(data) > 0 {
				mark := len(out)
				o, ok := appendFields(append(out, " {\n"...), data, depth+1)
				if ok {
					out = indent(o, depth)
					out = append(out, '}')
					break
				}
				out = o[:mark]
			}
			out = append(out, ": "...)
			out = appendString(out, data)
		}
		out = append(out, '\n')
	}
	return out, true
}

// uvarint is binary.Uvarint, with one-byte values first.
func uvarint(p []byte) (uint64, int) {
	if len(p) > 0 && p[0] < 0x80 {
		return uint64(p[0]), 1
	}
	return binary.Uvarint(p)
}

// appendUint is strconv.AppendUint in base 10, with one digit first.
func appendUint(out []byte, v uint64) []byte {
	if v < 10 {
		return append(out, byte('0'+v))
	}
	return strconv.AppendUint(out, v, 10)
}

// appendString appends b as a Go string literal (as strconv.AppendQuote)
// when it is UTF-8, else in hex.
func appendString(out, b []byte) []byte {
	for _, c := range b {
		if c < ' ' || c > '~' || c == '"' || c == '\\' {
			if !utf8.Valid(b) {
				return appendHex(out, b)
			}
			// AppendQuote keeps nothing of the string.
			return strconv.AppendQuote(out, unsafe.String(unsafe.SliceData(b), len(b)))
		}
	}
	out = append(out, '"')
	out = append(out, b...)
	return append(out, '"')
}

// appendHexDigits appends v in hex, left-padded with zeros to width digits.
func appendHexDigits(out []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	n := 1
	for x := v >> 4; x != 0; x >>= 4 {
		n++
	}
	for i := max(width, n) - 1; i >= 0; i-- {
		out = append(out, digits[(v>>(4*uint(i)))&0xf])
	}
	return out
}

func indent(out []byte, depth int) []byte {
	for range depth {
		out = append(out, "  "...)
	}
	return out
}
