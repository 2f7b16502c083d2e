package dns

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"golang.org/x/net/dns/dnsmessage"
)

// BenchmarkDNS parses recorded A/AAAA lookups (compressed answers, some
// CNAMEs, EDNS) through Tracker.Datagram, building every entry.
func BenchmarkDNS(b *testing.B) {
	type dg struct {
		src, dst netip.AddrPort
		b        []byte
	}
	var rec []dg
	size := 0
	for i := range 1000 {
		n := fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local.", i%97, i%13)
		t := dnsmessage.TypeA
		if i%2 == 1 {
			t = dnsmessage.TypeAAAA
		}
		qm := q(uint16(i*7919), n, t, opt(1232, false, 0))
		var ans []dnsmessage.Resource
		if i%5 == 0 {
			ans = append(ans, rr(n, 30, &dnsmessage.CNAMEResource{CNAME: name("lb." + n)}))
			n = "lb." + n
		}
		for k := range 1 + i%3 {
			if t == dnsmessage.TypeA {
				ans = append(ans, rr(n, 30, a(10, byte(i), byte(k), 1)))
			} else {
				ans = append(ans, rr(n, 30, &dnsmessage.AAAAResource{AAAA: [16]byte{0xfd, 1: byte(i), 15: byte(k)}}))
			}
		}
		rm := r(qm, dnsmessage.RCodeSuccess, ans...)
		rm.Additionals = []dnsmessage.Resource{opt(1232, false, 0)}
		c := netip.AddrPortFrom(client.Addr(), uint16(30000+i%200))
		rec = append(rec, dg{c, server, pack(qm)}, dg{server, c, pack(rm)})
		size += len(rec[len(rec)-1].b) + len(rec[len(rec)-2].b)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	n := 0
	tr := NewTracker(Config{}, func(*entry.Entry) { n++ }, nil)
	now := t0
	for b.Loop() {
		for _, d := range rec {
			now = now.Add(time.Microsecond)
			tr.Datagram(d.src, d.dst, d.b, now)
		}
		tr.Tick(now)
	}
	if n != 1000*b.N {
		b.Fatalf("%d entries, want %d", n, 1000*b.N)
	}
	b.ReportMetric(float64(len(rec)*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
