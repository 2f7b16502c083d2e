package http2

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

type step struct {
	client bool
	data   []byte
}

// conv builds a conversation with x/net's Framer and hpack Encoders.
type conv struct {
	steps      []step
	enc        [2]*hpack.Encoder // 0 client, 1 server
	hbuf       [2]bytes.Buffer
	noSettings bool
}

func newConv(preface bool) *conv {
	v := &conv{}
	for i := range v.enc {
		v.enc[i] = hpack.NewEncoder(&v.hbuf[i])
	}
	if preface {
		v.raw(true, []byte(http2.ClientPreface))
		v.frames(true, func(fr *http2.Framer) { fr.WriteSettings() })
		v.frames(false, func(fr *http2.Framer) {
			fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
		})
		v.frames(true, func(fr *http2.Framer) { fr.WriteSettingsAck() })
		v.frames(false, func(fr *http2.Framer) { fr.WriteSettingsAck() })
	}
	return v
}

// streams returns the bytes each direction carries, in order.
func (v *conv) streams() (c2s, s2c []byte) {
	for _, s := range v.steps {
		if s.client {
			c2s = append(c2s, s.data...)
		} else {
			s2c = append(s2c, s.data...)
		}
	}
	return c2s, s2c
}

func (v *conv) raw(client bool, b []byte) {
	v.steps = append(v.steps, step{client, b})
}

func (v *conv) frames(client bool, f func(fr *http2.Framer)) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.AllowIllegalWrites = true
	f(fr)
	v.raw(client, buf.Bytes())
}

// block encodes header fields given as name, value pairs.
func (v *conv) block(client bool, kv ...string) []byte {
	i := 1
	if client {
		i = 0
	}
	v.hbuf[i].Reset()
	for j := 0; j+1 < len(kv); j += 2 {
		v.enc[i].WriteField(hpack.HeaderField{Name: kv[j], Value: kv[j+1]})
	}
	return bytes.Clone(v.hbuf[i].Bytes())
}

func (v *conv) headers(client bool, sid uint32, end bool, kv ...string) {
	blk := v.block(client, kv...)
	v.frames(client, func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: blk, EndStream: end, EndHeaders: true})
	})
}

func (v *conv) data(client bool, sid uint32, end bool, b []byte) {
	v.frames(client, func(fr *http2.Framer) { fr.WriteData(sid, end, b) })
}

func (v *conv) get(sid uint32, path string) {
	v.headers(true, sid, true, ":method", "GET", ":scheme", "http", ":authority", "shop.local", ":path", path, "user-agent", "test/1")
}

func grpcFrame(compressed bool, msg []byte) []byte {
	out := make([]byte, 5, 5+len(msg))
	if compressed {
		out[0] = 1
	}
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

var (
	local  = netip.MustParseAddrPort("10.0.0.1:40000")
	remote = netip.MustParseAddrPort("10.0.0.2:8080")
)

// run feeds the conversation in one of the split modes and returns the
// entries. mode 0: whole steps; 1: byte by byte; 2+: random splits.
func run(t testing.TB, v *conv, role tcp.Role, mode int, cfg Config) ([]*entry.Entry, *Stats) {
	t.Helper()
	return runWith(t, v, role, mode, func(info *tcp.ConnInfo, emit func(*entry.Entry), st *Stats) tcp.Handler {
		return New(cfg, info, emit, st)
	})
}

// runWith is run with the handler mk makes.
func runWith(t testing.TB, v *conv, role tcp.Role, mode int, mk func(*tcp.ConnInfo, func(*entry.Entry), *Stats) tcp.Handler) ([]*entry.Entry, *Stats) {
	t.Helper()
	st := new(Stats)
	var out []*entry.Entry
	h := mk(&tcp.ConnInfo{ID: 7, Local: local, Remote: remote, Role: role}, func(e *entry.Entry) { out = append(out, e) }, st)
	rng := rand.New(rand.NewPCG(uint64(mode), 1))
	t0 := time.Unix(1000, 0)
	for i, s := range v.steps {
		dir := tcp.Ingress
		if s.client == (role != tcp.RoleServer) {
			dir = tcp.Egress
		}
		at := t0.Add(time.Duration(i) * time.Millisecond)
		b := s.data
		for len(b) > 0 {
			n := len(b)
			switch {
			case mode == 1:
				n = 1
			case mode >= 2:
				n = 1 + rng.IntN(len(b))
			}
			h.Data(dir, slices.Clone(b[:n]), at)
			b = b[n:]
		}
	}
	h.End(tcp.EndFIN, t0.Add(time.Hour))
	return out, st
}

// each runs check on the conversation fed in several ways and roles.
func each(t *testing.T, v *conv, check func(t *testing.T, es []*entry.Entry, st *Stats)) {
	for _, role := range []tcp.Role{tcp.RoleClient, tcp.RoleServer, tcp.RoleUnknown} {
		for mode := range 5 {
			es, st := run(t, v, role, mode, Config{})
			check(t, es, st)
			if t.Failed() {
				t.Fatalf("failed with role %d mode %d", role, mode)
			}
			for _, e := range es {
				wantSrc, wantDst := local, remote
				if role == tcp.RoleServer {
					wantSrc, wantDst = remote, local
				}
				if e.Src.Port != wantSrc.Port() || e.Dst.Port != wantDst.Port() {
					t.Fatalf("role %d: src %v dst %v", role, e.Src, e.Dst)
				}
			}
		}
	}
}

func one(t *testing.T, es []*entry.Entry) *entry.Entry {
	t.Helper()
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}
	return es[0]
}

func TestGet(t *testing.T) {
	v := newConv(true)
	v.get(1, "/api/cart?x=1")
	v.headers(false, 1, false, ":status", "200", "content-type", "application/json")
	v.data(false, 1, true, []byte(`{"items":[]}`))
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if e.Protocol != "http" || e.HTTPVersion != "2" || e.Method != "GET" || e.Path != "/api/cart?x=1" || e.Status != 200 || e.Failed || e.Incomplete {
			t.Errorf("entry %+v", e)
		}
		if got := e.Request.Header("host"); got != "shop.local" {
			t.Errorf("host %q", got)
		}
		if e.Request.Header("user-agent") != "test/1" || e.Request.Header(":path") != "" {
			t.Errorf("request headers %v", e.Request.Headers)
		}
		if string(e.Response.Body) != `{"items":[]}` || e.Response.Header("content-type") != "application/json" {
			t.Errorf("response %+v", e.Response)
		}
		if e.Latency != 2*time.Millisecond { // request at step 5, response end at step 7
			t.Errorf("latency %v", e.Latency)
		}
		if st.Entries.Load() != 1 || st.Malformed.Load() != 0 || st.HPACKErrors.Load() != 0 {
			t.Errorf("stats %v", st.Snapshot())
		}
	})
}

func TestPostThreeData(t *testing.T) {
	v := newConv(true)
	v.headers(true, 1, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/upload", "content-type", "text/plain")
	v.data(true, 1, false, []byte("one,"))
	v.frames(true, func(fr *http2.Framer) { fr.WriteDataPadded(1, false, []byte("two,"), make([]byte, 7)) })
	v.data(true, 1, true, []byte("three"))
	v.headers(false, 1, false, ":status", "503")
	v.data(false, 1, true, []byte("busy"))
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if e.Method != "POST" || string(e.Request.Body) != "one,two,three" || e.Request.BodyBytes != 13 || e.Status != 503 || !e.Failed {
			t.Errorf("entry %+v req %+v", e, e.Request)
		}
	})
	// Body limit.
	es, _ := run(t, v, tcp.RoleClient, 2, Config{MaxBodyBytes: 5})
	e := one(t, es)
	if string(e.Request.Body) != "one,t" || !e.Request.Truncated || e.Request.BodyBytes != 13 {
		t.Errorf("limited request %+v", e.Request)
	}
}

func TestMultiplexed(t *testing.T) {
	v := newConv(true)
	for _, sid := range []uint32{1, 3, 5} {
		v.get(sid, "/s/"+string(rune('0'+sid)))
	}
	v.headers(false, 5, false, ":status", "200")
	v.headers(false, 1, false, ":status", "404")
	v.data(false, 5, false, []byte("five-a "))
	v.headers(false, 3, false, ":status", "201")
	v.data(false, 1, true, []byte("one"))
	v.data(false, 3, true, []byte("three"))
	v.data(false, 5, true, []byte("five-b"))
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 3 {
			t.Fatalf("%d entries", len(es))
		}
		want := []struct {
			path   string
			status int32
			body   string
		}{{"/s/1", 404, "one"}, {"/s/3", 201, "three"}, {"/s/5", 200, "five-a five-b"}}
		for i, w := range want {
			e := es[i]
			if e.Path != w.path || e.Status != w.status || string(e.Response.Body) != w.body {
				t.Errorf("entry %d: %s %d %q", i, e.Path, e.Status, e.Response.Body)
			}
		}
	})
}

func TestTrailers(t *testing.T) {
	v := newConv(true)
	v.get(1, "/t")
	v.headers(false, 1, false, ":status", "200", "trailer", "x-checksum")
	v.data(false, 1, false, []byte("body"))
	v.headers(false, 1, true, "x-checksum", "abc123")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if len(e.Response.Trailers) != 1 || e.Response.Trailers[0] != (entry.Header{Name: "x-checksum", Value: "abc123"}) || e.Response.Header("x-checksum") != "" {
			t.Errorf("trailers %v headers %v", e.Response.Trailers, e.Response.Headers)
		}
	})
}

func TestRSTStream(t *testing.T) {
	v := newConv(true)
	v.get(1, "/slow")
	v.get(3, "/fast")
	v.frames(true, func(fr *http2.Framer) { fr.WriteRSTStream(1, http2.ErrCodeCancel) })
	v.headers(false, 3, true, ":status", "204")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 2 || es[0].Path != "/slow" || !slices.Contains(es[0].Notes, "reset: CANCEL") || es[0].Response != nil {
			t.Fatalf("entries %+v", es)
		}
		if es[1].Status != 204 || st.Resets.Load() != 1 {
			t.Errorf("second %+v stats %v", es[1], st.Snapshot())
		}
	})
}

func TestGoAway(t *testing.T) {
	v := newConv(true)
	v.get(1, "/a")
	v.get(3, "/b")
	v.get(5, "/c")
	v.frames(false, func(fr *http2.Framer) { fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye")) })
	v.headers(false, 1, true, ":status", "200")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 3 || es[0].Path != "/b" || es[1].Path != "/c" || es[2].Path != "/a" || es[2].Status != 200 {
			t.Fatalf("entries %+v", es)
		}
		if !slices.Contains(es[0].Notes, "goaway: not processed (NO_ERROR)") || st.GoAways.Load() != 1 {
			t.Errorf("notes %v", es[0].Notes)
		}
	})
}

func TestEndIncomplete(t *testing.T) {
	v := newConv(true)
	v.get(1, "/hang")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if !e.Incomplete || e.Response != nil || st.Incomplete.Load() != 1 {
			t.Errorf("entry %+v", e)
		}
	})
}

// pb builds protobuf wire bytes.
func pbVarint(b []byte, num int, v uint64) []byte {
	b = binary.AppendUvarint(b, uint64(num)<<3)
	return binary.AppendUvarint(b, v)
}

func pbBytes(b []byte, num int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(num)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func sampleMsg() []byte {
	m := pbBytes(nil, 1, []byte("hello"))
	m = pbVarint(m, 2, 42)
	return pbBytes(m, 3, pbVarint(nil, 1, 7))
}

const sampleTree = "1: \"hello\"\n2: 42\n3 {\n  1: 7\n}"

func TestProtoRender(t *testing.T) {
	if got := string(appendProto(nil, sampleMsg(), 0)); got != sampleTree+"\n" {
		t.Errorf("got %q", got)
	}
	m := binary.AppendUvarint(nil, 4<<3|5)
	m = binary.LittleEndian.AppendUint32(m, 0x3f800000)
	m = binary.AppendUvarint(m, 5<<3|1)
	m = binary.LittleEndian.AppendUint64(m, 1)
	m = pbBytes(m, 6, []byte{0xff, 0x00, 0xfe})
	want := "4: 0x3f800000\n5: 0x0000000000000001\n6: 0xff00fe\n"
	if got := string(appendProto(nil, m, 0)); got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if got := string(appendProto(nil, []byte{0xff}, 0)); got != "0xff\n" {
		t.Errorf("not a message: %q", got)
	}
}

func grpcCall(v *conv, sid uint32, path string, extra ...string) {
	kv := append([]string{":method", "POST", ":scheme", "http", ":authority", "svc:50051", ":path", path,
		"content-type", "application/grpc", "te", "trailers"}, extra...)
	v.headers(true, sid, false, kv...)
}

func TestGRPCUnary(t *testing.T) {
	v := newConv(true)
	grpcCall(v, 1, "/shop.Cart/Get")
	v.data(true, 1, true, grpcFrame(false, pbBytes(nil, 1, []byte("u1"))))
	v.headers(false, 1, false, ":status", "200", "content-type", "application/grpc")
	v.data(false, 1, false, grpcFrame(false, sampleMsg()))
	v.headers(false, 1, true, "grpc-status", "0")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if e.Protocol != "grpc" || e.Method != "/shop.Cart/Get" || e.Path != "/shop.Cart/Get" || e.Status != 0 || e.Failed {
			t.Errorf("entry %+v", e)
		}
		if string(e.Request.Body) != `1: "u1"` || string(e.Response.Body) != sampleTree {
			t.Errorf("bodies %q %q", e.Request.Body, e.Response.Body)
		}
		if !slices.Contains(e.Notes, "messages: 1 sent, 1 received") {
			t.Errorf("notes %v", e.Notes)
		}
	})
}

func TestGRPCError(t *testing.T) {
	v := newConv(true)
	grpcCall(v, 1, "/shop.Cart/Get")
	v.data(true, 1, true, grpcFrame(false, nil))
	v.headers(false, 1, false, ":status", "200", "content-type", "application/grpc")
	v.headers(false, 1, true, "grpc-status", "5", "grpc-message", "cart%20not%20found")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if e.Status != 5 || !e.Failed || !slices.Contains(e.Notes, "grpc-message: cart not found") {
			t.Errorf("entry %+v", e)
		}
	})
}

func TestGRPCTrailersOnly(t *testing.T) {
	v := newConv(true)
	grpcCall(v, 1, "/shop.Cart/Put")
	v.data(true, 1, true, grpcFrame(false, pbVarint(nil, 1, 1)))
	v.headers(false, 1, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "7", "grpc-message", "denied")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if e.Status != 7 || !e.Failed || !slices.Contains(e.Notes, "grpc-message: denied") || len(e.Response.Body) != 0 {
			t.Errorf("entry %+v", e)
		}
	})
}

func TestGRPCServerStreaming(t *testing.T) {
	v := newConv(true)
	grpcCall(v, 1, "/shop.Feed/Watch")
	v.data(true, 1, true, grpcFrame(false, pbVarint(nil, 1, 9)))
	v.headers(false, 1, false, ":status", "200", "content-type", "application/grpc")
	for i := range 5 {
		v.data(false, 1, false, grpcFrame(false, pbVarint(nil, 1, uint64(100+i))))
	}
	v.headers(false, 1, true, "grpc-status", "0")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if !slices.Contains(e.Notes, "messages: 1 sent, 5 received") {
			t.Errorf("notes %v", e.Notes)
		}
		body := string(e.Response.Body)
		if strings.Count(body, "# message ") != 5 || !strings.Contains(body, "# message 5 (2 bytes)\n1: 104") || e.Response.Truncated {
			t.Errorf("body %q", body)
		}
	})
	// Only the first two kept.
	es, _ := run(t, v, tcp.RoleClient, 3, Config{MaxGRPCMessages: 2})
	e := one(t, es)
	if body := string(e.Response.Body); strings.Count(body, "# message ") != 2 || strings.Contains(body, "102") || !e.Response.Truncated {
		t.Errorf("kept 2: %q", body)
	}
}

func TestGRPCGzip(t *testing.T) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(sampleMsg())
	zw.Close()
	v := newConv(true)
	grpcCall(v, 1, "/shop.Cart/Get", "grpc-encoding", "gzip")
	v.data(true, 1, true, grpcFrame(true, zb.Bytes()))
	v.headers(false, 1, false, ":status", "200", "content-type", "application/grpc+proto", "grpc-encoding", "gzip")
	v.data(false, 1, false, grpcFrame(true, zb.Bytes()))
	v.headers(false, 1, true, "grpc-status", "0")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if string(e.Request.Body) != sampleTree || string(e.Response.Body) != sampleTree {
			t.Errorf("bodies %q %q", e.Request.Body, e.Response.Body)
		}
	})
}

func TestHTTPGzip(t *testing.T) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte("plain text body"))
	zw.Close()
	v := newConv(true)
	v.get(1, "/z")
	v.headers(false, 1, false, ":status", "200", "content-encoding", "gzip")
	v.data(false, 1, true, zb.Bytes())
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if string(e.Response.Body) != "plain text body" || e.Response.BodyBytes != int64(zb.Len()) {
			t.Errorf("body %q", e.Response.Body)
		}
	})
}

// TestMidStream: the capture begins after the encoders filled their
// dynamic tables.
func TestMidStream(t *testing.T) {
	v := newConv(false)
	// Before capture: fill both tables.
	v.block(true, ":method", "GET", ":path", "/old", ":authority", "shop.local", "x-tenant", "acme")
	v.block(false, ":status", "200", "x-served-by", "pod-a")
	v.steps = nil
	// Captured: headers using those indexes, then a stream with new literals.
	v.get(7, "/old")
	v.headers(false, 7, false, ":status", "200", "x-served-by", "pod-a")
	v.data(false, 7, true, []byte("old"))
	v.headers(true, 9, true, ":method", "GET", ":scheme", "http", ":authority", "new.local", ":path", "/fresh", "x-new", "yes")
	v.headers(false, 9, true, ":status", "202", "x-new-resp", "1")
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 2 {
			t.Fatalf("%d entries", len(es))
		}
		e := es[0]
		if !e.Incomplete || !slices.Contains(e.Notes, noteMidStream) || e.Method != "GET" || e.Status != 200 || string(e.Response.Body) != "old" {
			t.Errorf("first %+v", e)
		}
		e = es[1]
		if e.Incomplete || e.Path != "/fresh" || e.Status != 202 || e.Request.Header("x-new") != "yes" || e.Request.Header("host") != "new.local" || e.Response.Header("x-new-resp") != "1" {
			t.Errorf("second %+v %+v", e, e.Request)
		}
		if st.HPACKErrors.Load() == 0 {
			t.Errorf("stats %v", st.Snapshot())
		}
	})
}

func TestGarbageAfterPreface(t *testing.T) {
	v := newConv(false)
	v.raw(true, []byte(http2.ClientPreface+"hello world, this is not a frame at all\r\n"))
	v.raw(false, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	each(t, v, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 0 || st.Malformed.Load() == 0 {
			t.Errorf("%d entries, stats %v", len(es), st.Snapshot())
		}
	})
}

func TestMaxStreams(t *testing.T) {
	v := newConv(true)
	for sid := uint32(1); sid <= 9; sid += 2 {
		v.get(sid, "/")
	}
	es, st := run(t, v, tcp.RoleClient, 0, Config{MaxStreams: 3})
	if len(es) != 3 || st.Streams.Load() != 5 || st.Malformed.Load() != 2 {
		t.Errorf("%d entries, stats %v", len(es), st.Snapshot())
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Verdict
	}{
		{"", NeedMore},
		{"PRI", NeedMore},
		{"PRI * HTTP/2.0\r\n", Yes},
		{http2.ClientPreface, Yes},
		{"POST / HTTP/1.1", No},
		{"\x00\x00\x06\x04\x00\x00\x00\x00\x00", Yes},
		{"\x00\x00\x06\x04", NeedMore},
		{"\x00\x00\x05\x04\x00\x00\x00\x00\x00", No},
		{"\x00\x00\x06\x01\x00\x00\x00\x00\x01", No},
		{"*1\r\n$4\r\nPING\r\n", No},
	} {
		if got := Detect([]byte(c.in)); got != c.want {
			t.Errorf("Detect(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Detect([]byte(http2.ClientPreface)) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
