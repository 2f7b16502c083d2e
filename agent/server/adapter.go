package server

import (
	"encoding/base64"
	"net/netip"
	"sort"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// BodyEncodingBase64 is Message.body_encoding for a binary body.
const BodyEncodingBase64 = "base64"

// ToProto converts an entry to its wire form. maxBody bounds each body:
// negative keeps the whole body, 0 drops the body text (body_bytes and
// truncated stay as they are), n > 0 cuts it to n bytes and sets truncated
// when something was cut. A body that is valid UTF-8 is sent as text (cut
// on a character boundary), any other body as base64.
func ToProto(e *entry.Entry, maxBody int) *podwirev1.Entry {
	return toProto(e, maxBody, true)
}

// toProto is ToProto, leaving out headers and trailers unless headers.
func toProto(e *entry.Entry, maxBody int, headers bool) *podwirev1.Entry {
	if e == nil {
		return nil
	}
	return &podwirev1.Entry{
		Id:          e.ID,
		Time:        timestamp(e.Time),
		Protocol:    e.Protocol,
		HttpVersion: e.HTTPVersion,
		Src:         endpointToProto(&e.Src),
		Dst:         endpointToProto(&e.Dst),
		Method:      e.Method,
		Path:        e.Path,
		Status:      e.Status,
		Failed:      e.Failed,
		LatencyMs:   float64(e.Latency) / float64(time.Millisecond),
		Request:     messageToProto(e.Request, maxBody, headers),
		Response:    messageToProto(e.Response, maxBody, headers),
		Node:        e.Node,
		Incomplete:  e.Incomplete,
		Notes:       append([]string(nil), e.Notes...),
		ConnId:      e.ConnID,
	}
}

// FromProto converts a wire entry back to the domain type. Headers come from
// header_list when it is set, otherwise from the headers map in name order.
func FromProto(p *podwirev1.Entry) *entry.Entry {
	if p == nil {
		return nil
	}
	e := &entry.Entry{
		ID:          p.GetId(),
		Protocol:    p.GetProtocol(),
		HTTPVersion: p.GetHttpVersion(),
		Src:         endpointFromProto(p.GetSrc()),
		Dst:         endpointFromProto(p.GetDst()),
		Method:      p.GetMethod(),
		Path:        p.GetPath(),
		Status:      p.GetStatus(),
		Failed:      p.GetFailed(),
		Latency:     time.Duration(p.GetLatencyMs()*float64(time.Millisecond) + 0.5),
		Request:     messageFromProto(p.GetRequest()),
		Response:    messageFromProto(p.GetResponse()),
		Incomplete:  p.GetIncomplete(),
		Notes:       append([]string(nil), p.GetNotes()...),
		ConnID:      p.GetConnId(),
		Node:        p.GetNode(),
	}
	if p.GetTime() != nil {
		e.Time = p.GetTime().AsTime()
	}
	return e
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func endpointToProto(p *entry.Endpoint) *podwirev1.Endpoint {
	id := p.Ident()
	out := &podwirev1.Endpoint{
		Port:         uint32(p.Port),
		Pod:          id.Pod,
		Namespace:    id.Namespace,
		Workload:     id.Workload,
		WorkloadKind: id.WorkloadKind,
		Service:      id.Service,
		Node:         id.Node,
		Process:      id.Process,
	}
	if p.IP.IsValid() {
		out.Ip = p.IP.Unmap().String()
	}
	return out
}

func endpointFromProto(p *podwirev1.Endpoint) entry.Endpoint {
	if p == nil {
		return entry.Endpoint{}
	}
	ip, _ := netip.ParseAddr(p.GetIp())
	out := entry.Endpoint{IP: ip, Port: uint16(p.GetPort())}
	id := entry.Identity{
		Pod:          p.GetPod(),
		Namespace:    p.GetNamespace(),
		Workload:     p.GetWorkload(),
		WorkloadKind: p.GetWorkloadKind(),
		Service:      p.GetService(),
		Node:         p.GetNode(),
		Process:      p.GetProcess(),
	}
	if id != (entry.Identity{}) {
		out.Who = &id
	}
	return out
}

func messageToProto(m *entry.Message, maxBody int, headers bool) *podwirev1.Message {
	if m == nil {
		return nil
	}
	out := &podwirev1.Message{
		BodyBytes: m.BodyBytes,
		Truncated: m.Truncated,
		Start:     timestamp(m.Start),
		End:       timestamp(m.End),
	}
	if !headers {
		return withBody(out, m.Body, maxBody)
	}
	out.Headers = m.HeaderMap()
	if len(m.Headers) > 0 {
		out.HeaderList = make([]*podwirev1.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.HeaderList[i] = &podwirev1.Header{Name: h.Name, Value: h.Value}
		}
	}
	if len(m.Trailers) > 0 {
		out.Trailers = (&entry.Message{Headers: m.Trailers}).HeaderMap()
	}
	return withBody(out, m.Body, maxBody)
}

// withBody sets out's body from body as ToProto describes.
func withBody(out *podwirev1.Message, body []byte, maxBody int) *podwirev1.Message {
	if maxBody == 0 || len(body) == 0 {
		return out
	}
	text := utf8.Valid(body)
	if maxBody > 0 && len(body) > maxBody {
		n := maxBody
		if text {
			// Back up to the start of the character the cut would split.
			for n > 0 && !utf8.RuneStart(body[n]) {
				n--
			}
		}
		body = body[:n]
		out.Truncated = true
	}
	if text {
		out.Body = string(body)
	} else {
		out.Body = base64.StdEncoding.EncodeToString(body)
		out.BodyEncoding = BodyEncodingBase64
	}
	return out
}

func messageFromProto(p *podwirev1.Message) *entry.Message {
	if p == nil {
		return nil
	}
	m := &entry.Message{
		BodyBytes: p.GetBodyBytes(),
		Truncated: p.GetTruncated(),
	}
	if p.GetStart() != nil {
		m.Start = p.GetStart().AsTime()
	}
	if p.GetEnd() != nil {
		m.End = p.GetEnd().AsTime()
	}
	if len(p.GetHeaderList()) > 0 {
		for _, h := range p.GetHeaderList() {
			m.Headers = append(m.Headers, entry.Header{Name: h.GetName(), Value: h.GetValue()})
		}
	} else {
		m.Headers = headersFromMap(p.GetHeaders())
	}
	m.Trailers = headersFromMap(p.GetTrailers())
	m.Body = BodyBytes(p)
	return m
}

// BodyBytes returns a wire message's body as bytes, decoding base64.
// A body that does not decode is returned as it is.
func BodyBytes(p *podwirev1.Message) []byte {
	if p.GetBody() == "" {
		return nil
	}
	if p.GetBodyEncoding() == BodyEncodingBase64 {
		if b, err := base64.StdEncoding.DecodeString(p.GetBody()); err == nil {
			return b
		}
	}
	return []byte(p.GetBody())
}

func headersFromMap(hm map[string]string) []entry.Header {
	if len(hm) == 0 {
		return nil
	}
	names := make([]string, 0, len(hm))
	for name := range hm {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]entry.Header, len(names))
	for i, name := range names {
		out[i] = entry.Header{Name: name, Value: hm[name]}
	}
	return out
}
