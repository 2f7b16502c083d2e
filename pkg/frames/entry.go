package frames

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// bodyEncodingBase64 is Message.body_encoding for a binary body.
const bodyEncodingBase64 = "base64"

// hexRow is how many bytes one row of a hex dump shows.
const hexRow = 16

// Entry returns frames describing one entry for Explore: "Summary" (field
// and value rows), "Timings", then for the request and the response their
// headers, trailers (when any) and body. A text body is one row per line,
// a binary one a hex dump of 16 bytes a row; bodies are kept whole. A nil
// entry gives an empty summary.
func Entry(e *podwirev1.Entry) data.Frames {
	fs := data.Frames{summary(e)}
	if e == nil {
		return fs
	}
	fs = append(fs, timings(e))
	for _, side := range []struct {
		name string
		m    *podwirev1.Message
	}{{"Request", e.GetRequest()}, {"Response", e.GetResponse()}} {
		if side.m == nil {
			continue
		}
		fs = append(fs, headerFrame(side.name+" headers", headerRows(side.m)))
		if t := side.m.GetTrailers(); len(t) > 0 {
			fs = append(fs, headerFrame(side.name+" trailers", sortedHeaders(t)))
		}
		if side.m.GetBody() != "" || side.m.GetBodyBytes() > 0 {
			fs = append(fs, body(side.name+" body", side.m))
		}
	}
	return fs
}

// kv builds a two-column frame of string rows.
type kv struct{ names, values []string }

func (k *kv) add(name, value string) {
	k.names = append(k.names, name)
	k.values = append(k.values, value)
}

func (k *kv) frame(name, nameDisplay string) *data.Frame {
	f := data.NewFrame(name,
		data.NewField("name", nil, append(make([]string, 0, len(k.names)), k.names...)).SetConfig(cfg(nameDisplay, "")),
		data.NewField("value", nil, append(make([]string, 0, len(k.values)), k.values...)).SetConfig(cfg("Value", "")),
	)
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return f
}

// summary lists what the entry is, one field a row.
func summary(e *podwirev1.Entry) *data.Frame {
	var k kv
	if e == nil {
		return k.frame("Summary", "Field")
	}
	k.add("id", e.GetId())
	if t := e.GetTime(); t != nil {
		k.add("time", t.AsTime().UTC().Format(time.RFC3339Nano))
	}
	k.add("protocol", e.GetProtocol())
	if v := e.GetHttpVersion(); v != "" {
		k.add("http version", v)
	}
	k.add("source", describe(e.GetSrc()))
	k.add("destination", describe(e.GetDst()))
	k.add("method", e.GetMethod())
	k.add("path", e.GetPath())
	status := strconv.Itoa(int(e.GetStatus()))
	switch e.GetProtocol() {
	case "grpc":
		status += " " + grpcCode(e.GetStatus())
	case "dns":
		status += " " + dnsRcode(e.GetStatus())
	}
	if e.GetResponse() == nil && e.GetStatus() == 0 {
		status = "no response"
	}
	k.add("status", status)
	k.add("failed", strconv.FormatBool(e.GetFailed()))
	k.add("latency", string(appendMs(nil, e.GetLatencyMs())))
	k.add("node", e.GetNode())
	k.add("incomplete", strconv.FormatBool(e.GetIncomplete()))
	if n := e.GetNotes(); len(n) > 0 {
		k.add("notes", strings.Join(n, "; "))
	}
	if c := e.GetConnId(); c != 0 {
		k.add("connection", strconv.FormatUint(c, 10))
	}
	for _, side := range []struct {
		name string
		m    *podwirev1.Message
	}{{"request", e.GetRequest()}, {"response", e.GetResponse()}} {
		if side.m == nil {
			continue
		}
		v := strconv.FormatInt(side.m.GetBodyBytes(), 10) + " bytes"
		if side.m.GetTruncated() {
			v += " (truncated)"
		}
		k.add(side.name+" body", v)
	}
	return k.frame("Summary", "Field")
}

// describe names an endpoint with everything known about it, e.g.
// "pod cart-7d9f, workload cart (Deployment), namespace shop, service cart,
// node worker-2, address 10.0.3.12:8080".
func describe(p *podwirev1.Endpoint) string {
	var parts []string
	add := func(label, v string) {
		if v != "" {
			parts = append(parts, label+" "+v)
		}
	}
	add("pod", p.GetPod())
	w := p.GetWorkload()
	if w != "" && p.GetWorkloadKind() != "" {
		w += " (" + p.GetWorkloadKind() + ")"
	}
	add("workload", w)
	add("namespace", p.GetNamespace())
	add("service", p.GetService())
	add("node", p.GetNode())
	add("process", p.GetProcess())
	add("address", address(p))
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}

// timings lists when each part of the exchange was seen, with its offset
// from the request's start.
func timings(e *podwirev1.Entry) *data.Frame {
	var (
		events []string
		times  []time.Time
		offset []float64
	)
	start := tsTime(e.GetTime())
	if t := e.GetRequest().GetStart(); t != nil {
		start = t.AsTime()
	}
	add := func(event string, m *podwirev1.Message, end bool) {
		ts := m.GetStart()
		if end {
			ts = m.GetEnd()
		}
		if ts == nil {
			return
		}
		t := ts.AsTime()
		events = append(events, event)
		times = append(times, t)
		offset = append(offset, float64(t.Sub(start))/float64(time.Millisecond))
	}
	add("request start", e.GetRequest(), false)
	add("request end", e.GetRequest(), true)
	add("response start", e.GetResponse(), false)
	add("response end", e.GetResponse(), true)
	if events == nil {
		events, times, offset = []string{}, []time.Time{}, []float64{}
	}
	f := data.NewFrame("Timings",
		data.NewField("event", nil, events).SetConfig(cfg("Event", "")),
		data.NewField("time", nil, times).SetConfig(cfg("Time", "")),
		data.NewField("offset", nil, offset).SetConfig(cfg("Since request start", "ms")),
	)
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return f
}

// headerRows are a message's headers in arrival order (with repeats) when
// the agent sent them so, else by name.
func headerRows(m *podwirev1.Message) *kv {
	if hl := m.GetHeaderList(); len(hl) > 0 {
		var k kv
		for _, h := range hl {
			if h != nil {
				k.add(h.GetName(), h.GetValue())
			}
		}
		return &k
	}
	return sortedHeaders(m.GetHeaders())
}

func sortedHeaders(hm map[string]string) *kv {
	var k kv
	for _, n := range slices.Sorted(maps.Keys(hm)) {
		k.add(n, hm[n])
	}
	return &k
}

func headerFrame(name string, k *kv) *data.Frame {
	return k.frame(name, "Header")
}

// body returns a body as text lines, or as a hex dump when it is binary.
// Its meta says the content type, size and encoding; a notice says when the
// agent kept less than the whole body.
func body(name string, m *podwirev1.Message) *data.Frame {
	var f *data.Frame
	encoding := "text"
	kept := len(m.GetBody())
	var notices []data.Notice
	if m.GetBodyEncoding() == bodyEncodingBase64 {
		encoding = "binary"
		raw, err := base64.StdEncoding.DecodeString(m.GetBody())
		if err != nil {
			// Show what arrived rather than nothing.
			notices = append(notices, data.Notice{Severity: data.NoticeSeverityWarning,
				Text: fmt.Sprintf("decoding body: %v; shown as received", err)})
			f = textBody(name, m.GetBody())
		} else {
			f, kept = hexBody(name, raw), len(raw)
		}
	} else {
		f = textBody(name, m.GetBody())
	}
	switch {
	case m.GetBody() == "" && m.GetBodyBytes() > 0:
		notices = append(notices, data.Notice{Severity: data.NoticeSeverityInfo,
			Text: fmt.Sprintf("body not kept (%d bytes on the wire)", m.GetBodyBytes())})
	case m.GetTruncated():
		notices = append(notices, data.Notice{Severity: data.NoticeSeverityInfo,
			Text: fmt.Sprintf("body truncated by the agent: %d bytes kept (%d bytes on the wire)", kept, m.GetBodyBytes())})
	}
	custom := map[string]any{
		"encoding":  encoding,
		"bodyBytes": m.GetBodyBytes(),
		"truncated": m.GetTruncated(),
	}
	if ct := m.GetHeaders()["content-type"]; ct != "" {
		custom["contentType"] = ct
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable, Notices: notices, Custom: custom}
	return f
}

// textBody is one row per line (a trailing "\r" is dropped).
func textBody(name, s string) *data.Frame {
	lines := strings.Split(s, "\n")
	if len(lines) > 1 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	nums := make([]int64, len(lines))
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
		nums[i] = int64(i + 1)
	}
	return data.NewFrame(name,
		data.NewField("line", nil, nums).SetConfig(cfg("Line", "")),
		data.NewField("text", nil, lines).SetConfig(cfg("Text", "")),
	)
}

// hexBody is a hex dump: offset, 16 bytes in hex, and those bytes as
// printable ASCII ('.' for the others).
func hexBody(name string, b []byte) *data.Frame {
	const digits = "0123456789abcdef"
	rows := (len(b) + hexRow - 1) / hexRow
	offsets, hexes, texts := strs(rows), strs(rows), strs(rows)
	line := make([]byte, 0, 3*hexRow+1)
	for r := range rows {
		chunk := b[r*hexRow : min(len(b), (r+1)*hexRow)]
		offsets[r] = fmt.Sprintf("%08x", r*hexRow)
		line = line[:0]
		for i, c := range chunk {
			if i > 0 {
				line = append(line, ' ')
				if i == hexRow/2 {
					line = append(line, ' ')
				}
			}
			line = append(line, digits[c>>4], digits[c&0xf])
		}
		hexes[r] = string(line)
		line = line[:0]
		for _, c := range chunk {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			line = append(line, c)
		}
		texts[r] = string(line)
	}
	return data.NewFrame(name,
		data.NewField("offset", nil, offsets).SetConfig(cfg("Offset", "")),
		data.NewField("hex", nil, hexes).SetConfig(cfg("Hex", "")),
		data.NewField("text", nil, texts).SetConfig(cfg("Text", "")),
	)
}
