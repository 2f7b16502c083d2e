package store

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/filter"
)

// benchEntry is a typical HTTP entry of about 1 KiB by Size.
func benchEntry(i int) *entry.Entry {
	return &entry.Entry{
		Time:     t0.Add(time.Duration(i)*time.Millisecond - time.Duration(i%5)*3*time.Millisecond),
		Protocol: entry.ProtoHTTP, HTTPVersion: "1.1",
		Src:    entry.Endpoint{IP: netip.MustParseAddr("10.0.0.1"), Port: 40000, Who: &entry.Identity{Pod: "web-1", Namespace: "front", Workload: "web"}},
		Dst:    entry.Endpoint{IP: netip.MustParseAddr("10.0.0.2"), Port: 8080, Who: &entry.Identity{Pod: "cart-1", Namespace: "shop", Workload: "cart"}},
		Method: "GET", Path: "/api/cart", Status: int32(200 + 300*(i%100/99)), Latency: time.Millisecond,
		Request:  &entry.Message{Headers: []entry.Header{{Name: "host", Value: "cart"}, {Name: "user-agent", Value: "curl/8.5"}}},
		Response: &entry.Message{Headers: []entry.Header{{Name: "content-type", Value: "application/json"}}, Body: make([]byte, 512)},
	}
}

// BenchmarkAdd measures Add at steady state: every Add evicts.
func BenchmarkAdd(b *testing.B) {
	const keep = 100_000
	size := int64(benchEntry(0).Size() + 16)
	s := New(Config{Node: "node-1", MaxBytes: keep * size})
	for i := range keep * 2 {
		s.Add(benchEntry(i))
	}
	// Entries are reused once the store has evicted them (the ring is
	// larger than what the store keeps), so only Add is measured.
	ents := make([]*entry.Entry, 1<<18)
	for i := range ents {
		ents[i] = benchEntry(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := ents[i&(len(ents)-1)]
		e.ID, e.Node = "", ""
		e.Time = t0.Add(time.Duration(keep*2+i) * time.Millisecond)
		s.Add(e)
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	if st := s.Stats(); st.Evicted == 0 {
		b.Fatal("no evictions")
	}
}

// BenchmarkQuery finds the newest 100 failed entries (1% of all) among 1M,
// with a compiled filter, from the newest end and from the middle (To).
func BenchmarkQuery(b *testing.B) {
	const n = 1_000_000
	s := New(Config{Node: "node-1", MaxBytes: 1 << 40})
	for i := range n {
		s.Add(benchEntry(i))
	}
	f, err := filter.Compile(`http && status >= 500`)
	if err != nil {
		b.Fatal(err)
	}
	goMatch := func(e *entry.Entry) bool { return e.Protocol == entry.ProtoHTTP && e.Status >= 500 }
	for _, tc := range []struct {
		name  string
		to    time.Time
		match func(*entry.Entry) bool
	}{
		{"newest", time.Time{}, f.Match},
		{"to-middle", t0.Add(n / 2 * time.Millisecond), f.Match},
		{"newest-gofunc", time.Time{}, goMatch},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got := 0
				s.Query(Query{To: tc.to, Limit: 100, Match: tc.match}, func(*entry.Entry) bool {
					got++
					return true
				})
				if got != 100 {
					b.Fatal(fmt.Sprint("got ", got))
				}
			}
		})
	}
}
