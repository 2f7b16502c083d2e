package entry

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func rich() *Entry {
	t := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)
	return &Entry{
		ID: "node-a-m3x-42", Time: t, Protocol: ProtoHTTP, HTTPVersion: "1.1",
		Src: Endpoint{IP: netip.MustParseAddr("10.0.0.1"), Port: 40000,
			Who: &Identity{Pod: "web-1", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment", Node: "n1"}},
		Dst:    Endpoint{IP: netip.MustParseAddr("fe80::1%eth0"), Port: 8080},
		Method: "POST", Path: "/api/cart?id=7", Status: 503, Failed: true,
		Latency: 1500 * time.Microsecond,
		Request: &Message{Headers: []Header{{"host", "cart"}, {"content-type", "application/json"}},
			Body: []byte(`{"a":1}`), BodyBytes: 7, Start: t, End: t.Add(time.Millisecond)},
		Response: &Message{Headers: []Header{{"server", "envoy"}}, Trailers: []Header{{"x-t", "1"}},
			Body: []byte("unavailable"), BodyBytes: 2 << 20, Truncated: true, Start: t.Add(time.Millisecond)},
		Incomplete: true, Notes: []string{"gap in response body", "100-continue"},
		ConnID: 99, Node: "node-a",
	}
}

// normal makes an entry comparable with its unpacked copy: times without
// location or monotonic reading, empty slices nil.
func normal(e *Entry) *Entry {
	c := *e
	tm := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return time.Unix(0, t.UnixNano())
	}
	c.Time = tm(c.Time)
	if len(c.Notes) == 0 {
		c.Notes = nil
	}
	for _, m := range []**Message{&c.Request, &c.Response} {
		if *m == nil {
			continue
		}
		x := **m
		x.Start, x.End = tm(x.Start), tm(x.End)
		if len(x.Headers) == 0 {
			x.Headers = nil
		}
		if len(x.Trailers) == 0 {
			x.Trailers = nil
		}
		if len(x.Body) == 0 {
			x.Body = nil
		}
		*m = &x
	}
	return &c
}

func TestPackedRoundTrip(t *testing.T) {
	only := func(f func(*Entry)) *Entry { e := rich(); f(e); return e }
	for name, e := range map[string]*Entry{
		"everything":       rich(),
		"zero":             {},
		"request only":     only(func(e *Entry) { e.Response = nil }),
		"response only":    only(func(e *Entry) { e.Request = nil; e.Time = time.Time{} }),
		"IPv4 without who": only(func(e *Entry) { e.Src.Who = nil; e.Dst = EndpointAt(netip.MustParseAddrPort("[::ffff:1.2.3.4]:53")) }),
		"negative status":  only(func(e *Entry) { e.Status = -1; e.Latency = -5 }),
	} {
		b := AppendPacked(nil, e)
		got, err := Unpack(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := normal(e); !reflect.DeepEqual(normal(got), want) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, normal(got), want)
		}
		// Every cut is an error, never a panic.
		for i := range b {
			if _, err := Unpack(b[:i]); err == nil {
				t.Errorf("%s: cut at %d of %d unpacked without error", name, i, len(b))
			}
		}
	}
}

// FuzzUnpack: arbitrary bytes unpack or fail, never panic; what unpacks
// packs back to the same bytes.
func FuzzUnpack(f *testing.F) {
	f.Add(AppendPacked(nil, rich()))
	f.Add(AppendPacked(nil, &Entry{}))
	f.Add([]byte(strings.Repeat("\x01\xff", 20)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unpack(b)
		if err != nil {
			return
		}
		again, err := Unpack(AppendPacked(nil, e))
		if err != nil {
			t.Fatalf("repacked entry does not unpack: %v", err)
		}
		if !reflect.DeepEqual(normal(again), normal(e)) {
			t.Fatalf("repack changed the entry:\n%+v\n%+v", normal(again), normal(e))
		}
	})
}

func TestSummaryReader(t *testing.T) {
	var d SummaryReader
	noWho := rich()
	noWho.Src.Who, noWho.Dst.Who = nil, nil
	// One reader across entries: an identity or a field left from the
	// previous entry must not leak into the next.
	for i, e := range []*Entry{rich(), noWho, {}, rich()} {
		b := AppendPacked(nil, e)
		n := SummaryLen(b)
		if e.Request != nil && n >= len(b) {
			t.Errorf("%d: summary length %d of %d bytes", i, n, len(b))
		}
		// The summary alone reads as the whole packed entry does.
		if _, err := d.Read(b); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		got, err := d.Read(b[:n])
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		want := normal(e)
		want.Notes, want.Request, want.Response = nil, nil, nil
		if !reflect.DeepEqual(normal(got), want) {
			t.Errorf("%d: summary\n got %+v\nwant %+v", i, normal(got), want)
		}
		if e.Src.Who != nil && *got.Src.Ident() != *e.Src.Who {
			t.Errorf("%d: src identity %+v, want %+v", i, got.Src.Ident(), e.Src.Who)
		}
	}
	b := AppendPacked(nil, rich())
	if _, err := d.Read([]byte{9}); err == nil {
		t.Error("bad version read without error")
	}
	// A cut before the end of the endpoints is an error; the messages are
	// not read, so a cut after them is not noticed.
	if _, err := d.Read(b[:20]); err == nil {
		t.Error("cut entry read without error")
	}
	if _, err := d.Read(b[:SummaryLen(b)-1]); err == nil {
		t.Error("cut summary read without error")
	}
	if n := SummaryLen([]byte{9, 9, 9}); n != 3 {
		t.Errorf("SummaryLen of junk = %d, want its length", n)
	}
}

func BenchmarkUnpack(b *testing.B) {
	p := AppendPacked(nil, rich())
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Unpack(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("summary", func(b *testing.B) {
		var d SummaryReader
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Read(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
