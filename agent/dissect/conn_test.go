package dissect

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// TestConnRecords: a connection no dissector takes becomes one record with
// the bytes each way, a preview, its duration and how it ended; a refused
// connect is a failed record; an empty connection and a recognised one
// give none.
func TestConnRecords(t *testing.T) {
	tls := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
	big := "\x00\x01" + strings.Repeat("\xee", 1000)
	local := netip.MustParseAddrPort("198.18.0.1:40000")
	remote := netip.MustParseAddrPort("198.18.0.2:5432")
	type want struct {
		src, dst        netip.AddrPort
		up, down        int64 // bytes client->server, server->client
		upPreview       string
		downTruncated   bool
		latency         time.Duration
		failed, partial bool
		notes           []string
	}
	cases := []struct {
		name   string
		role   tcp.Role
		synAck bool
		steps  []step
		end    tcp.EndReason
		want   *want
	}{
		{
			name:   "TLS-looking bytes, closed by FIN",
			role:   tcp.RoleClient,
			synAck: true,
			steps:  []step{{dir: tcp.Egress, data: tls}, {dir: tcp.Ingress, data: big}, {dir: tcp.Ingress, data: "xyz"}},
			end:    tcp.EndFIN,
			want: &want{src: local, dst: remote, up: int64(len(tls)), down: int64(len(big) + 3), upPreview: tls,
				downTruncated: true, latency: 4 * time.Millisecond},
		},
		{
			name:   "server side: the remote is the client",
			role:   tcp.RoleServer,
			synAck: true,
			steps:  []step{{dir: tcp.Ingress, data: tls}},
			end:    tcp.EndRST,
			want: &want{src: remote, dst: local, up: int64(len(tls)), upPreview: tls, latency: 2 * time.Millisecond,
				notes: []string{"ended by reset"}},
		},
		{
			name: "refused: SYN answered by RST",
			role: tcp.RoleClient,
			end:  tcp.EndRST,
			want: &want{src: local, dst: remote, failed: true, latency: time.Millisecond, notes: []string{"connection refused"}},
		},
		{
			name:   "connect and close without a byte (a TCP probe): no record",
			role:   tcp.RoleClient,
			synAck: true,
			end:    tcp.EndFIN,
		},
		{
			name:   "recognised protocol: no record",
			role:   tcp.RoleClient,
			synAck: true,
			steps:  []step{{dir: tcp.Egress, data: "PING\r\n"}, {dir: tcp.Ingress, data: "+PONG\r\n"}},
			end:    tcp.EndFIN,
		},
		{
			name:  "picked up mid-stream with a gap: client guessed by port, incomplete",
			role:  tcp.RoleUnknown,
			steps: []step{{dir: tcp.Ingress, data: big}, {dir: tcp.Egress, gap: 500}, {dir: tcp.Egress, data: tls}},
			end:   tcp.EndIdle,
			want: &want{src: local, dst: remote, up: int64(500 + len(tls)), down: int64(len(big)), downTruncated: true,
				latency: 3 * time.Millisecond, partial: true,
				notes: []string{"ended by idle timeout", "picked up mid-connection", "gap in capture"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []*entry.Entry
			d := New(Config{}, func(e *entry.Entry) {
				if e.Protocol == entry.ProtoTCP {
					got = append(got, e)
				}
			})
			start := time.Unix(1, 0)
			info := &tcp.ConnInfo{ID: 7, Role: tc.role, SynAck: tc.synAck, Local: local, Remote: remote, FirstSeen: start}
			h := d.Factory()(info)
			now := start
			for _, s := range tc.steps {
				now = now.Add(time.Millisecond)
				if s.gap > 0 {
					h.Gap(s.dir, s.gap, now)
					continue
				}
				h.Data(s.dir, []byte(s.data), now)
			}
			now = now.Add(time.Millisecond)
			if tc.end == tcp.EndIdle {
				now = now.Add(time.Minute) // noticed long after the last byte
			}
			h.End(tc.end, now)
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("got %d connection records, want none", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d connection records, want 1", len(got))
			}
			e, w := got[0], tc.want
			src, dst := netip.AddrPortFrom(e.Src.IP, e.Src.Port), netip.AddrPortFrom(e.Dst.IP, e.Dst.Port)
			if src != w.src || dst != w.dst {
				t.Errorf("src %v dst %v, want %v -> %v", src, dst, w.src, w.dst)
			}
			if n := bodyBytes(e.Request); n != w.up {
				t.Errorf("client sent %d bytes, want %d", n, w.up)
			}
			if n := bodyBytes(e.Response); n != w.down {
				t.Errorf("server sent %d bytes, want %d", n, w.down)
			}
			if w.upPreview != "" && !bytes.Equal(e.Request.Body, []byte(w.upPreview)) {
				t.Errorf("client preview %q, want %q", e.Request.Body, w.upPreview)
			}
			if e.Response != nil {
				if len(e.Response.Body) > previewBytes || e.Response.Truncated != w.downTruncated {
					t.Errorf("server preview %d bytes truncated=%v, want at most %d truncated=%v",
						len(e.Response.Body), e.Response.Truncated, previewBytes, w.downTruncated)
				}
			}
			if e.Latency != w.latency || !e.Time.Equal(start) {
				t.Errorf("time %v latency %v, want %v and %v", e.Time, e.Latency, start, w.latency)
			}
			if e.Failed != w.failed || e.Incomplete != w.partial {
				t.Errorf("failed=%v incomplete=%v, want %v %v", e.Failed, e.Incomplete, w.failed, w.partial)
			}
			if !slices.Equal(e.Notes, w.notes) {
				t.Errorf("notes %q, want %q", e.Notes, w.notes)
			}
			if e.ConnID != 7 {
				t.Errorf("conn id %d, want 7", e.ConnID)
			}
		})
	}
}

func bodyBytes(m *entry.Message) int64 {
	if m == nil {
		return 0
	}
	return m.BodyBytes
}
