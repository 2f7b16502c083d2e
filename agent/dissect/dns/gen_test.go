package dns

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// The messages under testdata/ are built here with dnsmessage (which
// compresses names) and, for the malformed ones, cut or patched by hand.
// `go test -run TestTestdata -update` rewrites them; without -update the
// test checks that the files are what the builders make.
var update = flag.Bool("update", false, "rewrite testdata/*.hex")

func name(s string) dnsmessage.Name { return dnsmessage.MustNewName(s) }

func q(id uint16, n string, t dnsmessage.Type, opt ...dnsmessage.Resource) dnsmessage.Message {
	return dnsmessage.Message{
		Header:      dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions:   []dnsmessage.Question{{Name: name(n), Type: t, Class: dnsmessage.ClassINET}},
		Additionals: opt,
	}
}

// r answers query m.
func r(m dnsmessage.Message, rcode dnsmessage.RCode, ans ...dnsmessage.Resource) dnsmessage.Message {
	m.Header.Response, m.Header.RecursionAvailable, m.Header.RCode = true, true, rcode
	m.Answers = ans
	m.Additionals = nil
	return m
}

func rr(n string, ttl uint32, body dnsmessage.ResourceBody) dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: name(n), Class: dnsmessage.ClassINET, TTL: ttl}, Body: body}
}

func opt(udp int, do bool, ext dnsmessage.RCode, opts ...dnsmessage.Option) dnsmessage.Resource {
	var h dnsmessage.ResourceHeader
	if err := h.SetEDNS0(udp, ext, do); err != nil {
		panic(err)
	}
	return dnsmessage.Resource{Header: h, Body: &dnsmessage.OPTResource{Options: opts}}
}

func pack(m dnsmessage.Message) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func a(s ...byte) *dnsmessage.AResource { return &dnsmessage.AResource{A: [4]byte(s)} }

// testdataMessages returns every file under testdata/ by name.
func testdataMessages() map[string][]byte {
	out := map[string][]byte{}
	add := func(n string, m dnsmessage.Message) { out[n] = pack(m) }

	qa := q(4242, "example.com.", dnsmessage.TypeA)
	add("a.q", qa)
	add("a.r", r(qa, dnsmessage.RCodeSuccess, rr("example.com.", 300, a(93, 184, 215, 14)), rr("example.com.", 300, a(93, 184, 215, 15))))

	qaaaa := q(7, "WWW.Example.COM.", dnsmessage.TypeAAAA)
	add("aaaa.q", qaaaa)
	add("aaaa.r", r(qaaaa, dnsmessage.RCodeSuccess, rr("WWW.Example.COM.", 60, &dnsmessage.AAAAResource{AAAA: [16]byte{0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0, 1, 0x2, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46}})))

	soa := &dnsmessage.SOAResource{NS: name("ns1.example.com."), MBox: name("hostmaster.example.com."), Serial: 2026112401, Refresh: 7200, Retry: 3600, Expire: 1209600, MinTTL: 300}
	qnx := q(100, "nope.example.com.", dnsmessage.TypeA)
	add("nxdomain.q", qnx)
	nx := r(qnx, dnsmessage.RCodeNameError)
	nx.Authorities = []dnsmessage.Resource{rr("example.com.", 900, soa)}
	add("nxdomain.r", nx)

	qsf := q(101, "broken.example.org.", dnsmessage.TypeAAAA)
	add("servfail.q", qsf)
	add("servfail.r", r(qsf, dnsmessage.RCodeServerFailure))

	qcn := q(200, "www.shop.example.", dnsmessage.TypeA)
	add("cname.q", qcn)
	add("cname.r", r(qcn, dnsmessage.RCodeSuccess,
		rr("www.shop.example.", 30, &dnsmessage.CNAMEResource{CNAME: name("shop.cdn.example.net.")}),
		rr("shop.cdn.example.net.", 20, &dnsmessage.CNAMEResource{CNAME: name("edge.cdn.example.net.")}),
		rr("edge.cdn.example.net.", 10, a(203, 0, 113, 7))))

	qmx := q(300, "example.com.", dnsmessage.TypeMX)
	add("mx.q", qmx)
	add("mx.r", r(qmx, dnsmessage.RCodeSuccess,
		rr("example.com.", 3600, &dnsmessage.MXResource{Pref: 10, MX: name("mx1.example.com.")}),
		rr("example.com.", 3600, &dnsmessage.MXResource{Pref: 20, MX: name("mx2.example.com.")})))

	qtxt := q(301, "example.com.", dnsmessage.TypeTXT)
	add("txt.q", qtxt)
	add("txt.r", r(qtxt, dnsmessage.RCodeSuccess,
		rr("example.com.", 60, &dnsmessage.TXTResource{TXT: []string{"v=spf1 -all"}}),
		rr("example.com.", 60, &dnsmessage.TXTResource{TXT: []string{`say "hi"\`, "two\x01"}})))

	qsrv := q(302, "_grpc._tcp.orders.shop.svc.cluster.local.", dnsmessage.TypeSRV)
	add("srv.q", qsrv)
	add("srv.r", r(qsrv, dnsmessage.RCodeSuccess,
		rr("_grpc._tcp.orders.shop.svc.cluster.local.", 5, &dnsmessage.SRVResource{Priority: 0, Weight: 50, Port: 9090, Target: name("orders.shop.svc.cluster.local.")})))

	qsoa := q(303, "example.com.", dnsmessage.TypeSOA)
	add("soa.q", qsoa)
	add("soa.r", r(qsoa, dnsmessage.RCodeSuccess, rr("example.com.", 3600, soa)))

	qcaa := q(304, "example.com.", 257)
	add("caa.q", qcaa)
	add("caa.r", r(qcaa, dnsmessage.RCodeSuccess,
		rr("example.com.", 3600, &dnsmessage.UnknownResource{Type: 257, Data: []byte("\x00\x05issueletsencrypt.org")}),
		rr("example.com.", 3600, &dnsmessage.UnknownResource{Type: 99 + 1000, Data: []byte{0xde, 0xad}})))

	// EDNS: the query asks for DNSSEC with a cookie, the answer adds an
	// extended error; ext-rcode 1 makes the status BADVERS (16).
	qe := q(500, "example.com.", dnsmessage.TypeA, opt(1232, true, 0, dnsmessage.Option{Code: 10, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}))
	add("edns.q", qe)
	re := r(qe, dnsmessage.RCodeSuccess, rr("example.com.", 300, a(93, 184, 215, 14)))
	re.Additionals = []dnsmessage.Resource{opt(1232, true, 0, dnsmessage.Option{Code: 15, Data: append([]byte{0, 18}, "blocked"...)}, dnsmessage.Option{Code: 12, Data: make([]byte, 20)})}
	add("edns.r", re)
	rbv := r(qe, dnsmessage.RCodeSuccess)
	rbv.Additionals = []dnsmessage.Resource{opt(1232, false, 16, dnsmessage.Option{})}
	rbv.Additionals[0].Body = &dnsmessage.OPTResource{}
	add("badvers.r", rbv)

	qtc := q(600, "big.example.com.", dnsmessage.TypeTXT)
	add("tc.q", qtc)
	tc := r(qtc, dnsmessage.RCodeSuccess)
	tc.Header.Truncated = true
	add("tc.r", tc)

	// Two queries in flight from one client socket to one server.
	q1, q2 := q(0x1111, "one.example.", dnsmessage.TypeA), q(0x2222, "two.example.", dnsmessage.TypeAAAA)
	add("pair1.q", q1)
	add("pair2.q", q2)
	add("pair1.r", r(q1, dnsmessage.RCodeSuccess, rr("one.example.", 1, a(10, 0, 0, 1))))
	add("pair2.r", r(q2, dnsmessage.RCodeSuccess, rr("two.example.", 2, &dnsmessage.AAAAResource{AAAA: [16]byte{0xfd, 15: 2}})))

	// Malformed answers to a.q. a.r is: header (12), question
	// "example.com" A IN (17), then the answers, whose names are a
	// pointer to offset 12 (c0 0c) at offset 29.
	ar := out["a.r"]
	loop := slices.Clone(ar)
	loop[29], loop[30] = 0xc0, 29 // the answer's name points at itself
	out["loop.r"] = loop
	out["truncrec.r"] = ar[:len(ar)-2] // the last A record loses 2 bytes
	long := slices.Clone(ar[:29])
	long = append(long, 0x40) // a 64-byte label: too long
	long = append(long, bytes.Repeat([]byte{'a'}, 64)...)
	long = append(long, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4)
	out["longlabel.r"] = long
	fwd := slices.Clone(ar)
	fwd[29], fwd[30] = 0xc0, 45 // points forward, into the next record
	out["forward.r"] = fwd
	// A query whose question name is 5 labels of 63 bytes: over 255.
	var big []byte
	big = append(big, ar[:12]...)
	big[2], big[3], big[7] = 1, 0, 0 // a plain query, no answers
	for range 5 {
		big = append(big, 63)
		big = append(big, bytes.Repeat([]byte{'x'}, 63)...)
	}
	big = append(big, 0, 0, 1, 0, 1)
	out["longname.q"] = big
	return out
}

func TestTestdata(t *testing.T) {
	msgs := testdataMessages()
	if *update {
		for n, b := range msgs {
			var s strings.Builder
			for len(b) > 0 {
				k := min(len(b), 32)
				s.WriteString(hex.EncodeToString(b[:k]))
				s.WriteByte('\n')
				b = b[k:]
			}
			if err := os.WriteFile(filepath.Join("testdata", n+".hex"), []byte(s.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for n, want := range msgs {
		if got := readHex(t, n); !bytes.Equal(got, want) {
			t.Errorf("testdata/%s.hex differs from its builder; run with -update", n)
		}
	}
}

// readHex reads testdata/<n>.hex: hex digits, whitespace and # comments.
func readHex(t testing.TB, n string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", n+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	var digits []byte
	for line := range strings.Lines(string(raw)) {
		line, _, _ = strings.Cut(line, "#")
		digits = append(digits, strings.Join(strings.Fields(line), "")...)
	}
	b, err := hex.DecodeString(string(digits))
	if err != nil {
		t.Fatalf("%s: %v", n, err)
	}
	return b
}
