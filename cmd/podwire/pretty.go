package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	"github.com/podwire/podwire/agent/server"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// hexDumpLimit is how much of a binary body `get` shows.
const hexDumpLimit = 4 << 10

// writeEntryText writes an entry for a person: a summary line, the facts,
// timings, then the request and the response with their bodies
// pretty-printed by content type.
func writeEntryText(w io.Writer, e *podwirev1.Entry, loc *time.Location, color bool) error {
	ew := &errWriter{w: w}
	if loc == nil {
		loc = time.Local
	}

	summary := clean(e.GetMethod() + " " + e.GetPath())
	if e.GetMethod() == e.GetPath() {
		summary = clean(e.GetPath())
	}
	result := "(no response)"
	if e.GetResponse() != nil || e.GetStatus() != 0 {
		result = statusText(e)
	}
	if e.GetFailed() {
		result = red(result+"  FAILED", color)
	}
	ew.printf("%s -> %s\n", bold(summary, color), result)

	field := func(name, value string) {
		if value != "" {
			ew.printf("  %-10s %s\n", name, value)
		}
	}
	field("id", clean(e.GetId()))
	if e.GetTime() != nil {
		field("time", e.GetTime().AsTime().In(loc).Format("2006-01-02 15:04:05.000000 MST"))
	}
	proto := clean(e.GetProtocol())
	if v := e.GetHttpVersion(); v != "" {
		proto += " " + httpVersion(v)
	}
	field("protocol", proto)
	field("src", endpointDetail(e.GetSrc()))
	field("dst", endpointDetail(e.GetDst()))
	field("node", clean(e.GetNode()))
	if e.GetConnId() != 0 {
		field("conn", strconv.FormatUint(e.GetConnId(), 10))
	}
	if e.GetResponse() != nil || e.GetLatencyMs() != 0 {
		field("latency", formatMs(e.GetLatencyMs()))
	}
	field("timings", timings(e))
	for _, n := range e.GetNotes() {
		field("note", clean(n))
	}
	if e.GetIncomplete() {
		field("incomplete", red("yes: some bytes of this exchange were lost (capture gap or cut connection)", color))
	}

	ew.printf("\n%s\n", bold("Request", color))
	ew.printf("%s\n", requestLine(e))
	writeMessage(ew, e.GetRequest())

	ew.printf("\n%s\n", bold("Response", color))
	if e.GetResponse() == nil {
		ew.printf("(no response seen)\n")
		return ew.err
	}
	ew.printf("%s\n", responseLine(e))
	writeMessage(ew, e.GetResponse())
	return ew.err
}

// writeMessage writes headers, a blank line, the body and the trailers.
func writeMessage(ew *errWriter, m *podwirev1.Message) {
	if m == nil {
		ew.printf("(not seen)\n")
		return
	}
	writeHeaders(ew, m.GetHeaderList(), m.GetHeaders())
	body := server.BodyBytes(m)
	switch {
	case len(body) > 0:
		ew.printf("\n")
		writeBody(ew, body, m.GetHeaders()["content-type"], m.GetBodyEncoding() == server.BodyEncodingBase64)
		if m.GetTruncated() {
			ew.printf("[body truncated: %d bytes kept, %d bytes on the wire]\n", len(body), m.GetBodyBytes())
		}
	case m.GetBodyBytes() > 0:
		ew.printf("\n[body of %d bytes not kept]\n", m.GetBodyBytes())
	}
	if len(m.GetTrailers()) > 0 {
		ew.printf("\ntrailers:\n")
		writeHeaders(ew, nil, m.GetTrailers())
	}
}

func writeHeaders(ew *errWriter, list []*podwirev1.Header, hm map[string]string) {
	if len(list) > 0 {
		for _, h := range list {
			ew.printf("%s: %s\n", clean(h.GetName()), clean(h.GetValue()))
		}
		return
	}
	names := make([]string, 0, len(hm))
	for name := range hm {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range strings.Split(hm[name], "\n") {
			ew.printf("%s: %s\n", clean(name), clean(v))
		}
	}
}

// Body kinds.
const (
	bodyJSON   = "json"
	bodyForm   = "form"
	bodyText   = "text"
	bodyBinary = "binary"
)

// bodyKind decides how to show a body from its content type and its bytes.
func bodyKind(contentType string, body []byte, binary bool) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(contentType))
	}
	switch {
	case binary || !utf8.Valid(body) || looksBinary(body):
		return bodyBinary
	case strings.HasPrefix(mt, "application/grpc"), mt == "application/octet-stream",
		strings.Contains(mt, "protobuf"), strings.HasPrefix(mt, "image/"),
		strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"):
		return bodyBinary
	case mt == "application/json", strings.HasSuffix(mt, "+json"), mt == "text/json":
		return bodyJSON
	case mt == "application/x-www-form-urlencoded":
		return bodyForm
	case mt == "" || mt == "text/plain":
		if t := bytes.TrimSpace(body); len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
			return bodyJSON
		}
	}
	return bodyText
}

// looksBinary reports whether text has control characters other than
// whitespace, which do not belong in a text body.
func looksBinary(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' || c == 0x7f {
			return true
		}
	}
	return false
}

// writeBody writes a body pretty-printed by kind: JSON indented, forms as
// "key = value" lines, text as it is, anything else as a hex dump.
func writeBody(ew *errWriter, body []byte, contentType string, binary bool) {
	switch bodyKind(contentType, body, binary) {
	case bodyJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err == nil {
			buf.WriteByte('\n')
			ew.write(buf.Bytes())
			return
		}
		// Cut or broken JSON: show it as text.
		writeText(ew, body)
	case bodyForm:
		writeForm(ew, body)
	case bodyText:
		writeText(ew, body)
	default:
		writeHexDump(ew, body, hexDumpLimit)
	}
}

func writeText(ew *errWriter, body []byte) {
	s := strings.ReplaceAll(string(body), "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if isControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
	ew.printf("%s", s)
	if !strings.HasSuffix(s, "\n") {
		ew.printf("\n")
	}
}

// writeForm writes an application/x-www-form-urlencoded body as
// "key = value" lines, in order, unescaped.
func writeForm(ew *errWriter, body []byte) {
	for _, pair := range strings.Split(strings.TrimSpace(string(body)), "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		ew.printf("%s = %s\n", clean(unescape(k)), clean(unescape(v)))
	}
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// writeHexDump writes b like `xxd`: offset, 16 bytes in groups of two, then
// the printable characters; at most limit bytes, then "... N more bytes".
func writeHexDump(ew *errWriter, b []byte, limit int) {
	const hex = "0123456789abcdef"
	shown := b
	if limit >= 0 && len(shown) > limit {
		shown = shown[:limit]
	}
	line := make([]byte, 0, 80)
	for off := 0; off < len(shown); off += 16 {
		row := shown[off:min(off+16, len(shown))]
		line = append(line[:0], fmt.Sprintf("%08x: ", off)...)
		for i := range 16 {
			if i < len(row) {
				line = append(line, hex[row[i]>>4], hex[row[i]&0xf])
			} else {
				line = append(line, ' ', ' ')
			}
			if i%2 == 1 && i < 15 {
				line = append(line, ' ')
			}
		}
		line = append(line, ' ', ' ')
		for _, c := range row {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			line = append(line, c)
		}
		line = append(line, '\n')
		ew.write(line)
	}
	if rest := len(b) - len(shown); rest > 0 {
		ew.printf("... %d more bytes\n", rest)
	}
}

// statusText is the status with its meaning: "503 Service Unavailable",
// "14 Unavailable", "3 NXDOMAIN".
func statusText(e *podwirev1.Entry) string {
	n := e.GetStatus()
	s := strconv.Itoa(int(n))
	var text string
	switch e.GetProtocol() {
	case "http":
		text = http.StatusText(int(n))
	case "grpc":
		if n >= 0 && n <= 16 {
			text = codes.Code(n).String()
		}
	case "dns":
		text = dnsRcode(n)
	case "redis":
		text = "OK"
		if n != 0 {
			text = "error"
		}
	}
	if text != "" {
		s += " " + text
	}
	return s
}

func dnsRcode(n int32) string {
	names := []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
		"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}
	if n >= 0 && int(n) < len(names) {
		return names[n]
	}
	return ""
}

func httpVersion(v string) string {
	if strings.HasPrefix(v, "HTTP/") {
		return clean(v)
	}
	return "HTTP/" + clean(v)
}

// requestLine is the first line of the request section.
func requestLine(e *podwirev1.Entry) string {
	switch e.GetProtocol() {
	case "http":
		line := clean(e.GetMethod() + " " + e.GetPath())
		if v := e.GetHttpVersion(); v != "" {
			line += " " + httpVersion(v)
		}
		return line
	case "grpc":
		return "gRPC " + clean(e.GetPath())
	}
	if e.GetMethod() == e.GetPath() {
		return clean(e.GetMethod())
	}
	return clean(strings.TrimSpace(e.GetMethod() + " " + e.GetPath()))
}

// responseLine is the first line of the response section.
func responseLine(e *podwirev1.Entry) string {
	switch e.GetProtocol() {
	case "http":
		v := "HTTP"
		if e.GetHttpVersion() != "" {
			v = httpVersion(e.GetHttpVersion())
		}
		return v + " " + statusText(e)
	case "grpc":
		return "grpc-status " + statusText(e)
	case "dns":
		return "rcode " + statusText(e)
	}
	return "status " + statusText(e)
}

// endpointDetail is an endpoint with everything known about it:
// "shop/cart (pod cart-7d9c, Deployment cart, svc cart) 10.0.0.7:8080 node-a".
func endpointDetail(p *podwirev1.Endpoint) string {
	if p == nil {
		return ""
	}
	var parts []string
	if p.GetPod() != "" {
		parts = append(parts, "pod "+p.GetPod())
	}
	if p.GetWorkload() != "" {
		kind := p.GetWorkloadKind()
		if kind == "" {
			kind = "workload"
		}
		parts = append(parts, kind+" "+p.GetWorkload())
	}
	if p.GetService() != "" {
		parts = append(parts, "svc "+p.GetService())
	}
	if p.GetProcess() != "" {
		parts = append(parts, "process "+p.GetProcess())
	}
	if p.GetNode() != "" {
		parts = append(parts, "node "+p.GetNode())
	}
	s := endpointAddr(p)
	if ns := p.GetNamespace(); ns != "" {
		parts = append([]string{"namespace " + ns}, parts...)
	}
	if len(parts) > 0 {
		if s == "" {
			s = "-"
		}
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return clean(s)
}

// timings splits the latency: sending the request, waiting for the
// response, receiving it.
func timings(e *podwirev1.Entry) string {
	req, resp := e.GetRequest(), e.GetResponse()
	var parts []string
	if req.GetStart() != nil && req.GetEnd() != nil {
		parts = append(parts, "request "+formatDur(req.GetEnd().AsTime().Sub(req.GetStart().AsTime())))
	}
	if req.GetEnd() != nil && resp.GetStart() != nil {
		parts = append(parts, "wait "+formatDur(resp.GetStart().AsTime().Sub(req.GetEnd().AsTime())))
	}
	if resp.GetStart() != nil && resp.GetEnd() != nil {
		parts = append(parts, "response "+formatDur(resp.GetEnd().AsTime().Sub(resp.GetStart().AsTime())))
	}
	return strings.Join(parts, ", ")
}

func formatDur(d time.Duration) string {
	return formatMs(float64(d) / float64(time.Millisecond))
}

// errWriter keeps the first write error so formatting code can ignore it.
type errWriter struct {
	w   io.Writer
	err error
}

func (ew *errWriter) write(b []byte) {
	if ew.err == nil {
		_, ew.err = ew.w.Write(b)
	}
}

func (ew *errWriter) printf(format string, args ...any) {
	if ew.err == nil {
		_, ew.err = fmt.Fprintf(ew.w, format, args...)
	}
}
