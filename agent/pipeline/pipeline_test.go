package pipeline

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/store"
	"github.com/podwire/podwire/agent/tcp"
)

// names is an Identifier from fixed tables, counting its calls.
type names struct {
	byCgroup map[uint64]*entry.Identity
	byAddr   map[netip.Addr]*entry.Identity
	calls    int
}

func (n *names) Local(cg uint64, _ netip.AddrPort) *entry.Identity { n.calls++; return n.byCgroup[cg] }
func (n *names) Remote(a netip.AddrPort) *entry.Identity           { n.calls++; return n.byAddr[a.Addr()] }

// TestIdentityOnEntries: the ends of a connection are named once, when it
// is first seen, and every entry of it carries those names; a later change
// of the tables does not rename what was captured.
func TestIdentityOnEntries(t *testing.T) {
	client := netip.MustParseAddrPort("198.18.0.1:40000")
	server := netip.MustParseAddrPort("198.18.0.2:8080")
	web := &entry.Identity{Pod: "web-1", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment"}
	cart := &entry.Identity{Pod: "cart-7", Namespace: "shop", Workload: "cart", Service: "cart"}
	id := &names{byCgroup: map[uint64]*entry.Identity{42: web}, byAddr: map[netip.Addr]*entry.Identity{server.Addr(): cart}}
	st := store.New(store.Config{Node: "n"})
	p, err := New(Config{Node: "n", Identify: id}, st)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(100, 0)
	seg := func(dir tcp.Dir, seq uint32, flags uint8, payload string) {
		p.Feed(&tcp.Segment{Cookie: 1, CgroupID: 42, Time: t0, Dir: dir, Local: client, Remote: server, Seq: seq, Flags: flags, Payload: []byte(payload)})
		t0 = t0.Add(time.Millisecond)
	}
	seg(tcp.Egress, 999, tcp.FlagSYN, "")
	seg(tcp.Ingress, 4999, tcp.FlagSYN|tcp.FlagACK, "")
	req := "GET /a HTTP/1.1\r\nHost: cart\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	seg(tcp.Egress, 1000, tcp.FlagACK, req)
	seg(tcp.Ingress, 5000, tcp.FlagACK, resp)
	// The pod behind the server's address changes: the connection keeps
	// the names it started with.
	id.byAddr[server.Addr()] = &entry.Identity{Pod: "someone-else"}
	req2 := "GET /b HTTP/1.1\r\nHost: cart\r\n\r\n"
	seg(tcp.Egress, 1000+uint32(len(req)), tcp.FlagACK, req2)
	seg(tcp.Ingress, 5000+uint32(len(resp)), tcp.FlagACK, resp)

	var got []*entry.Entry
	st.Query(store.Query{}, func(e *entry.Entry) bool { got = append(got, e); return true })
	if len(got) != 2 {
		t.Fatalf("%d entries, want 2", len(got))
	}
	for _, e := range got {
		if *e.Src.Ident() != *web || *e.Dst.Ident() != *cart {
			t.Errorf("%s: src %+v dst %+v, want web-1 -> cart-7", e.Path, e.Src.Ident(), e.Dst.Ident())
		}
	}
	if id.calls != 2 {
		t.Errorf("identifier called %d times, want 2 (once per end of the one connection)", id.calls)
	}
}

// TestOtherNodeReportsCrossNodeCalls: a pod here calling a pod on another
// node is left to that node's agent (which sees the server's side); the
// same call seen from the server's side here is reported.
func TestOtherNodeReportsCrossNodeCalls(t *testing.T) {
	local := netip.MustParseAddrPort("198.18.0.1:40000")
	remote := netip.MustParseAddrPort("198.18.0.2:8080")
	for _, tc := range []struct {
		name    string
		client  bool // the local socket opened the connection
		node    string
		entries int
	}{
		{"client here, server on another node", true, "n2", 0},
		{"client here, server on this node", true, "n1", 1},
		{"server here, client on another node", false, "n2", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := &names{byAddr: map[netip.Addr]*entry.Identity{remote.Addr(): {Pod: "peer", Namespace: "ns", Node: tc.node}}}
			st := store.New(store.Config{Node: "n1"})
			p, err := New(Config{Node: "n1", Identify: id}, st)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Unix(100, 0)
			out, in := tcp.Egress, tcp.Ingress
			req, resp := "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
			if !tc.client {
				out, in = in, out // the request comes in
			}
			for _, s := range []tcp.Segment{
				{Dir: out, Seq: 9, Flags: tcp.FlagSYN},
				{Dir: in, Seq: 99, Flags: tcp.FlagSYN | tcp.FlagACK},
				{Dir: out, Seq: 10, Flags: tcp.FlagACK, Payload: []byte(req)},
				{Dir: in, Seq: 100, Flags: tcp.FlagACK, Payload: []byte(resp)},
			} {
				s.Cookie, s.Time, s.Local, s.Remote = 1, t0, local, remote
				t0 = t0.Add(time.Millisecond)
				p.Feed(&s)
			}
			if n := st.Stats().Added; int(n) != tc.entries {
				t.Errorf("%d entries, want %d", n, tc.entries)
			}
			if skipped := p.Counters()["conns_reported_by_other_node"]; int(skipped) != 1-tc.entries {
				t.Errorf("conns_reported_by_other_node = %d", skipped)
			}
		})
	}
}

// TestIdentityOnDNSDatagrams: DNS over UDP entries name their ends too.
func TestIdentityOnDNSDatagrams(t *testing.T) {
	client := netip.MustParseAddrPort("198.18.0.1:53000")
	server := netip.MustParseAddrPort("198.18.0.2:53")
	web := &entry.Identity{Pod: "web-1", Namespace: "shop"}
	dns := &entry.Identity{Pod: "coredns-1", Namespace: "kube-system", Service: "kube-dns"}
	id := &names{byCgroup: map[uint64]*entry.Identity{42: web}, byAddr: map[netip.Addr]*entry.Identity{server.Addr(): dns}}
	st := store.New(store.Config{Node: "n"})
	p, err := New(Config{Node: "n", Identify: id}, st)
	if err != nil {
		t.Fatal(err)
	}
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("cart.shop.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	qb, _ := q.Pack()
	r := q
	r.Header.Response = true
	rb, _ := r.Pack()
	t0 := time.Unix(100, 0)
	p.Feed(&tcp.Segment{UDP: true, CgroupID: 42, Time: t0, Dir: tcp.Egress, Local: client, Remote: server, Payload: qb})
	p.Feed(&tcp.Segment{UDP: true, CgroupID: 42, Time: t0.Add(time.Millisecond), Dir: tcp.Ingress, Local: client, Remote: server, Payload: rb})
	var got []*entry.Entry
	st.Query(store.Query{}, func(e *entry.Entry) bool { got = append(got, e); return true })
	if len(got) != 1 {
		t.Fatalf("%d entries, want 1", len(got))
	}
	if *got[0].Src.Ident() != *web || *got[0].Dst.Ident() != *dns {
		t.Errorf("src %+v dst %+v, want web-1 -> coredns-1", got[0].Src.Ident(), got[0].Dst.Ident())
	}
}

func TestNamespaceSettings(t *testing.T) {
	shop, kube := &entry.Identity{Pod: "a", Namespace: "shop"}, &entry.Identity{Pod: "b", Namespace: "kube-system"}
	host := &entry.Identity{Process: "sshd"}
	for _, tc := range []struct {
		capture, skip []string
		who           *entry.Identity
		want          bool
	}{
		{nil, nil, shop, true},
		{nil, nil, nil, true},
		{[]string{"shop"}, nil, shop, true},
		{[]string{"shop"}, nil, kube, false},
		{[]string{"shop"}, nil, host, false},
		{[]string{"shop"}, nil, nil, false},
		{nil, []string{"kube-system"}, kube, false},
		{nil, []string{"kube-system"}, shop, true},
		{nil, []string{"kube-system"}, host, true},
	} {
		c := Config{CaptureNamespaces: tc.capture, SkipNamespaces: tc.skip}
		if got := c.wanted(tc.who); got != tc.want {
			t.Errorf("capture %v skip %v, local %+v: kept %v, want %v", tc.capture, tc.skip, tc.who, got, tc.want)
		}
	}
}
