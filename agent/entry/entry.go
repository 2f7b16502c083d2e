// Package entry defines the request/response record every stage of the agent
// passes along: dissectors build it, the store keeps it, the server turns it
// into the wire type.
package entry

import (
	"net/netip"
	"strings"
	"time"
	"unsafe"
)

// Protocol names used in Entry.Protocol.
const (
	ProtoHTTP  = "http"
	ProtoGRPC  = "grpc"
	ProtoRedis = "redis"
	ProtoDNS   = "dns"
	// ProtoTCP is a connection no dissector understood, as one record:
	// bytes each way, duration, how it ended.
	ProtoTCP = "tcp"
)

// Endpoint is one side of an exchange: its address and, when known, who
// was there at capture time.
type Endpoint struct {
	IP   netip.Addr
	Port uint16
	// Who is the identity at capture time, nil when none is known. An
	// Identity is immutable and shared by every entry of the same pod (or
	// process) incarnation, so an entry costs a pointer, not the names.
	Who *Identity
}

// Identity names a pod (or a process outside any pod) as it was at some
// moment. It is never changed once an entry points to it: a change makes a
// new Identity, so old entries keep the names valid when they were taken.
type Identity struct {
	Pod          string
	Namespace    string
	Workload     string
	WorkloadKind string
	Service      string
	Node         string
	Process      string
}

// noIdentity is what an Endpoint without one reads as.
var noIdentity Identity

// Ident returns the endpoint's identity, never nil: an empty one when none
// is known.
func (p *Endpoint) Ident() *Identity {
	if p.Who == nil {
		return &noIdentity
	}
	return p.Who
}

// Size is the memory the identity's strings hold.
func (id *Identity) Size() int {
	return int(unsafe.Sizeof(Identity{})) + len(id.Pod) + len(id.Namespace) + len(id.Workload) + len(id.WorkloadKind) + len(id.Service) + len(id.Node) + len(id.Process)
}

// EndpointAt is the endpoint at an address, with no identity yet.
func EndpointAt(ap netip.AddrPort) Endpoint {
	return Endpoint{IP: ap.Addr(), Port: ap.Port()}
}

// EndpointWith is the endpoint at an address with the identity who (nil
// when unknown).
func EndpointWith(ap netip.AddrPort, who *Identity) Endpoint {
	return Endpoint{IP: ap.Addr(), Port: ap.Port(), Who: who}
}

// Header is one header line; Name is lower-case.
type Header struct {
	Name  string
	Value string
}

// Message is a request or a response.
type Message struct {
	// Headers in the order they arrived, names lower-case.
	Headers []Header
	// Trailers (chunked encoding), names lower-case.
	Trailers []Header
	// Body is the body as kept: decoded from gzip/deflate when it was
	// encoded, cut at the body limit.
	Body []byte
	// BodyBytes is the size of the body on the wire (before decoding), also
	// when Body was truncated.
	BodyBytes int64
	// Truncated is true when Body holds less than the whole (decoded) body.
	Truncated bool
	// Start is when the first byte was seen, End when the last was.
	Start, End time.Time
}

// Header returns the first value of the header named name (lower-case), or "".
func (m *Message) Header(name string) string {
	if m == nil {
		return ""
	}
	for _, h := range m.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// HeaderMap joins repeated headers with ", " (Set-Cookie with "\n"), as the
// wire type and the filter language see them.
func (m *Message) HeaderMap() map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		if prev, ok := out[h.Name]; ok {
			sep := ", "
			if h.Name == "set-cookie" {
				sep = "\n"
			}
			out[h.Name] = prev + sep + h.Value
			continue
		}
		out[h.Name] = h.Value
	}
	return out
}

// Entry is one request and its response.
type Entry struct {
	// ID is unique across the cluster: "<node>-<sequence>".
	ID string
	// Time is when the request started.
	Time        time.Time
	Protocol    string
	HTTPVersion string
	Src, Dst    Endpoint
	Method      string
	Path        string
	Status      int32
	Failed      bool
	// Latency runs from the request's first byte to the response's last.
	Latency time.Duration
	// Request and Response; Response is nil when none was seen.
	Request, Response *Message
	// Incomplete marks an entry some of whose bytes were lost (a capture gap,
	// a connection cut mid-message, capture started mid-message).
	Incomplete bool
	// Notes are short facts worth showing: "upgrade: websocket",
	// "100-continue", "gap in response body".
	Notes []string
	// ConnID identifies the connection the entry came from on its node.
	ConnID uint64
	// Node is the node that captured the entry.
	Node string
}

// Sizes of the structs an entry is made of, for Size.
var (
	entrySize   = int(unsafe.Sizeof(Entry{}))
	messageSize = int(unsafe.Sizeof(Message{}))
	headerSize  = int(unsafe.Sizeof(Header{}))
)

// allocSlack is what allocation adds per entry beyond its fields: rounding
// to size classes, a dissector's wrapper around the entry, the store's id.
const allocSlack = 96

// Size is the memory the entry holds, for store accounting: the structs,
// the strings and bodies they point to, and allocation overhead. It errs on
// the high side so that the store's bound is a bound on memory.
func (e *Entry) Size() int {
	n := entrySize + allocSlack + len(e.ID) + len(e.Protocol) + len(e.HTTPVersion) + len(e.Method) + len(e.Path) + len(e.Node)
	// Identities are shared by many entries and accounted for where they
	// are kept (the identity cache), not per entry.
	for _, s := range e.Notes {
		n += 16 + len(s)
	}
	n += e.Request.size() + e.Response.size()
	return n
}

// size counts a header's text with its separators (": " and CRLF), as the
// header block it usually points into holds it.
func (m *Message) size() int {
	if m == nil {
		return 0
	}
	n := messageSize + cap(m.Body) + (cap(m.Headers)+cap(m.Trailers))*headerSize
	for _, h := range m.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	for _, h := range m.Trailers {
		n += len(h.Name) + len(h.Value) + 4
	}
	return n
}

// AddNote appends a note once.
func (e *Entry) AddNote(note string) {
	for _, n := range e.Notes {
		if n == note {
			return
		}
	}
	e.Notes = append(e.Notes, note)
}

// Summary is a one-line description like "GET /api/cart -> 503".
func (e *Entry) Summary() string {
	var b strings.Builder
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	return b.String()
}
