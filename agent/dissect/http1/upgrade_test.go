package http1

import (
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// recorder is a handler that keeps what it is given.
type recorder struct {
	got   [2]strings.Builder
	gaps  int
	ended bool
}

func (r *recorder) Data(dir tcp.Dir, b []byte, _ time.Time) { r.got[dir].Write(b) }
func (r *recorder) Gap(tcp.Dir, int, time.Time)             { r.gaps++ }
func (r *recorder) End(tcp.EndReason, time.Time)            { r.ended = true }

// TestUpgradeHandsOver: after a 101 to a protocol Config.Upgrade takes,
// every later byte (the rest of the 101's segment included) goes to the
// next handler, and the upgraded request is left to it; a protocol it
// declines ends HTTP/1 parsing with the 101 entry as before.
func TestUpgradeHandsOver(t *testing.T) {
	req := "GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
	resp101 := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
	for _, tc := range []struct {
		name    string
		accept  bool
		entries int
	}{
		{"taken", true, 0},
		{"declined", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var emitted []*entry.Entry
			rec := &recorder{}
			var asked string
			var upReq *entry.Entry
			var upDir tcp.Dir = 9
			cfg := Config{Upgrade: func(proto string, r *entry.Entry, reqDir tcp.Dir) tcp.Handler {
				asked, upReq, upDir = proto, r, reqDir
				if !tc.accept {
					return nil
				}
				return rec
			}}
			c := New(cfg, &tcp.ConnInfo{Role: tcp.RoleServer}, func(e *entry.Entry) { emitted = append(emitted, e) }, nil)
			t0 := time.Unix(1, 0)
			c.Data(tcp.Ingress, []byte(req), t0)
			c.Data(tcp.Egress, []byte(resp101+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), t0.Add(time.Millisecond))
			c.Data(tcp.Ingress, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), t0.Add(2*time.Millisecond))
			c.Gap(tcp.Egress, 10, t0.Add(3*time.Millisecond))
			c.End(tcp.EndFIN, t0.Add(4*time.Millisecond))

			if asked != "h2c" || upReq == nil || upReq.Path != "/up" || upReq.Request.Header("http2-settings") == "" || upDir != tcp.Ingress {
				t.Fatalf("Upgrade asked for %q with request %+v from %v", asked, upReq, upDir)
			}
			if len(emitted) != tc.entries {
				t.Fatalf("%d HTTP/1 entries, want %d", len(emitted), tc.entries)
			}
			if !tc.accept {
				if emitted[0].Status != 101 || rec.got[0].Len()+rec.got[1].Len() != 0 {
					t.Fatalf("declined upgrade: status %d, next got bytes", emitted[0].Status)
				}
				return
			}
			if got := rec.got[tcp.Egress].String(); got != "\x00\x00\x00\x04\x00\x00\x00\x00\x00" {
				t.Errorf("server bytes after the 101: %q", got)
			}
			if got := rec.got[tcp.Ingress].String(); got != "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
				t.Errorf("client bytes after the 101: %q", got)
			}
			if rec.gaps != 1 || !rec.ended {
				t.Errorf("gaps %d ended %v: not passed on", rec.gaps, rec.ended)
			}
		})
	}
}
