package http2

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
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
				g.msgs = append(g.msgs, grpcMsg{compressed: g.hdr[0]&1 != 0, size: size})
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

// renderGRPC renders the kept messages as protobuf field trees, at most
// limit bytes.
func (b *body) renderGRPC(enc string, limit, maxMsgs int) ([]byte, bool) {
	g := &b.g
	if g.count == 0 {
		return nil, false
	}
	var out []byte
	trunc := g.count > len(g.msgs) || g.left > 0 || (g.hn > 0 && g.hn < 5)
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
		if len(out) > limit {
			return out[:limit], true
		}
	}
	out = []byte(strings.TrimSuffix(string(out), "\n"))
	return out, trunc
}

func appendHex(out, b []byte) []byte {
	out = append(out, "0x"...)
	return hex.AppendEncode(out, b)
}

const maxProtoDepth = 16

// protoField is one field of a message read without a schema.
type protoField struct {
	num  uint64
	wt   uint8
	v    uint64
	data []byte
}

// readField reads the field at the start of p; n is 0 when it does not
// parse.
func readField(p []byte) (f protoField, n int) {
	key, k := binary.Uvarint(p)
	if k <= 0 || key>>3 == 0 || key>>3 > 1<<29-1 {
		return f, 0
	}
	f.num, f.wt = key>>3, uint8(key&7)
	p = p[k:]
	switch f.wt {
	case 0:
		v, m := binary.Uvarint(p)
		if m <= 0 {
			return f, 0
		}
		f.v = v
		return f, k + m
	case 1:
		if len(p) < 8 {
			return f, 0
		}
		f.v = binary.LittleEndian.Uint64(p)
		return f, k + 8
	case 5:
		if len(p) < 4 {
			return f, 0
		}
		f.v = uint64(binary.LittleEndian.Uint32(p))
		return f, k + 4
	case 2:
		l, m := binary.Uvarint(p)
		if m <= 0 || l > uint64(len(p)-m) {
			return f, 0
		}
		f.data = p[m : m+int(l)]
		return f, k + m + int(l)
	}
	return f, 0
}

// isMessage says whether p parses fully as a protobuf message.
func isMessage(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	for len(p) > 0 {
		_, n := readField(p)
		if n == 0 {
			return false
		}
		p = p[n:]
	}
	return true
}

// appendProto renders message p as a field tree; a message that does not
// parse is shown in hex.
func appendProto(out, p []byte, depth int) []byte {
	if len(p) > 0 && !isMessage(p) {
		out = indent(out, depth)
		out = appendHex(out, p)
		return append(out, '\n')
	}
	for len(p) > 0 {
		f, n := readField(p)
		p = p[n:]
		out = indent(out, depth)
		out = strconv.AppendUint(out, f.num, 10)
		switch f.wt {
		case 0:
			out = append(out, ": "...)
			out = strconv.AppendUint(out, f.v, 10)
		case 1:
			out = append(out, ": 0x"...)
			out = append(out, leftPad(strconv.FormatUint(f.v, 16), 16)...)
		case 5:
			out = append(out, ": 0x"...)
			out = append(out, leftPad(strconv.FormatUint(f.v, 16), 8)...)
		case 2:
			switch {
			case depth+1 < maxProtoDepth && isMessage(f.data):
				out = append(out, " {\n"...)
				out = appendProto(out, f.data, depth+1)
				out = indent(out, depth)
				out = append(out, '}')
			case utf8.Valid(f.data):
				out = append(out, ": "...)
				out = strconv.AppendQuote(out, string(f.data))
			default:
				out = append(out, ": "...)
				out = appendHex(out, f.data)
			}
		}
		out = append(out, '\n')
	}
	return out
}

func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

func indent(out []byte, depth int) []byte {
	for range depth {
		out = append(out, "  "...)
	}
	return out
}
