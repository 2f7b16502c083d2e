package http2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/podwire/podwire/agent/entry"
)

// TestStaticTable: the static table is x/net's.
func TestStaticTable(t *testing.T) {
	for i := range staticTable {
		got, err := hpack.NewDecoder(4096, nil).DecodeFull([]byte{0x80 | byte(i+1)})
		if err != nil || len(got) != 1 || got[0].Name != staticTable[i].name || got[0].Value != staticTable[i].value {
			t.Errorf("entry %d: %+v, x/net %+v %v", i+1, staticTable[i], got, err)
		}
	}
}

// TestHuffman: decoding x/net's encoding gives the string back; bad
// paddings, EOS and overlong strings fail as in x/net.
func TestHuffman(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if n%2 == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = "abcdefghijklmnopqrstuvwxyz0123456789-/:. "[rng.IntN(41)]
			}
		}
		enc := hpack.AppendHuffmanString(nil, string(b))
		got, err := appendHuffman([]byte("x"), enc, 0)
		if err != nil || !bytes.Equal(got[1:], b) {
			t.Fatalf("%q: got %q, %v", b, got, err)
		}
		if len(b) > 1 {
			if _, err := appendHuffman(nil, enc, len(b)-1); err != errStrLen {
				t.Fatalf("%q: limit %d: %v", b, len(b)-1, err)
			}
		}
	}
	for n := range 20000 {
		b := make([]byte, 1+rng.IntN(6))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if n%3 == 0 {
				b[i] |= 0xf0
			}
		}
		want, werr := hpack.HuffmanDecodeToString(b)
		got, err := appendHuffman(nil, b, 0)
		if (err == nil) != (werr == nil) || (err == nil && string(got) != want) {
			t.Fatalf("% x: got %q %v, x/net %q %v", b, got, err, want, werr)
		}
	}
}

// decodeAll decodes blocks with a connection's decoder, as strings.
func decodeAll(t *testing.T, maxList int, blocks [][]byte) (lists [][]string, partial []bool) {
	t.Helper()
	c := New(Config{MaxHeaderListBytes: maxList}, nil, nil, nil).(*conn)
	h := &c.h[0]
	for _, b := range blocks {
		h.fields, h.arena, h.listLen, h.over = h.fields[:0], h.arena[:0], 0, false
		h.dyn.pinAll()
		p := c.decodeBlock(h, b)
		h.astr = string(h.arena)
		var l []string
		for _, f := range h.fields {
			l = append(l, h.str(f.name)+": "+h.str(f.value))
		}
		h.dyn.unpin()
		lists = append(lists, l)
		partial = append(partial, p)
	}
	return lists, partial
}

// TestHPACKAsXNet: random header lists, encoded by x/net (table size
// changes, sensitive fields, long values that evict), decode as x/net
// decodes them.
func TestHPACKAsXNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{":method", ":path", ":status", "content-type", "x-custom", "X-Upper", "grpc-status", "te", "cookie", "user-agent", "x-\xff\xfe"}
	values := []string{"GET", "POST", "/", "/a/b?c=d", "200", "application/grpc", "trailers", "", "0", "caf\xc3\xa9", "\x00\x01bin", strings.Repeat("v", 300), strings.Repeat("w", 3000)}
	for round := range 200 {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		dec := hpack.NewDecoder(4096, nil)
		dec.SetAllowedMaxDynamicTableSize(maxTableSize)
		var blocks [][]byte
		var want [][]string
		for range 30 {
			buf.Reset()
			if rng.IntN(10) == 0 {
				size := uint32(rng.IntN(8192))
				enc.SetMaxDynamicTableSizeLimit(size)
				enc.SetMaxDynamicTableSize(size)
			}
			for range rng.IntN(12) {
				v := values[rng.IntN(len(values))]
				if rng.IntN(3) == 0 {
					v += strconv.Itoa(rng.IntN(50))
				}
				enc.WriteField(hpack.HeaderField{Name: names[rng.IntN(len(names))], Value: v, Sensitive: rng.IntN(8) == 0})
			}
			b := bytes.Clone(buf.Bytes())
			fs, err := dec.DecodeFull(b)
			if err != nil {
				// x/net (and so this decoder) rejects a second size
				// update in a block when the table is not empty.
				break
			}
			var l []string
			for _, f := range fs {
				l = append(l, f.Name+": "+f.Value)
			}
			blocks, want = append(blocks, b), append(want, l)
		}
		got, partial := decodeAll(t, 1<<20, blocks)
		for i := range want {
			if partial[i] || !slices.Equal(got[i], want[i]) {
				t.Fatalf("round %d block %d (partial %v):\n got %q\nwant %q", round, i, partial[i], got[i], want[i])
			}
		}
	}
}

// TestHPACKMidStream: the capture begins after the encoder filled its
// table: unknown indexes cost their fields only and placeholders keep the
// table aligned, so later fields decode.
func TestHPACKMidStream(t *testing.T) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := range 5 {
		enc.WriteField(hpack.HeaderField{Name: "x-old", Value: fmt.Sprint("before", i)})
	}
	buf.Reset()
	enc.WriteField(hpack.HeaderField{Name: "x-old", Value: "before4"}) // indexed, unknown
	enc.WriteField(hpack.HeaderField{Name: "x-old", Value: "new"})     // literal, indexed unknown name
	enc.WriteField(hpack.HeaderField{Name: "x-fresh", Value: "yes"})
	b1 := bytes.Clone(buf.Bytes())
	buf.Reset()
	enc.WriteField(hpack.HeaderField{Name: "x-fresh", Value: "yes"}) // refers past the placeholder
	enc.WriteField(hpack.HeaderField{Name: "x-old", Value: "new"})
	b2 := bytes.Clone(buf.Bytes())
	got, partial := decodeAll(t, 1<<20, [][]byte{b1, b2})
	if !partial[0] || !slices.Equal(got[0], []string{"x-fresh: yes"}) {
		t.Errorf("first block %q partial %v", got[0], partial[0])
	}
	if partial[1] || !slices.Equal(got[1], []string{"x-fresh: yes", "?: new"}) {
		t.Errorf("second block %q partial %v", got[1], partial[1])
	}
}

// protoField (test only, with readField) is one field of a message read without a schema.
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

// oldAppendProto is the renderer before it read each level once.
func oldAppendProto(out, p []byte, depth int) []byte {
	isMessage := func(p []byte) bool {
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
	leftPad := func(s string, n int) string {
		if len(s) >= n {
			return s
		}
		return strings.Repeat("0", n-len(s)) + s
	}
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
				out = oldAppendProto(out, f.data, depth+1)
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

// randMsg builds a random message, nested up to depth, sometimes broken.
func randMsg(rng *rand.Rand, depth int) []byte {
	var m []byte
	for range rng.IntN(5) {
		num := uint64(1 + rng.IntN(40))
		switch rng.IntN(6) {
		case 0:
			m = binary.AppendUvarint(m, num<<3)
			m = binary.AppendUvarint(m, rng.Uint64()>>rng.IntN(64))
		case 1:
			m = binary.AppendUvarint(m, num<<3|1)
			m = binary.LittleEndian.AppendUint64(m, rng.Uint64()>>rng.IntN(64))
		case 2:
			m = binary.AppendUvarint(m, num<<3|5)
			m = binary.LittleEndian.AppendUint32(m, rng.Uint32()>>rng.IntN(32))
		case 3:
			s := []string{"hello", "", "a\"b\\c", "caf\xc3\xa9", "\x00\xff", "tab\there", "\u2028", "\x7f"}[rng.IntN(8)]
			m = pbBytes(m, int(num), []byte(s))
		default:
			if depth > 0 {
				m = pbBytes(m, int(num), randMsg(rng, depth-1))
			}
		}
	}
	if rng.IntN(8) == 0 && len(m) > 0 {
		m = m[:rng.IntN(len(m))]
	}
	return m
}

// TestProtoRenderAsBefore: the one-read renderer renders as the former.
func TestProtoRenderAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 20000 {
		var m []byte
		if n%4 == 0 {
			m = make([]byte, rng.IntN(24))
			for i := range m {
				m[i] = byte(rng.IntN(256))
			}
		} else {
			m = randMsg(rng, 20)
		}
		depth := rng.IntN(3)
		want := oldAppendProto([]byte("x"), m, depth)
		if got := appendProto([]byte("x"), m, depth); !bytes.Equal(got, want) {
			t.Fatalf("% x:\n got %q\nwant %q", m, got, want)
		}
	}
}

// oldDecoder is the block decoder before this package had its own: x/net's
// fed one field at a time, placeholders written as literals.
type oldDecoder struct {
	dec     *hpack.Decoder
	max     int
	fields  []string
	listLen int
	over    bool
	mute    bool
}

func newOldDecoder(max int) *oldDecoder {
	d := &oldDecoder{max: max}
	d.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if d.mute {
			return
		}
		d.listLen += len(f.Name) + len(f.Value) + 32
		if d.listLen > d.max {
			d.over = true
			return
		}
		d.fields = append(d.fields, f.Name+": "+f.Value)
	})
	d.dec.SetMaxStringLength(max)
	d.dec.SetAllowedMaxDynamicTableSize(maxTableSize)
	return d
}

func (d *oldDecoder) block(p []byte) (fields []string, partial bool) {
	d.fields, d.listLen, d.over = nil, 0, false
	for len(p) > 0 {
		n, ok := fieldLen(p)
		if !ok {
			d.dec.Close()
			return d.fields, true
		}
		f := p[:n]
		p = p[n:]
		if _, err := d.dec.Write(f); err == nil {
			continue
		}
		d.dec.Close()
		partial = true
		if f[0]&0xc0 == 0x40 {
			synth := []byte{0x40, 1, '?'}
			if v, ok := valueOf(f); ok {
				synth = append(synth, v...)
			} else {
				synth = append(synth, 0)
			}
			d.mute = true
			if _, err := d.dec.Write(synth); err != nil {
				d.dec.Close()
				d.dec.Write([]byte{0x40, 1, '?', 0})
				d.dec.Close()
			}
			d.mute = false
		}
	}
	if err := d.dec.Close(); err != nil {
		partial = true
	}
	return d.fields, partial || d.over
}

// TestHPACKAsBefore: on valid blocks and damaged ones (bytes changed, cut,
// inserted; unknown indexes; bad Huffman; strings over the limit) the
// decoder gives the fields and partial flags the former one gave.
func TestHPACKAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	names := []string{":method", ":path", "content-type", "x-custom", "X-Upper", "grpc-status", "te", "cookie"}
	values := []string{"GET", "/a/b?c=d", "200", "application/grpc", "trailers", "", "0", "caf\xc3\xa9", strings.Repeat("v", 90), strings.Repeat("w", 400)}
	for round := range 1000 {
		max := []int{20, 64, 256, 1024, 64 << 10}[round%5]
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		var blocks [][]byte
		for range 25 {
			buf.Reset()
			for range rng.IntN(10) {
				v := values[rng.IntN(len(values))]
				if rng.IntN(3) == 0 {
					v += strconv.Itoa(rng.IntN(50))
				}
				enc.WriteField(hpack.HeaderField{Name: names[rng.IntN(len(names))], Value: v, Sensitive: rng.IntN(8) == 0})
			}
			b := bytes.Clone(buf.Bytes())
			switch rng.IntN(6) {
			case 0:
				if len(b) > 0 {
					b[rng.IntN(len(b))] = byte(rng.IntN(256))
				}
			case 1:
				if len(b) > 0 {
					b = b[:rng.IntN(len(b))]
				}
			case 2:
				i := rng.IntN(len(b) + 1)
				b = slices.Insert(b, i, byte(rng.IntN(256)), byte(rng.IntN(256)))
			case 3:
				if rng.IntN(4) == 0 {
					b = append([]byte{0x20 | byte(rng.IntN(32))}, b...) // a size update
				}
			case 4:
				if rng.IntN(3) == 0 {
					b = make([]byte, rng.IntN(30))
					for i := range b {
						b[i] = byte(rng.IntN(256))
					}
				}
			}
			blocks = append(blocks, b)
		}
		old := newOldDecoder(max)
		got, partial := decodeAll(t, max, blocks)
		for i, b := range blocks {
			want, wantPartial := old.block(b)
			if partial[i] != wantPartial || !slices.Equal(got[i], want) {
				t.Fatalf("round %d block %d % x (max %d):\n got %q partial %v\nwant %q partial %v", round, i, b, max, got[i], partial[i], want, wantPartial)
			}
		}
	}
}

// TestHPACKEvictedInBlock: a field refers to an entry that a later field
// of the same block evicts (and whose slot it reuses): the list still has
// the entry's strings.
func TestHPACKEvictedInBlock(t *testing.T) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	var blocks [][]byte
	for i := range 20 {
		enc.WriteField(hpack.HeaderField{Name: "x-" + strconv.Itoa(i), Value: strings.Repeat("v", 150)})
	}
	blocks = append(blocks, bytes.Clone(buf.Bytes()))
	buf.Reset()
	var want []string
	for i := range 20 {
		// Each indexed, then many new entries push all of them out.
		enc.WriteField(hpack.HeaderField{Name: "x-" + strconv.Itoa(i), Value: strings.Repeat("v", 150)})
		want = append(want, "x-"+strconv.Itoa(i)+": "+strings.Repeat("v", 150))
	}
	for i := range 40 {
		v := strings.Repeat(string(rune('a'+i%26)), 200)
		enc.WriteField(hpack.HeaderField{Name: "y-" + strconv.Itoa(i), Value: v})
		want = append(want, "y-"+strconv.Itoa(i)+": "+v)
	}
	blocks = append(blocks, bytes.Clone(buf.Bytes()))
	got, partial := decodeAll(t, 1<<20, blocks)
	if partial[1] || !slices.Equal(got[1], want) {
		t.Fatalf("partial %v\n got %q\nwant %q", partial[1], got[1], want)
	}
}

// TestHeaderNamesLowered: names come out lower-case however they were
// sent: literal, indexed from the dynamic table, not indexed.
func TestHeaderNamesLowered(t *testing.T) {
	v := newConv(true)
	for _, sid := range []uint32{1, 3} {
		blk := v.block(true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "X-Upper", "v", "x-\xc3\x89t\xc3\xa9", "w")
		var buf bytes.Buffer
		hpack.NewEncoder(&buf).WriteField(hpack.HeaderField{Name: "X-Never", Value: "n", Sensitive: true})
		blk = append(blk, buf.Bytes()...)
		v.frames(true, func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: blk, EndStream: true, EndHeaders: true})
		})
		v.headers(false, sid, true, ":status", "204")
	}
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 2 {
			t.Fatalf("%d entries", len(es))
		}
		for _, e := range es {
			if e.Request.Header("x-upper") != "v" || e.Request.Header("x-\xc3\xa9t\xc3\xa9") != "w" || e.Request.Header("x-never") != "n" {
				t.Errorf("headers %q", e.Request.Headers)
			}
		}
	})
}
