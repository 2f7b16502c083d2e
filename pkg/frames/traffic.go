package frames

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Traffic returns the traffic table: one row per entry, in the order given
// (MergeEntries' newest first). The id column links to the entry query.
func Traffic(es []*podwirev1.Entry, l Links) *data.Frame {
	n := len(es)
	var (
		times                                     = make([]time.Time, n)
		protocol, method, path, node, id          = strs(n), strs(n), strs(n), strs(n), strs(n)
		srcWorkload, srcPod, srcNS, srcSvc, srcIP = strs(n), strs(n), strs(n), strs(n), strs(n)
		dstWorkload, dstPod, dstNS, dstSvc, dstIP = strs(n), strs(n), strs(n), strs(n), strs(n)
		status                                    = make([]int32, n)
		failed                                    = make([]bool, n)
		latency                                   = make([]float64, n)
		reqBytes, respBytes                       = make([]*int64, n), make([]*int64, n)
		// Backing store for the nullable sizes: one allocation, not 2n.
		sizes = make([]int64, 2*n)
		// The addresses, built into one string: 2 allocations, not 2n.
		addrs strBuilder
	)
	for i, e := range es {
		if e == nil {
			continue
		}
		times[i] = tsTime(e.GetTime())
		protocol[i], method[i], path[i] = e.GetProtocol(), e.GetMethod(), e.GetPath()
		node[i], id[i] = e.GetNode(), e.GetId()
		s, d := e.GetSrc(), e.GetDst()
		srcWorkload[i], srcPod[i], srcNS[i], srcSvc[i] = s.GetWorkload(), s.GetPod(), s.GetNamespace(), s.GetService()
		dstWorkload[i], dstPod[i], dstNS[i], dstSvc[i] = d.GetWorkload(), d.GetPod(), d.GetNamespace(), d.GetService()
		addrs.add(appendAddress(addrs.next(), s))
		addrs.add(appendAddress(addrs.next(), d))
		status[i], failed[i], latency[i] = e.GetStatus(), e.GetFailed(), e.GetLatencyMs()
		if m := e.GetRequest(); m != nil {
			sizes[2*i] = m.GetBodyBytes()
			reqBytes[i] = &sizes[2*i]
		}
		if m := e.GetResponse(); m != nil {
			sizes[2*i+1] = m.GetBodyBytes()
			respBytes[i] = &sizes[2*i+1]
		}
	}
	all := addrs.strings()
	k := 0
	for i, e := range es {
		if e != nil {
			srcIP[i], dstIP[i] = all[k], all[k+1]
			k += 2
		}
	}
	idCfg := cfg("ID", "")
	idCfg.Links = []data.DataLink{l.entryLink()}
	f := data.NewFrame("traffic",
		data.NewField("time", nil, times).SetConfig(cfg("Time", "")),
		data.NewField("protocol", nil, protocol).SetConfig(cfg("Protocol", "")),
		data.NewField("srcWorkload", nil, srcWorkload).SetConfig(cfg("Source workload", "")),
		data.NewField("srcPod", nil, srcPod).SetConfig(cfg("Source pod", "")),
		data.NewField("srcNamespace", nil, srcNS).SetConfig(cfg("Source namespace", "")),
		data.NewField("srcService", nil, srcSvc).SetConfig(cfg("Source service", "")),
		data.NewField("srcAddress", nil, srcIP).SetConfig(cfg("Source address", "")),
		data.NewField("dstWorkload", nil, dstWorkload).SetConfig(cfg("Destination workload", "")),
		data.NewField("dstPod", nil, dstPod).SetConfig(cfg("Destination pod", "")),
		data.NewField("dstNamespace", nil, dstNS).SetConfig(cfg("Destination namespace", "")),
		data.NewField("dstService", nil, dstSvc).SetConfig(cfg("Destination service", "")),
		data.NewField("dstAddress", nil, dstIP).SetConfig(cfg("Destination address", "")),
		data.NewField("method", nil, method).SetConfig(cfg("Method", "")),
		data.NewField("path", nil, path).SetConfig(cfg("Path", "")),
		data.NewField("status", nil, status).SetConfig(cfg("Status", "")),
		data.NewField("failed", nil, failed).SetConfig(cfg("Failed", "")),
		data.NewField("latency", nil, latency).SetConfig(cfg("Latency", "ms")),
		data.NewField("requestBytes", nil, reqBytes).SetConfig(cfg("Request size", "decbytes")),
		data.NewField("responseBytes", nil, respBytes).SetConfig(cfg("Response size", "decbytes")),
		data.NewField("node", nil, node).SetConfig(cfg("Node", "")),
		data.NewField("id", nil, id).SetConfig(idCfg),
	)
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTable, PreferredVisualization: data.VisTypeTable}
	return f
}

func strs(n int) []string { return make([]string, n) }

// address is "ip:port" ("[ip]:port" for IPv6), the ip alone without a
// port, or "".
func address(p *podwirev1.Endpoint) string { return string(appendAddress(nil, p)) }

func appendAddress(b []byte, p *podwirev1.Endpoint) []byte {
	ip := p.GetIp()
	if ip == "" || p.GetPort() == 0 {
		return append(b, ip...)
	}
	v6 := strings.IndexByte(ip, ':') >= 0
	if v6 {
		b = append(b, '[')
	}
	b = append(b, ip...)
	if v6 {
		b = append(b, ']')
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(p.GetPort()), 10)
}

// strBuilder builds many strings in one buffer and hands them out as
// substrings of one string, so n strings cost two allocations.
type strBuilder struct {
	buf  []byte
	ends []int
}

// next returns the buffer to append the next string to.
func (s *strBuilder) next() []byte { return s.buf }

// add ends the string appended to the buffer next returned.
func (s *strBuilder) add(b []byte) {
	s.buf = b
	s.ends = append(s.ends, len(b))
}

// strings returns the strings added, in order.
func (s *strBuilder) strings() []string {
	all := string(s.buf)
	out := make([]string, len(s.ends))
	start := 0
	for i, end := range s.ends {
		out[i] = all[start:end]
		start = end
	}
	return out
}

// Severities of log lines, as Grafana's logs visualisation names them.
const (
	severityError   = "error"
	severityWarning = "warning"
	severityInfo    = "info"
)

// severity is error for a failed entry, warning for an incomplete one,
// info otherwise.
func severity(e *podwirev1.Entry) string {
	switch {
	case e.GetFailed():
		return severityError
	case e.GetIncomplete():
		return severityWarning
	}
	return severityInfo
}

// Logs returns a log-lines frame: one line per entry, in the order given.
// Labels say who answered (namespace and workload of the destination) and
// what (protocol, method, status).
func Logs(es []*podwirev1.Entry, l Links) *data.Frame {
	n := len(es)
	times := make([]time.Time, n)
	sev, ids := strs(n), strs(n)
	labels := make([]json.RawMessage, n)
	var buf []byte
	ends := make([]int, n)
	var lines strBuilder
	for i, e := range es {
		if e == nil {
			// A row must still have a body and labels to stay valid.
			lines.add(lines.next())
			sev[i] = severityInfo
			buf = append(buf, "{}"...)
			ends[i] = len(buf)
			continue
		}
		times[i] = tsTime(e.GetTime())
		lines.add(appendLogLine(lines.next(), e))
		sev[i] = severity(e)
		ids[i] = e.GetId()
		buf = appendLabels(buf, e)
		ends[i] = len(buf)
	}
	bodies := lines.strings()
	// buf no longer grows, so slices into it stay valid.
	start := 0
	for i, end := range ends {
		labels[i] = json.RawMessage(buf[start:end:end])
		start = end
	}
	idCfg := cfg("ID", "")
	idCfg.Links = []data.DataLink{l.entryLink()}
	f := data.NewFrame("logs",
		data.NewField("timestamp", nil, times),
		data.NewField("body", nil, bodies),
		data.NewField("severity", nil, sev),
		data.NewField("id", nil, ids).SetConfig(idCfg),
		data.NewField("labels", nil, labels),
	)
	f.Meta = &data.FrameMeta{
		Type:                   data.FrameTypeLogLines,
		TypeVersion:            data.FrameTypeVersion{0, 0},
		PreferredVisualization: data.VisTypeLogs,
	}
	return f
}

// appendLabels appends the labels object of a log line.
func appendLabels(b []byte, e *podwirev1.Entry) []byte {
	b = append(b, '{')
	sep := false
	add := func(k, v string) {
		if v == "" {
			return
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	d := e.GetDst()
	add("namespace", d.GetNamespace())
	add("workload", d.GetWorkload())
	add("protocol", e.GetProtocol())
	add("method", e.GetMethod())
	if e.GetResponse() != nil || e.GetStatus() != 0 {
		add("status", strconv.Itoa(int(e.GetStatus())))
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20, c == '<', c == '>', c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendLogLine appends a one-line description of an entry, e.g.
// "GET /api/cart -> 503 (120 ms) web -> cart".
func appendLogLine(b []byte, e *podwirev1.Entry) []byte {
	noResponse := e.GetResponse() == nil && e.GetStatus() == 0
	switch e.GetProtocol() {
	case "http":
		b = appendWords(b, e.GetMethod(), e.GetPath())
		b = append(b, " -> "...)
		if noResponse {
			b = append(b, "no response"...)
		} else {
			b = strconv.AppendInt(b, int64(e.GetStatus()), 10)
		}
	case "grpc":
		b = appendWords(b, first(e.GetMethod(), e.GetPath()))
		b = append(b, " -> "...)
		if noResponse {
			b = append(b, "no response"...)
		} else {
			b = append(b, grpcCode(e.GetStatus())...)
		}
	case "redis":
		b = appendWords(b, e.GetMethod(), e.GetPath())
		b = append(b, " -> "...)
		switch {
		case noResponse:
			b = append(b, "no response"...)
		case e.GetFailed() || e.GetStatus() != 0:
			b = append(b, "error"...)
		default:
			b = append(b, "ok"...)
		}
	case "dns":
		b = appendWords(b, e.GetMethod(), e.GetPath())
		b = append(b, " -> "...)
		if noResponse {
			b = append(b, "no response"...)
		} else {
			b = append(b, dnsRcode(e.GetStatus())...)
		}
	case "tcp":
		b = append(b, "tcp "...)
		b = appendSize(b, e.GetRequest().GetBodyBytes())
		b = append(b, " sent, "...)
		b = appendSize(b, e.GetResponse().GetBodyBytes())
		b = append(b, " received"...)
	default:
		b = appendWords(b, first(e.GetProtocol(), "unknown"), e.GetMethod(), e.GetPath())
		if !noResponse {
			b = append(b, " -> "...)
			b = strconv.AppendInt(b, int64(e.GetStatus()), 10)
		}
	}
	b = append(b, " ("...)
	b = appendMs(b, e.GetLatencyMs())
	b = append(b, ") "...)
	b = appendPeer(b, e.GetSrc())
	b = append(b, " -> "...)
	b = appendPeer(b, e.GetDst())
	if e.GetIncomplete() {
		b = append(b, " [incomplete]"...)
	}
	return b
}

// appendWords appends the non-empty words separated by spaces.
func appendWords(b []byte, words ...string) []byte {
	n := len(b)
	for _, w := range words {
		if w == "" {
			continue
		}
		if len(b) > n {
			b = append(b, ' ')
		}
		b = append(b, w...)
	}
	if len(b) == n {
		b = append(b, '?')
	}
	return b
}

// appendMs appends a latency with about three significant digits and no
// trailing zeros: "0.42 ms", "5.3 ms", "12.5 ms", "120 ms".
func appendMs(b []byte, ms float64) []byte {
	prec := 0
	switch {
	case ms < 10:
		prec = 2
	case ms < 100:
		prec = 1
	}
	n := len(b)
	b = strconv.AppendFloat(b, ms, 'f', prec, 64)
	if prec > 0 {
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
		if b[len(b)-1] == '.' {
			b = b[:len(b)-1]
		}
	}
	if len(b) == n {
		b = append(b, '0')
	}
	return append(b, " ms"...)
}

// appendSize appends a byte count: "512 B", "4.1 kB", "3.2 MB".
func appendSize(b []byte, n int64) []byte {
	switch {
	case n < 1000:
		b = strconv.AppendInt(b, n, 10)
		return append(b, " B"...)
	case n < 1000*1000:
		b = strconv.AppendFloat(b, float64(n)/1e3, 'f', 1, 64)
		return append(b, " kB"...)
	case n < 1000*1000*1000:
		b = strconv.AppendFloat(b, float64(n)/1e6, 'f', 1, 64)
		return append(b, " MB"...)
	}
	b = strconv.AppendFloat(b, float64(n)/1e9, 'f', 1, 64)
	return append(b, " GB"...)
}

// appendPeer appends an endpoint's name for people: its workload, pod,
// service or process, else its address.
func appendPeer(b []byte, p *podwirev1.Endpoint) []byte {
	switch {
	case p.GetWorkload() != "":
		return append(b, p.GetWorkload()...)
	case p.GetPod() != "":
		return append(b, p.GetPod()...)
	case p.GetService() != "":
		return append(b, p.GetService()...)
	case p.GetProcess() != "":
		return append(b, p.GetProcess()...)
	case p.GetIp() != "":
		return appendAddress(b, p)
	}
	return append(b, '?')
}

var grpcCodes = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcCode names a gRPC status code.
func grpcCode(c int32) string {
	if c >= 0 && int(c) < len(grpcCodes) {
		return grpcCodes[c]
	}
	return "code " + strconv.Itoa(int(c))
}

var dnsRcodes = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}

// dnsRcode names a DNS response code.
func dnsRcode(c int32) string {
	if c >= 0 && int(c) < len(dnsRcodes) {
		return dnsRcodes[c]
	}
	return "RCODE " + strconv.Itoa(int(c))
}
