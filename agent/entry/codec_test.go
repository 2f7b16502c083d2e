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
