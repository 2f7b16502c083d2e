package http2

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// benchConv: 200 streams, half plain HTTP GETs with a 1 KiB JSON response,
// half unary gRPC calls, as a browser or a gRPC client would send them.
func benchConv() (*conv, int) {
	v := newConv(true)
	body := bytes.Repeat([]byte(`{"id":1,"name":"x"},`), 50)
	n := 0
	for i := range 200 {
		sid := uint32(2*i + 1)
		if i%2 == 0 {
			v.get(sid, fmt.Sprintf("/api/items/%d", i))
			v.headers(false, sid, false, ":status", "200", "content-type", "application/json", "server", "envoy")
			v.data(false, sid, true, body)
		} else {
			grpcCall(v, sid, "/shop.Cart/Get")
			v.data(true, sid, true, grpcFrame(false, sampleMsg()))
			v.headers(false, sid, false, ":status", "200", "content-type", "application/grpc")
			v.data(false, sid, false, grpcFrame(false, sampleMsg()))
			v.headers(false, sid, true, "grpc-status", "0")
		}
		n++
	}
	return v, n
}

func BenchmarkHTTP2(b *testing.B) {
	v, streams := benchConv()
	total := 0
	for _, s := range v.steps {
		total += len(s.data)
	}
	b.Run("podwire", func(b *testing.B) {
		st := new(Stats)
		n := 0
		emit := func(*entry.Entry) { n++ }
		t0 := time.Unix(1, 0)
		b.SetBytes(int64(total))
		b.ReportAllocs()
		for b.Loop() {
			h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, emit, st)
			for _, s := range v.steps {
				dir := tcp.Ingress
				if s.client {
					dir = tcp.Egress
				}
				h.Data(dir, s.data, t0)
			}
			h.End(tcp.EndFIN, t0)
		}
		b.StopTimer()
		if n != b.N*streams || st.Malformed.Load() != 0 || st.Incomplete.Load() != 0 {
			b.Fatalf("%d entries for %d runs of %d (stats %v)", n, b.N, streams, st.Snapshot())
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
	})

	// xnet: x/net's Framer and hpack.Decoder merely decoding the same bytes.
	b.Run("xnet", func(b *testing.B) {
		c2s, s2c := v.streams()
		c2s = c2s[len(http2.ClientPreface):]
		b.SetBytes(int64(total))
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range [][]byte{c2s, s2c} {
				fr := http2.NewFramer(nil, bytes.NewReader(p))
				dec := hpack.NewDecoder(4096, nil)
				for {
					f, err := fr.ReadFrame()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if hf, ok := f.(*http2.HeadersFrame); ok {
						if _, err := dec.DecodeFull(hf.HeaderBlockFragment()); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		}
		b.ReportMetric(float64(streams*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
