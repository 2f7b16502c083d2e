package http1

import (
	"bytes"
	"strings"

	"github.com/podwire/podwire/agent/entry"
)

// Transfer codings as far as framing is concerned.
const (
	teNone uint8 = iota
	teChunked
	teOther // a coding list not ending in chunked
)

// head is a parsed start line and header block.
type head struct {
	method, target string
	version        string
	status         int
	headers        []entry.Header
	cl             int64 // Content-Length, -1 when absent
	te             uint8
	enc            uint8
	upgrade        string
}

// parseRequestLine parses "METHOD SP target SP HTTP/1.x".
func parseRequestLine(line string, p *head) bool {
	sp1 := strings.IndexByte(line, ' ')
	sp2 := strings.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp1 >= 32 || sp2 <= sp1+1 {
		return false
	}
	method := line[:sp1]
	for i := 0; i < len(method); i++ {
		if !isTchar(method[i]) {
			return false
		}
	}
	v, ok := version(line[sp2+1:])
	if !ok {
		return false
	}
	p.method = internMethod(method)
	p.target = line[sp1+1 : sp2]
	p.version = v
	return true
}

// parseStatusLine parses "HTTP/1.x SP NNN [SP reason]".
func parseStatusLine(line string, p *head) bool {
	if len(line) < 12 || (len(line) > 12 && line[12] != ' ') || line[8] != ' ' {
		return false
	}
	v, ok := version(line[:8])
	if !ok {
		return false
	}
	d0, d1, d2 := line[9]-'0', line[10]-'0', line[11]-'0'
	if d0 > 9 || d1 > 9 || d2 > 9 || d0 == 0 {
		return false
	}
	p.version = v
	p.status = int(d0)*100 + int(d1)*10 + int(d2)
	return true
}

// version checks "HTTP/1.x" and returns "1.x".
func version(s string) (string, bool) {
	if len(s) != 8 || s[:7] != "HTTP/1." || s[7] < '0' || s[7] > '9' {
		return "", false
	}
	switch s[7] {
	case '1':
		return "1.1", true
	case '0':
		return "1.0", true
	}
	return s[5:], true
}

// field locates one header line of a block by offsets: name and value, or
// only a value for a folded continuation line.
type field struct {
	ns, ne, vs, ve int32
	fold           bool
}

// scanBlock finds the end of the header block that starts b: a start line
// when first is set, then header lines up to an empty line. It notes where
// each header is in fs. end is -1 when b holds no complete block; ok is
// false when a line is not a header.
func scanBlock(b []byte, first bool, fs []field) (out []field, lineEnd, end int, ok bool) {
	ok = true
	pos := 0
	if first {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return fs, 0, -1, ok
		}
		lineEnd = nl
		pos = nl + 1
	}
	for {
		if pos >= len(b) {
			return fs, lineEnd, -1, ok
		}
		switch b[pos] {
		case '\n':
			return fs, lineEnd, pos + 1, ok
		case '\r':
			if pos+1 == len(b) {
				return fs, lineEnd, -1, ok
			}
			if b[pos+1] == '\n' {
				return fs, lineEnd, pos + 2, ok
			}
		}
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			return fs, lineEnd, -1, ok
		}
		le := pos + i
		if b[le-1] == '\r' {
			le--
		}
		if c := b[pos]; c == ' ' || c == '\t' {
			ok = ok && len(fs) > 0
			fs = append(fs, field{vs: int32(pos), ve: int32(le), fold: true})
		} else if colon := bytes.IndexByte(b[pos:le], ':'); colon > 0 {
			fs = append(fs, field{ns: int32(pos), ne: int32(pos + colon), vs: int32(pos + colon + 1), ve: int32(le)})
		} else {
			ok = false
		}
		pos += i + 1
	}
}

// buildHeaders makes the headers of a block from its fields; s is the
// block as a string, so names and values share its memory.
func buildHeaders(s string, fs []field) ([]entry.Header, bool) {
	if len(fs) == 0 {
		return nil, true
	}
	hs := make([]entry.Header, 0, len(fs))
	for _, f := range fs {
		v := trimOWS(s[f.vs:f.ve])
		if f.fold {
			// obs-fold: the line continues the previous value.
			if v != "" {
				last := &hs[len(hs)-1]
				if last.Value == "" {
					last.Value = v
				} else {
					last.Value = last.Value + " " + v
				}
			}
			continue
		}
		name := s[f.ns:f.ne]
		for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
			name = name[:len(name)-1]
		}
		if name == "" {
			return nil, false
		}
		hs = append(hs, entry.Header{Name: lowerName(name), Value: v})
	}
	return hs, true
}

// parseHead parses a complete header block s whose start line ends at
// lineEnd and whose headers are at fs.
func parseHead(s string, lineEnd int, fs []field, req bool, p *head) bool {
	line := s[:lineEnd]
	if lineEnd > 0 && line[lineEnd-1] == '\r' {
		line = line[:lineEnd-1]
	}
	var ok bool
	if req {
		ok = parseRequestLine(line, p)
	} else {
		ok = parseStatusLine(line, p)
	}
	if !ok {
		return false
	}
	if p.headers, ok = buildHeaders(s, fs); !ok {
		return false
	}
	return p.framing()
}

// framing reads the headers that decide how the body is delimited and
// decoded.
func (p *head) framing() bool {
	p.cl = -1
	for i := range p.headers {
		h := &p.headers[i]
		switch h.Name {
		case "content-length":
			n, ok := parseContentLength(h.Value)
			if !ok || (p.cl >= 0 && n != p.cl) {
				return false
			}
			p.cl = n
		case "transfer-encoding":
			p.te = transferCoding(h.Value)
		case "content-encoding":
			p.enc = contentCoding(h.Value)
		case "upgrade":
			p.upgrade = h.Value
		}
	}
	return true
}

// parseContentLength accepts digits, or a list of equal values.
func parseContentLength(v string) (int64, bool) {
	n := int64(-1)
	for {
		var x int64
		i := 0
		for i < len(v) && v[i] == ' ' {
			i++
		}
		j := i
		for ; j < len(v) && v[j] >= '0' && v[j] <= '9'; j++ {
			if j-i >= 18 {
				return 0, false
			}
			x = x*10 + int64(v[j]-'0')
		}
		if j == i || (n >= 0 && x != n) {
			return 0, false
		}
		n = x
		for j < len(v) && v[j] == ' ' {
			j++
		}
		if j == len(v) {
			return n, true
		}
		if v[j] != ',' {
			return 0, false
		}
		v = v[j+1:]
	}
}

// transferCoding tells whether the coding list ends in chunked.
func transferCoding(v string) uint8 {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	if strings.EqualFold(trimOWS(v), "chunked") {
		return teChunked
	}
	return teOther
}

func contentCoding(v string) uint8 {
	v = trimOWS(v)
	switch {
	case v == "" || strings.EqualFold(v, "identity"):
		return encNone
	case strings.EqualFold(v, "gzip") || strings.EqualFold(v, "x-gzip"):
		return encGzip
	case strings.EqualFold(v, "deflate"):
		return encDeflate
	}
	return encOther
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// blankLineEnd looks in p for an empty line, starting at from, which must
// be the start of a line. It returns the offset just past the empty line,
// or -1 and the start of the last, incomplete line.
func blankLineEnd(p []byte, from int) (end, resume int) {
	pos := from
	for pos < len(p) {
		switch p[pos] {
		case '\n':
			return pos + 1, 0
		case '\r':
			if pos+1 == len(p) {
				return -1, pos
			}
			if p[pos+1] == '\n' {
				return pos + 2, 0
			}
		}
		i := bytes.IndexByte(p[pos:], '\n')
		if i < 0 {
			return -1, pos
		}
		pos += i + 1
	}
	return -1, pos
}

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-32] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isTchar(c byte) bool { return tchar[c] }

// internMethod returns the common methods as constants.
func internMethod(m string) string {
	switch m {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	}
	return m
}

// knownMethod reports whether m is a method a resync may start at.
func knownMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
		"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
		"REPORT", "MKCALENDAR", "PURGE", "LINK", "UNLINK":
		return true
	}
	return false
}

// knownMethodPrefix reports whether p is the start of a known method.
func knownMethodPrefix(p []byte) bool {
	for _, m := range methods {
		if len(p) <= len(m) && m[:len(p)] == string(p) {
			return true
		}
	}
	return false
}

var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
	"REPORT", "MKCALENDAR", "PURGE", "LINK", "UNLINK"}

// lowerName returns a header name in lower case. Common names come from a
// table and names already in lower case are returned as they are, so
// neither allocates.
func lowerName(name string) string {
	n := len(name)
	if n < len(commonNames) {
		c := name[0]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		for _, cand := range commonNames[n][c&31] {
			if cand[0] == c && equalLower(name, cand) {
				return cand
			}
		}
	}
	for i := 0; i < n; i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}

// equalLower reports whether name lower-cased equals lower, which has the
// same length.
func equalLower(name, lower string) bool {
	for i := 1; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// commonNames holds well-known header names by length and by the low five
// bits of their first letter.
var commonNames = func() (t [48][32][]string) {
	for _, n := range []string{
		"accept", "accept-charset", "accept-encoding", "accept-language", "accept-ranges",
		"access-control-allow-credentials", "access-control-allow-headers",
		"access-control-allow-methods", "access-control-allow-origin",
		"access-control-expose-headers", "access-control-max-age",
		"access-control-request-headers", "access-control-request-method",
		"age", "allow", "alt-svc", "authorization", "cache-control", "connection",
		"content-disposition", "content-encoding", "content-language", "content-length",
		"content-location", "content-range", "content-security-policy", "content-type",
		"cookie", "date", "dnt", "etag", "expect", "expires", "forwarded", "from", "host",
		"if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
		"keep-alive", "last-modified", "link", "location", "max-forwards", "origin",
		"pragma", "priority", "proxy-authenticate", "proxy-authorization", "proxy-connection",
		"range", "referer", "referrer-policy", "retry-after", "sec-ch-ua", "sec-ch-ua-mobile",
		"sec-ch-ua-platform", "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site",
		"sec-fetch-user", "sec-websocket-accept", "sec-websocket-extensions",
		"sec-websocket-key", "sec-websocket-protocol", "sec-websocket-version", "server",
		"server-timing", "set-cookie", "strict-transport-security", "te", "trailer",
		"transfer-encoding", "upgrade", "upgrade-insecure-requests", "user-agent", "vary",
		"via", "warning", "www-authenticate", "x-content-type-options", "x-forwarded-for",
		"x-forwarded-host", "x-forwarded-proto", "x-frame-options", "x-powered-by",
		"x-real-ip", "x-request-id", "x-requested-with", "x-xss-protection",
		"traceparent", "tracestate", "grpc-status", "grpc-message", "grpc-encoding",
		"grpc-accept-encoding", "grpc-timeout", "x-envoy-upstream-service-time",
		"x-envoy-expected-rq-timeout-ms", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled",
		"x-amzn-trace-id", "x-cache", "cf-ray", "nel", "report-to", "permissions-policy",
		"cross-origin-opener-policy", "cross-origin-resource-policy", "cross-origin-embedder-policy",
	} {
		t[len(n)][n[0]&31] = append(t[len(n)][n[0]&31], n)
	}
	return t
}()
