package http2

import (
	"slices"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// NoteUpgraded marks the entry of stream 1 of a connection upgraded to
// h2c: its request came in HTTP/1.1.
const NoteUpgraded = "h2c upgrade from HTTP/1.1"

// Upgraded is the HTTP/1.1 request that asked for h2c (RFC 7540 section
// 3.2); on the upgraded connection it becomes stream 1, whose request is
// complete and whose response comes in HTTP/2.
type Upgraded struct {
	Method, Path string
	// Authority is the request's host; a "host" header is added from it
	// when Headers has none, as for HTTP/2 requests.
	Authority string
	// Headers (names lower-case), Body (as kept), BodyBytes, Truncated,
	// Start and End are the request's, as entry.Message has them; the
	// entry keeps Headers and Body without copying them.
	Headers    []entry.Header
	Body       []byte
	BodyBytes  int64
	Truncated  bool
	Start, End time.Time
}

// UpgradedFrom is the Upgraded of an HTTP/1.1 entry whose request asked
// for h2c, as the HTTP/1 dissector hands it over.
func UpgradedFrom(e *entry.Entry) Upgraded {
	u := Upgraded{Method: e.Method, Path: e.Path}
	if m := e.Request; m != nil {
		u.Authority = m.Header("host")
		u.Headers, u.Body, u.BodyBytes, u.Truncated = m.Headers, m.Body, m.BodyBytes, m.Truncated
		u.Start, u.End = m.Start, m.End
	}
	if u.Start.IsZero() {
		u.Start = e.Time
	}
	return u
}

// NewUpgraded returns the handler of a connection upgraded from HTTP/1.1
// to h2c once the server's 101 (Switching Protocols) is seen: the client's
// bytes (direction clientDir) start with the HTTP/2 connection preface, the
// server's with its first frame (its SETTINGS), and stream 1, opened by
// req, is half-closed for the client: the server's HEADERS, DATA and
// trailers on it complete req's entry (HTTP/2, noted NoteUpgraded). Other
// streams are as with New, and so are the arguments.
func NewUpgraded(cfg Config, info *tcp.ConnInfo, emit func(*entry.Entry), stats *Stats, clientDir tcp.Dir, req Upgraded) tcp.Handler {
	c := New(cfg, info, emit, stats).(*conn)
	if clientDir > 1 {
		clientDir = tcp.Egress
	}
	c.client = int8(clientDir)
	c.fresh, c.started = true, true
	c.h[clientDir^1].st = stHeader // no preface from the server

	c.stats.Streams.Add(1)
	s := c.open(1)
	s.upgraded = true
	s.e.ConnID = c.info.ID
	s.reqDir = clientDir
	s.sawReq, s.reqEnded = true, true
	s.e.Method, s.e.Path, s.authority = req.Method, req.Path, req.Authority
	m := s.req
	m.Headers = req.Headers
	if req.Authority != "" && m.Header("host") == "" {
		m.Headers = append(slices.Clip(m.Headers), entry.Header{Name: "host", Value: req.Authority})
	}
	m.Body, m.BodyBytes, m.Truncated = req.Body, req.BodyBytes, req.Truncated
	m.Start, m.End = req.Start, req.End
	if m.End.IsZero() {
		m.End = m.Start
	}
	s.e.AddNote(NoteUpgraded)
	return c
}
