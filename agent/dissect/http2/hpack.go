package http2

import (
	"time"

	"golang.org/x/net/http2/hpack"
)

// blockDone decodes a finished header block and hands its fields on.
func (c *conn) blockDone(h *half, t time.Time) {
	h.inBlock = false
	h.fields = h.fields[:0]
	h.listLen, h.over = 0, false
	partial := h.blockLost
	if !h.blockLost {
		partial = c.decodeBlock(h, h.block)
	} else {
		c.stats.HPACKErrors.Add(1)
	}
	if len(h.block) > 4096 {
		h.block = nil
	} else {
		h.block = h.block[:0]
	}
	if h.blockPush {
		return
	}
	c.headers(h, h.blockSid, h.fields, partial, h.blockEnd, t)
}

// field receives a decoded header field.
func (c *conn) field(h *half, f hpack.HeaderField) {
	if h.mute {
		return
	}
	h.listLen += len(f.Name) + len(f.Value) + 32
	if h.listLen > c.cfg.MaxHeaderListBytes {
		h.over = true
		return
	}
	h.fields = append(h.fields, f)
}

// decodeBlock feeds the block to the decoder one field at a time, so that a
// field it cannot decode (an index from before the capture began) costs
// that field only; the dynamic table stays aligned with the encoder's by a
// placeholder for each indexed literal whose name is unknown. It reports
// whether some fields were lost.
func (c *conn) decodeBlock(h *half, p []byte) (partial bool) {
	for len(p) > 0 {
		n, ok := fieldLen(p)
		if !ok {
			c.stats.HPACKErrors.Add(1)
			h.dec.Close()
			return true
		}
		f := p[:n]
		p = p[n:]
		if _, err := h.dec.Write(f); err == nil {
			continue
		}
		c.stats.HPACKErrors.Add(1)
		h.dec.Close()
		partial = true
		if f[0]&0xc0 == 0x40 {
			// Literal with incremental indexing: add an entry in its place.
			c.synth = append(c.synth[:0], 0x40, 1, '?')
			if v, ok := valueOf(f); ok {
				c.synth = append(c.synth, v...)
			} else {
				c.synth = append(c.synth, 0)
			}
			h.mute = true
			if _, err := h.dec.Write(c.synth); err != nil {
				h.dec.Close()
				// An empty value then, to keep the entry count.
				h.dec.Write([]byte{0x40, 1, '?', 0})
				h.dec.Close()
			}
			h.mute = false
		}
	}
	if err := h.dec.Close(); err != nil {
		partial = true
	}
	return partial || h.over
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
