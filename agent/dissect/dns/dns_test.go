package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

var (
	client  = netip.MustParseAddrPort("10.1.2.3:40000")
	client2 = netip.MustParseAddrPort("10.1.2.3:40001")
	server  = netip.MustParseAddrPort("10.96.0.10:53")
	t0      = time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
)

// line is one entry as a test expects it.
func line(e *entry.Entry) string {
	resp := "-"
	if e.Response != nil {
		resp = fmt.Sprint(e.Response.BodyBytes)
	}
	return fmt.Sprintf("%s %s status=%d failed=%v latency=%v notes=%q resp=%s", e.Method, e.Path, e.Status, e.Failed, e.Latency, e.Notes, resp)
}

type collector struct{ got []*entry.Entry }

func (c *collector) emit(e *entry.Entry) { c.got = append(c.got, e) }

// TestMessages sends each query and its response through the Tracker and
// checks the entry and the rendered bodies.
func TestMessages(t *testing.T) {
	tests := []struct {
		q, r    string
		method  string
		path    string
		status  int32
		failed  bool
		notes   []string
		reqBody string
		resp    string // the whole response body
		stat    string // a counter that must be 1
	}{
		{q: "a", r: "a", method: "A", path: "example.com",
			reqBody: "id 4242 rd\n;example.com. IN A",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 300 IN A 93.184.215.14\n" +
				"example.com. 300 IN A 93.184.215.15"},
		{q: "aaaa", r: "aaaa", method: "AAAA", path: "www.example.com",
			reqBody: "id 7 rd\n;WWW.Example.COM. IN AAAA",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 7\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"WWW.Example.COM. 60 IN AAAA 2606:2800:220:1:248:1893:25c8:1946"},
		{q: "nxdomain", r: "nxdomain", method: "A", path: "nope.example.com", status: 3, failed: true,
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 100\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 0\n" +
				";; AUTHORITY SECTION:\n" +
				"example.com. 900 IN SOA ns1.example.com. hostmaster.example.com. 2026112401 7200 3600 1209600 300"},
		{q: "servfail", r: "servfail", method: "AAAA", path: "broken.example.org", status: 2, failed: true,
			resp: ";; ->>HEADER<<- opcode: QUERY, status: SERVFAIL, id: 101\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0"},
		{q: "cname", r: "cname", method: "A", path: "www.shop.example",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 200\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 3, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"www.shop.example. 30 IN CNAME shop.cdn.example.net.\n" +
				"shop.cdn.example.net. 20 IN CNAME edge.cdn.example.net.\n" +
				"edge.cdn.example.net. 10 IN A 203.0.113.7"},
		{q: "mx", r: "mx", method: "MX", path: "example.com",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 300\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 3600 IN MX 10 mx1.example.com.\n" +
				"example.com. 3600 IN MX 20 mx2.example.com."},
		{q: "txt", r: "txt", method: "TXT", path: "example.com",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 301\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 60 IN TXT \"v=spf1 -all\"\n" +
				`example.com. 60 IN TXT "say \"hi\"\\" "two\001"`},
		{q: "srv", r: "srv", method: "SRV", path: "_grpc._tcp.orders.shop.svc.cluster.local",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 302\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"_grpc._tcp.orders.shop.svc.cluster.local. 5 IN SRV 0 50 9090 orders.shop.svc.cluster.local."},
		{q: "soa", r: "soa", method: "SOA", path: "example.com",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 303\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 2026112401 7200 3600 1209600 300"},
		{q: "caa", r: "caa", method: "CAA", path: "example.com",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 304\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 3600 IN CAA 0 issue \"letsencrypt.org\"\n" +
				`example.com. 3600 IN TYPE1099 \# 2 dead`},
		{q: "edns", r: "edns", method: "A", path: "example.com",
			reqBody: "id 500 rd\n;example.com. IN A\n; EDNS: version 0, flags: do, udp: 1232, COOKIE: 0102030405060708",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 500\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 300 IN A 93.184.215.14\n" +
				";; ADDITIONAL SECTION:\n" +
				"; EDNS: version 0, flags: do, udp: 1232, EDE: 18 \"blocked\", PADDING: 20 bytes"},
		{q: "edns", r: "badvers", method: "A", path: "example.com", status: 16, failed: true,
			resp: ";; ->>HEADER<<- opcode: QUERY, status: BADVERS, id: 500\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1\n" +
				";; ADDITIONAL SECTION:\n" +
				"; EDNS: version 0, flags:, udp: 1232"},
		{q: "tc", r: "tc", method: "TXT", path: "big.example.com", notes: []string{"truncated (TC)"}, stat: "truncated",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 600\n" +
				";; flags: qr tc rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0"},
		// Malformed answers still complete their query, with what could
		// be read.
		{q: "a", r: "loop", method: "A", path: "example.com", notes: []string{"malformed response"}, stat: "malformed",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				";; malformed response"},
		{q: "a", r: "forward", method: "A", path: "example.com", notes: []string{"malformed response"}, stat: "malformed"},
		{q: "a", r: "truncrec", method: "A", path: "example.com", notes: []string{"malformed response"}, stat: "malformed",
			resp: ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n" +
				";; flags: qr rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0\n" +
				";; ANSWER SECTION:\n" +
				"example.com. 300 IN A 93.184.215.14\n" +
				";; malformed response"},
		{q: "a", r: "longlabel", method: "A", path: "example.com", notes: []string{"malformed response"}, stat: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.q+"/"+tt.r, func(t *testing.T) {
			var c collector
			stats := new(Stats)
			tr := NewTracker(Config{}, c.emit, stats)
			qb, rb := readHex(t, tt.q+".q"), readHex(t, tt.r+".r")
			tr.Datagram(client, server, qb, t0)
			if len(c.got) != 0 {
				t.Fatalf("entry before the response: %s", line(c.got[0]))
			}
			tr.Datagram(server, client, rb, t0.Add(3*time.Millisecond))
			if len(c.got) != 1 {
				t.Fatalf("got %d entries, want 1", len(c.got))
			}
			e := c.got[0]
			if e.Protocol != "dns" || e.Method != tt.method || e.Path != tt.path || e.Status != tt.status || e.Failed != tt.failed ||
				!slices.Equal(e.Notes, tt.notes) || e.Latency != 3*time.Millisecond || !e.Time.Equal(t0) {
				t.Errorf("got %s", line(e))
			}
			if e.Src.IP != client.Addr() || e.Src.Port != client.Port() || e.Dst.IP != server.Addr() || e.Dst.Port != 53 {
				t.Errorf("src %v:%d dst %v:%d", e.Src.IP, e.Src.Port, e.Dst.IP, e.Dst.Port)
			}
			if e.Request.BodyBytes != int64(len(qb)) || e.Response.BodyBytes != int64(len(rb)) {
				t.Errorf("body bytes %d %d, want %d %d", e.Request.BodyBytes, e.Response.BodyBytes, len(qb), len(rb))
			}
			if tt.reqBody != "" && string(e.Request.Body) != tt.reqBody {
				t.Errorf("request body:\n%s\nwant:\n%s", e.Request.Body, tt.reqBody)
			}
			if tt.resp != "" && string(e.Response.Body) != tt.resp {
				t.Errorf("response body:\n%s\nwant:\n%s", e.Response.Body, tt.resp)
			}
			snap := stats.Snapshot()
			if snap["entries"] != 1 || (tt.stat != "" && snap[tt.stat] != 1) {
				t.Errorf("stats %v", snap)
			}
		})
	}
}

// TestMalformedQuery: a query whose name cannot be read is dropped and
// counted, and its response is then an orphan.
func TestMalformedQuery(t *testing.T) {
	var c collector
	stats := new(Stats)
	tr := NewTracker(Config{}, c.emit, stats)
	qb := readHex(t, "longname.q")
	tr.Datagram(client, server, qb, t0)
	tr.Datagram(client, server, qb[:7], t0)
	resp := slices.Clone(qb)
	resp[2] |= 0x80
	tr.Datagram(server, client, resp, t0)
	tr.Tick(t0.Add(time.Hour))
	if len(c.got) != 0 || stats.Malformed.Load() != 2 || stats.Orphans.Load() != 1 {
		t.Fatalf("entries %d, stats %v", len(c.got), stats.Snapshot())
	}
	if Detect(qb, false) != No {
		t.Error("Detect accepts a name longer than 255 bytes")
	}
}

func summaries(es []*entry.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, line(e))
	}
	return strings.Join(s, "\n")
}

// TestTracker covers pairing by (client, server, id) and what happens to
// responses and queries that do not pair.
func TestTracker(t *testing.T) {
	q1, q2 := readHex(t, "pair1.q"), readHex(t, "pair2.q")
	r1, r2 := readHex(t, "pair1.r"), readHex(t, "pair2.r")
	ms := time.Millisecond
	type dg struct {
		src, dst netip.AddrPort
		b        []byte
		at       time.Duration
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []dg
		tick  time.Duration // Tick at this offset at the end, when set
		want  []string
		stats map[string]uint64
	}{
		{name: "two concurrent queries answered out of order",
			steps: []dg{{client, server, q1, 0}, {client, server, q2, 1 * ms}, {server, client, r2, 5 * ms}, {server, client, r1, 9 * ms}},
			want: []string{
				`AAAA two.example status=0 failed=false latency=4ms notes=[] resp=` + fmt.Sprint(len(r2)),
				`A one.example status=0 failed=false latency=9ms notes=[] resp=` + fmt.Sprint(len(r1)),
			},
			stats: map[string]uint64{"entries": 2}},
		{name: "same id from another client port is another query",
			steps: []dg{{client, server, q1, 0}, {client2, server, q1, 1 * ms}, {server, client2, r1, 2 * ms}},
			tick:  6 * time.Second,
			want: []string{
				`A one.example status=0 failed=false latency=1ms notes=[] resp=` + fmt.Sprint(len(r1)),
				`A one.example status=0 failed=true latency=0s notes=["no response"] resp=-`,
			},
			stats: map[string]uint64{"entries": 2, "timeouts": 1}},
		{name: "duplicate response is dropped",
			steps: []dg{{client, server, q1, 0}, {server, client, r1, 2 * ms}, {server, client, r1, 3 * ms}},
			want:  []string{`A one.example status=0 failed=false latency=2ms notes=[] resp=` + fmt.Sprint(len(r1))},
			stats: map[string]uint64{"entries": 1, "duplicates": 1}},
		{name: "response without a query is an orphan",
			steps: []dg{{server, client, r1, 0}, {client, server, q2, 1 * ms}, {server, client, r1, 2 * ms}},
			stats: map[string]uint64{"orphans": 2}},
		{name: "response from another server is an orphan",
			steps: []dg{{client, server, q1, 0}, {netip.MustParseAddrPort("10.96.0.11:53"), client, r1, 1 * ms}},
			stats: map[string]uint64{"orphans": 1}},
		{name: "timeout via Tick",
			steps: []dg{{client, server, q1, 0}, {client, server, q2, 2 * time.Second}},
			tick:  5 * time.Second,
			want:  []string{`A one.example status=0 failed=true latency=0s notes=["no response"] resp=-`},
			stats: map[string]uint64{"entries": 1, "timeouts": 1}},
		{name: "answer after the timeout is an orphan",
			steps: []dg{{client, server, q1, 0}},
			tick:  5 * time.Second,
			want:  []string{`A one.example status=0 failed=true latency=0s notes=["no response"] resp=-`},
			stats: map[string]uint64{"entries": 1, "timeouts": 1}},
		{name: "retried query: the answer goes with the latest",
			steps: []dg{{client, server, q1, 0}, {client, server, q1, 1000 * ms}, {client, server, q1, 2000 * ms}, {server, client, r1, 2010 * ms}},
			tick:  time.Hour,
			want:  []string{`A one.example status=0 failed=false latency=10ms notes=["retried 2x"] resp=` + fmt.Sprint(len(r1))},
			stats: map[string]uint64{"entries": 1, "retries": 2}},
		{name: "MaxPending evicts the oldest as unanswered",
			cfg:   Config{MaxPending: 1},
			steps: []dg{{client, server, q1, 0}, {client, server, q2, 1 * ms}, {server, client, r2, 2 * ms}, {server, client, r1, 3 * ms}},
			want: []string{
				`A one.example status=0 failed=true latency=0s notes=["no response"] resp=-`,
				`AAAA two.example status=0 failed=false latency=1ms notes=[] resp=` + fmt.Sprint(len(r2)),
			},
			stats: map[string]uint64{"entries": 2, "timeouts": 1, "orphans": 1}},
		{name: "garbage",
			steps: []dg{{client, server, []byte("GET / HTTP/1.1\r\n\r\n"), 0}, {client, server, []byte{1, 2, 3}, 0}},
			stats: map[string]uint64{"malformed": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			stats := new(Stats)
			tr := NewTracker(tt.cfg, c.emit, stats)
			for _, s := range tt.steps {
				tr.Datagram(s.src, s.dst, s.b, t0.Add(s.at))
			}
			if tt.tick > 0 {
				tr.Tick(t0.Add(tt.tick))
			}
			if got := summaries(c.got); got != strings.Join(tt.want, "\n") {
				t.Errorf("entries:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
			for k, v := range stats.Snapshot() {
				if v != tt.stats[k] {
					t.Errorf("stats %v, want %v", stats.Snapshot(), tt.stats)
					break
				}
			}
		})
	}
}

// TestTrackerBounded: a flood of unanswered queries never holds more than
// MaxPending, and every one of them comes out as unanswered.
func TestTrackerBounded(t *testing.T) {
	var c collector
	stats := new(Stats)
	tr := NewTracker(Config{MaxPending: 100}, c.emit, stats)
	msg := readHex(t, "a.q")
	for i := range 10000 {
		msg[0], msg[1] = byte(i>>8), byte(i)
		tr.Datagram(client, server, msg, t0.Add(time.Duration(i)*time.Microsecond))
		if n := tr.Pending(); n > 100 {
			t.Fatalf("%d pending after %d queries", n, i+1)
		}
		if len(tr.q)-tr.head > 2*100+16+1 {
			t.Fatalf("queue holds %d", len(tr.q)-tr.head)
		}
	}
	tr.Tick(t0.Add(time.Minute))
	if len(c.got) != 10000 || stats.Timeouts.Load() != 10000 || tr.Pending() != 0 {
		t.Fatalf("%d entries, stats %v, %d pending", len(c.got), stats.Snapshot(), tr.Pending())
	}
}

func framed(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, byte(len(m)>>8), byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// TestTCPSplitEverywhere cuts two pipelined queries and their responses
// at every byte: the entries must not depend on the cut.
func TestTCPSplitEverywhere(t *testing.T) {
	q1, q2 := readHex(t, "pair1.q"), readHex(t, "pair2.q")
	r1, r2 := readHex(t, "pair1.r"), readHex(t, "pair2.r")
	up, down := framed(q1, q2), framed(r2, r1)
	local, remote := netip.MustParseAddrPort("10.1.2.3:51000"), netip.MustParseAddrPort("10.96.0.10:53")
	want := strings.Join([]string{
		`AAAA two.example status=0 failed=false latency=1ms notes=[] resp=` + fmt.Sprint(len(r2)),
		`A one.example status=0 failed=false latency=1ms notes=[] resp=` + fmt.Sprint(len(r1)),
	}, "\n")
	for _, role := range []tcp.Role{tcp.RoleClient, tcp.RoleUnknown} {
		for cut := 0; cut <= len(up)+len(down); cut++ {
			var c collector
			stats := new(Stats)
			info := &tcp.ConnInfo{ID: 9, Local: local, Remote: remote, Role: role}
			h := New(Config{}, info, c.emit, stats)
			send := func(dir tcp.Dir, b []byte, at time.Time) {
				if cut < len(b) {
					h.Data(dir, b[:cut], at)
					h.Data(dir, b[cut:], at)
				} else {
					h.Data(dir, b, at)
				}
			}
			send(tcp.Egress, up, t0)
			if len(c.got) != 0 {
				t.Fatalf("cut %d: entry before any response", cut)
			}
			send(tcp.Ingress, down, t0.Add(time.Millisecond))
			h.End(tcp.EndFIN, t0.Add(2*time.Millisecond))
			if got := summaries(c.got); got != want {
				t.Fatalf("role %v cut %d:\n%s\nwant:\n%s", role, cut, got, want)
			}
			e := c.got[0]
			if e.Src.Port != 51000 || e.Dst.Port != 53 || e.ConnID != 9 || stats.Entries.Load() != 2 {
				t.Fatalf("cut %d: src %d dst %d conn %d stats %v", cut, e.Src.Port, e.Dst.Port, e.ConnID, stats.Snapshot())
			}
		}
	}
}

// TestTCP covers the server side of a connection, an unanswered query at
// End, an orphan response and a gap.
func TestTCP(t *testing.T) {
	q1, q2 := readHex(t, "pair1.q"), readHex(t, "pair2.q")
	r1, r2 := readHex(t, "pair1.r"), readHex(t, "pair2.r")
	local, remote := netip.MustParseAddrPort("10.96.0.10:53"), netip.MustParseAddrPort("10.1.2.3:51000")

	var c collector
	stats := new(Stats)
	h := New(Config{}, &tcp.ConnInfo{Local: local, Remote: remote, Role: tcp.RoleServer}, c.emit, stats)
	h.Data(tcp.Ingress, framed(q1, q2), t0)
	h.Data(tcp.Egress, framed(r1), t0.Add(time.Millisecond))
	// Half of r2 arrives, then bytes are lost: r2 never completes.
	h.Data(tcp.Egress, framed(r2)[:10], t0.Add(time.Millisecond))
	h.Gap(tcp.Egress, 5, t0.Add(time.Millisecond))
	h.Data(tcp.Egress, framed(r2)[15:], t0.Add(time.Millisecond))
	// After the gap framing resumes at a Data call that starts a message;
	// this response has no query.
	h.Data(tcp.Egress, framed(r1), t0.Add(2*time.Millisecond))
	h.End(tcp.EndFIN, t0.Add(3*time.Millisecond))
	want := strings.Join([]string{
		`A one.example status=0 failed=false latency=1ms notes=[] resp=` + fmt.Sprint(len(r1)),
		`AAAA two.example status=0 failed=true latency=0s notes=["no response"] resp=-`,
	}, "\n")
	if got := summaries(c.got); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if e := c.got[0]; e.Src.Port != 51000 || e.Dst.Port != 53 {
		t.Errorf("src %d dst %d", e.Src.Port, e.Dst.Port)
	}
	if s := stats.Snapshot(); s["entries"] != 2 || s["timeouts"] != 1 || s["orphans"] != 1 {
		t.Errorf("stats %v", s)
	}
}

func TestDetect(t *testing.T) {
	aq, ar := readHex(t, "a.q"), readHex(t, "a.r")
	tests := []struct {
		name string
		b    []byte
		tcp  bool
		want Verdict
	}{
		{"query", aq, false, Yes},
		{"response", ar, false, Yes},
		{"edns query", readHex(t, "edns.q"), false, Yes},
		{"srv", readHex(t, "srv.q"), false, Yes},
		{"framed", framed(aq), true, Yes},
		{"framed, first byte", framed(aq)[:1], true, NeedMore},
		{"framed, header cut", framed(aq)[:8], true, NeedMore},
		{"framed, name cut", framed(aq)[:20], true, NeedMore},
		{"udp, name cut", aq[:20], false, No},
		{"unframed as tcp", aq, true, No},
		{"http", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), false, No},
		{"tls", []byte{0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3, 1, 2, 3, 4, 5, 6, 7, 8}, false, No},
		{"zero", make([]byte, 40), false, No},
		{"name too long", readHex(t, "longname.q"), false, No},
		{"question loop", func() []byte { b := slices.Clone(aq); b[12], b[13] = 0xc0, 12; return b }(), false, No},
		{"opcode 3", func() []byte { b := slices.Clone(aq); b[2] |= 3 << 3; return b }(), false, No},
		{"query with rcode", func() []byte { b := slices.Clone(aq); b[3] |= 2; return b }(), false, No},
		{"answer count too big", func() []byte { b := slices.Clone(aq); b[6] = 1; return b }(), false, No},
	}
	for _, tt := range tests {
		if got := Detect(tt.b, tt.tcp); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Detect(ar, false) }); n != 0 {
		t.Errorf("Detect allocates %v times", n)
	}
}

// TestAllocs: a query and its response make one allocation, the entry
// with everything it points to; so does a query that times out.
func TestAllocs(t *testing.T) {
	tr := NewTracker(Config{}, func(*entry.Entry) {}, nil)
	for _, n := range []string{"a", "cname", "edns", "soa"} {
		qb, rb := readHex(t, n+".q"), readHex(t, n+".r")
		got := testing.AllocsPerRun(200, func() {
			tr.Datagram(client, server, qb, t0)
			tr.Datagram(server, client, rb, t0)
		})
		if got != 1 {
			t.Errorf("%s: %v allocations per query and response, want 1", n, got)
		}
	}
	qb := readHex(t, "a.q")
	now := t0
	got := testing.AllocsPerRun(200, func() {
		tr.Datagram(client, server, qb, now)
		now = now.Add(time.Hour)
		tr.Tick(now)
	})
	if got != 1 {
		t.Errorf("%v allocations per unanswered query, want 1", got)
	}
}
