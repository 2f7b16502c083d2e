package dissect

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

type step struct {
	dir  tcp.Dir
	data string
	gap  int
}

func TestSniffer(t *testing.T) {
	long := "/search?q=" + strings.Repeat("x", 3000)
	req := "GET " + long + " HTTP/1.1\r\nHost: a\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	cases := []struct {
		name       string
		role       tcp.Role
		steps      []step
		want       []string // "METHOD PATH STATUS"
		undetected uint64
	}{
		{
			name:  "request line longer than a segment",
			role:  tcp.RoleClient,
			steps: []step{{dir: tcp.Egress, data: req[:1448]}, {dir: tcp.Egress, data: req[1448:]}, {dir: tcp.Ingress, data: resp}},
			want:  []string{"GET " + long + " 200"},
		},
		{
			name: "gap while sniffing replays nothing twice",
			role: tcp.RoleClient,
			steps: []step{
				{dir: tcp.Egress, data: "GET /"},
				{dir: tcp.Egress, gap: 100},
				{dir: tcp.Egress, data: "GET /a HTT"},
				{dir: tcp.Egress, data: "P/1.1\r\nHost: a\r\n\r\n"},
				{dir: tcp.Ingress, data: resp},
			},
			want: []string{"GET /a 200"},
		},
		{
			name:       "not HTTP",
			role:       tcp.RoleClient,
			steps:      []step{{dir: tcp.Egress, data: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}, {dir: tcp.Ingress, data: "\x16\x03\x03\x00\x7a"}},
			undetected: 1,
		},
		{
			name: "mid-stream connection that starts inside a body",
			role: tcp.RoleUnknown,
			steps: []step{
				{dir: tcp.Ingress, data: "dy of an earlier response, not a message start"},
				{dir: tcp.Egress, data: "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"},
				{dir: tcp.Ingress, data: resp},
			},
			want: []string{"GET /next 200"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			d := New(Config{}, func(e *entry.Entry) {
				if e.Protocol != entry.ProtoTCP { // connection records: TestConnRecords
					got = append(got, e.Method+" "+e.Path+" "+strconv.Itoa(int(e.Status)))
				}
			})
			info := &tcp.ConnInfo{ID: 1, Role: tc.role,
				Local:  netip.MustParseAddrPort("198.18.0.1:40000"),
				Remote: netip.MustParseAddrPort("198.18.0.2:80")}
			h := d.Factory()(info)
			now := time.Unix(1, 0)
			for _, s := range tc.steps {
				now = now.Add(time.Millisecond)
				if s.gap > 0 {
					h.Gap(s.dir, s.gap, now)
					continue
				}
				h.Data(s.dir, []byte(s.data), now)
			}
			h.End(tcp.EndFIN, now)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
			if u := d.Stats().Undetected.Load(); u != tc.undetected {
				t.Errorf("undetected %d, want %d", u, tc.undetected)
			}
			if d.held != 0 {
				t.Errorf("%d sniffed bytes still held after the connection ended", d.held)
			}
		})
	}
}

// FuzzSniffer feeds arbitrary bytes, split and interrupted by gaps, to the
// sniffer in both directions: it must not panic, and must hold no bytes
// once the connection ends.
func FuzzSniffer(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), uint8(7), uint8(0))
	f.Add([]byte("\x16\x03\x01garbage"), []byte("more garbage"), uint8(3), uint8(1))
	f.Add([]byte("GET /"+strings.Repeat("a", 9000)+" HTTP/1.1\r\n\r\n"), []byte("HTTP/1.1 204 No Content\r\n\r\n"), uint8(200), uint8(2))
	f.Fuzz(func(t *testing.T, up, down []byte, split, role uint8) {
		records := 0
		d := New(Config{}, func(e *entry.Entry) {
			if e.Protocol == entry.ProtoTCP {
				records++
			}
		})
		info := &tcp.ConnInfo{ID: 1, Role: tcp.Role(role % 3),
			Local:  netip.MustParseAddrPort("198.18.0.1:40000"),
			Remote: netip.MustParseAddrPort("198.18.0.2:80")}
		h := d.Factory()(info)
		now := time.Unix(1, 0)
		step := int(split)%64 + 1
		for i := 0; len(up) > 0 || len(down) > 0; i++ {
			now = now.Add(time.Millisecond)
			dir, b := tcp.Egress, &up
			if i%2 == 1 && len(down) > 0 || len(up) == 0 {
				dir, b = tcp.Ingress, &down
			}
			n := min(step, len(*b))
			if n > 0 && (*b)[0] == 0xff {
				h.Gap(dir, n, now)
			} else {
				h.Data(dir, (*b)[:n], now)
			}
			*b = (*b)[n:]
		}
		h.End(tcp.EndRST, now)
		if d.held != 0 {
			t.Fatalf("%d sniffed bytes held after the end", d.held)
		}
		if records > 1 {
			t.Fatalf("%d connection records for one connection", records)
		}
	})
}

type panicky struct{}

func (panicky) Data(tcp.Dir, []byte, time.Time) { panic("dissector bug") }
func (panicky) Gap(tcp.Dir, int, time.Time)     {}
func (panicky) End(tcp.EndReason, time.Time)    {}

// TestDissectorPanicCostsOneConnection: a dissector that panics on some
// traffic loses that connection, counted, and the caller goes on.
func TestDissectorPanicCostsOneConnection(t *testing.T) {
	d := New(Config{}, func(*entry.Entry) {})
	s := &sniffer{d: d, info: &tcp.ConnInfo{}}
	s.start(panicky{})
	s.Data(tcp.Egress, []byte("x"), time.Unix(1, 0))
	s.Data(tcp.Egress, []byte("y"), time.Unix(2, 0)) // ignored, no second panic
	s.End(tcp.EndFIN, time.Unix(3, 0))
	if n := d.Stats().Panics.Load(); n != 1 {
		t.Fatalf("Panics = %d, want 1", n)
	}
}
