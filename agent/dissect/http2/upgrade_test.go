package http2

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// upgradedReq is the HTTP/1.1 request of the h2c upgrade in these tests.
var upgradedReq = Upgraded{
	Method: "POST", Path: "/up?x=1", Authority: "shop.local",
	Headers: []entry.Header{
		{Name: "host", Value: "shop.local"},
		{Name: "connection", Value: "Upgrade, HTTP2-Settings"},
		{Name: "upgrade", Value: "h2c"},
		{Name: "http2-settings", Value: "AAMAAABkAAQAoAAAAAIAAAAA"},
		{Name: "content-type", Value: "text/plain"},
	},
	Body: []byte("ping"), BodyBytes: 4,
	Start: time.Unix(999, 0), End: time.Unix(999, 0).Add(time.Millisecond),
}

// upgradedConv is what follows the 101: the client's preface and SETTINGS,
// the server's SETTINGS (no preface), as h2c peers send them.
func upgradedConv() *conv {
	v := newConv(false)
	v.raw(true, []byte(http2.ClientPreface))
	v.frames(true, func(fr *http2.Framer) { fr.WriteSettings() })
	v.frames(false, func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	})
	v.frames(true, func(fr *http2.Framer) { fr.WriteSettingsAck() })
	v.frames(false, func(fr *http2.Framer) { fr.WriteSettingsAck() })
	return v
}

// eachUpgraded is each with the handler of an upgraded connection.
func eachUpgraded(t *testing.T, v *conv, req Upgraded, check func(t *testing.T, es []*entry.Entry, st *Stats)) {
	for _, role := range []tcp.Role{tcp.RoleClient, tcp.RoleServer, tcp.RoleUnknown} {
		clientDir := tcp.Egress
		if role == tcp.RoleServer {
			clientDir = tcp.Ingress
		}
		for mode := range 5 {
			es, st := runWith(t, v, role, mode, func(info *tcp.ConnInfo, emit func(*entry.Entry), st *Stats) tcp.Handler {
				return NewUpgraded(Config{}, info, emit, st, clientDir, req)
			})
			check(t, es, st)
			if t.Failed() {
				t.Fatalf("failed with role %d mode %d", role, mode)
			}
			for _, e := range es {
				wantSrc, wantDst := local, remote
				if role == tcp.RoleServer {
					wantSrc, wantDst = remote, local
				}
				if e.Src.Port != wantSrc.Port() || e.Dst.Port != wantDst.Port() || e.HTTPVersion != "2" || e.ConnID != 7 {
					t.Fatalf("role %d: src %v dst %v version %q conn %d", role, e.Src, e.Dst, e.HTTPVersion, e.ConnID)
				}
			}
		}
	}
}

// TestUpgraded: the server's response on stream 1 completes the upgraded
// request; streams 3 and 5 follow as usual, their headers decoded with the
// tables both sides filled from the start (the server's first block is
// stream 1's response).
func TestUpgraded(t *testing.T) {
	v := upgradedConv()
	v.headers(false, 1, false, ":status", "201", "content-type", "text/plain", "x-served-by", "pod-a")
	v.data(false, 1, true, []byte("pong"))
	v.get(3, "/three")
	v.headers(true, 5, false, ":method", "POST", ":scheme", "http", ":authority", "shop.local", ":path", "/five", "user-agent", "test/1")
	v.data(true, 5, true, []byte("body5"))
	// Indexed from the server's table, entered with stream 1's response.
	v.headers(false, 3, false, ":status", "201", "content-type", "text/plain", "x-served-by", "pod-a")
	v.data(false, 3, true, []byte("three"))
	v.headers(false, 5, true, ":status", "404", "x-served-by", "pod-a")
	eachUpgraded(t, v, upgradedReq, func(t *testing.T, es []*entry.Entry, st *Stats) {
		if len(es) != 3 {
			t.Fatalf("%d entries", len(es))
		}
		e := es[0]
		if e.Method != "POST" || e.Path != "/up?x=1" || e.Status != 201 || e.Incomplete || e.Failed || e.Protocol != entry.ProtoHTTP {
			t.Errorf("stream 1: %+v", e)
		}
		if !slices.Contains(e.Notes, NoteUpgraded) {
			t.Errorf("stream 1 notes %v", e.Notes)
		}
		if !slices.Equal(e.Request.Headers, upgradedReq.Headers) || string(e.Request.Body) != "ping" || e.Request.BodyBytes != 4 {
			t.Errorf("stream 1 request %+v", e.Request)
		}
		if e.Response == nil || string(e.Response.Body) != "pong" || e.Response.Header("x-served-by") != "pod-a" || e.Response.Header("content-type") != "text/plain" {
			t.Fatalf("stream 1 response %+v", e.Response)
		}
		if !e.Time.Equal(upgradedReq.Start) || e.Latency <= 0 {
			t.Errorf("stream 1 time %v latency %v", e.Time, e.Latency)
		}
		e = es[1]
		if e.Path != "/three" || e.Status != 201 || e.Incomplete || string(e.Response.Body) != "three" || e.Response.Header("x-served-by") != "pod-a" ||
			e.Request.Header("host") != "shop.local" || slices.Contains(e.Notes, NoteUpgraded) {
			t.Errorf("stream 3: %+v %+v %+v", e, e.Request, e.Response)
		}
		e = es[2]
		if e.Method != "POST" || e.Path != "/five" || e.Status != 404 || e.Incomplete || string(e.Request.Body) != "body5" || e.Response.Header("x-served-by") != "pod-a" {
			t.Errorf("stream 5: %+v %+v", e, e.Response)
		}
		if st.HPACKErrors.Load() != 0 || st.Malformed.Load() != 0 || st.Entries.Load() != 3 || st.Streams.Load() != 3 {
			t.Errorf("stats %v", st.Snapshot())
		}
	})
}

// TestUpgradedTrailers: a gRPC-like response with trailers on stream 1,
// and an Upgraded without a host header gets one from its authority.
func TestUpgradedTrailers(t *testing.T) {
	v := upgradedConv()
	v.headers(false, 1, false, ":status", "200")
	v.data(false, 1, false, []byte("part"))
	v.headers(false, 1, true, "x-checksum", "abc")
	req := Upgraded{Method: "GET", Path: "/", Authority: "a.local", Start: time.Unix(999, 0)}
	eachUpgraded(t, v, req, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if e.Status != 200 || e.Incomplete || string(e.Response.Body) != "part" || len(e.Response.Trailers) != 1 || e.Response.Trailers[0].Value != "abc" {
			t.Errorf("entry %+v response %+v", e, e.Response)
		}
		if e.Request.Header("host") != "a.local" || len(e.Request.Headers) != 1 || e.Request.Body != nil {
			t.Errorf("request %+v", e.Request)
		}
	})
}

// TestUpgradedNoResponse: a connection that ends before the response on
// stream 1 emits the upgraded request alone, incomplete.
func TestUpgradedNoResponse(t *testing.T) {
	v := upgradedConv()
	eachUpgraded(t, v, upgradedReq, func(t *testing.T, es []*entry.Entry, st *Stats) {
		e := one(t, es)
		if !e.Incomplete || e.Response != nil || e.Path != "/up?x=1" || string(e.Request.Body) != "ping" {
			t.Errorf("entry %+v", e)
		}
		if !slices.Contains(e.Notes, NoteUpgraded) || !slices.Contains(e.Notes, "connection ended before the stream did") {
			t.Errorf("notes %v", e.Notes)
		}
		if st.Incomplete.Load() != 1 {
			t.Errorf("stats %v", st.Snapshot())
		}
	})
	// Nothing at all after the 101.
	var got []*entry.Entry
	h := NewUpgraded(Config{}, nil, func(e *entry.Entry) { got = append(got, e) }, nil, tcp.Ingress, upgradedReq)
	h.End(tcp.EndRST, time.Unix(1000, 0))
	if len(got) != 1 || !got[0].Incomplete || got[0].Response != nil || got[0].Method != "POST" {
		t.Fatalf("entries %+v", got)
	}
}

// TestUpgradedFrom: the HTTP/1 entry handed over becomes the Upgraded.
func TestUpgradedFrom(t *testing.T) {
	t0 := time.Unix(5, 0)
	e := &entry.Entry{Method: "GET", Path: "/x", Time: t0, Request: &entry.Message{
		Headers: []entry.Header{{Name: "host", Value: "h.local"}, {Name: "upgrade", Value: "h2c"}},
		Body:    []byte("b"), BodyBytes: 1, Start: t0, End: t0.Add(time.Second),
	}}
	u := UpgradedFrom(e)
	if u.Method != "GET" || u.Path != "/x" || u.Authority != "h.local" || len(u.Headers) != 2 || string(u.Body) != "b" || u.BodyBytes != 1 || !u.Start.Equal(t0) || !u.End.Equal(t0.Add(time.Second)) {
		t.Errorf("%+v", u)
	}
	if u := UpgradedFrom(&entry.Entry{Method: "GET", Time: t0}); !u.Start.Equal(t0) {
		t.Errorf("no request: %+v", u)
	}
}
