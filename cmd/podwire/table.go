package main

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// ANSI colours.
const (
	colorRed   = "\x1b[31m"
	colorBold  = "\x1b[1m"
	colorReset = "\x1b[0m"
)

// Table columns.
const (
	colTime = iota
	colNode
	colProto
	colSrc
	colSrcAddr
	colDst
	colDstAddr
	colMethod
	colPath
	colStatus
	colLatency
	colSize
	colReq
	colResp
	colFlags
	colID
	numCols
)

var colNames = [numCols]string{
	colTime: "TIME", colNode: "NODE", colProto: "PROTO", colSrc: "SRC", colSrcAddr: "SRC-ADDR",
	colDst: "DST", colDstAddr: "DST-ADDR", colMethod: "METHOD", colPath: "PATH", colStatus: "STATUS",
	colLatency: "LATENCY", colSize: "SIZE", colReq: "REQ", colResp: "RESP", colFlags: "FLAGS", colID: "ID",
}

// rightAligned columns hold numbers.
var rightAligned = [numCols]bool{colStatus: true, colLatency: true, colSize: true, colReq: true, colResp: true}

var (
	tableCols = []int{colTime, colProto, colSrc, colDst, colMethod, colPath, colStatus, colLatency, colSize, colID}
	wideCols  = []int{colTime, colNode, colProto, colSrc, colSrcAddr, colDst, colDstAddr, colMethod, colPath,
		colStatus, colLatency, colReq, colResp, colFlags, colID}
)

// Column widths of the streaming table and the bounds of fitted ones.
const (
	streamEndpointWidth = 24
	minEndpointWidth    = 10
	// minStreamPath is the path width below which tap narrows endpoints.
	minStreamPath    = 32
	maxEndpointWidth = 32
	methodWidth      = 8
	minPathWidth     = 16
	defaultPathWidth = 48
	// defaultWidth is assumed when the terminal's width is unknown.
	defaultWidth = 160
	// idWidth is what the id column is expected to take when the path
	// column is sized to the terminal.
	idWidth = 20
)

// table lays entries out as aligned columns.
type table struct {
	cols  []int
	width [numCols]int // 0: as wide as the cell (the last column)
	loc   *time.Location
	color bool
	wide  bool
}

// streamTable returns the layout `tap` uses: fixed widths, since entries are
// not known in advance, with endpoints and path sized to termWidth columns
// (0: unknown).
func streamTable(termWidth int, loc *time.Location, color bool) *table {
	t := &table{cols: tableCols, loc: loc, color: color}
	t.width[colTime] = len("15:04:05.000")
	t.width[colProto] = len("PROTO")
	t.width[colMethod] = len("OPTIONS")
	t.width[colStatus] = len("STATUS")
	t.width[colLatency] = len("LATENCY")
	t.width[colSize] = len("1023B/1023.9K")
	t.width[colSrc] = streamEndpointWidth
	t.width[colDst] = streamEndpointWidth
	if termWidth <= 0 {
		t.width[colPath] = defaultPathWidth
		return t
	}
	t.width[colSrc], t.width[colDst] = 0, 0
	t.fitPath(termWidth)
	// What fitPath gave the path is shared with the endpoints.
	avail := t.width[colPath]
	ep := streamEndpointWidth
	if avail < 2*ep+minStreamPath {
		ep = max((avail-minPathWidth)/2, minEndpointWidth)
	}
	t.width[colSrc], t.width[colDst] = ep, ep
	t.width[colPath] = max(avail-2*ep, minPathWidth)
	return t
}

// fitTable returns a layout sized to the entries it will show. Wide tables
// cut nothing; narrow ones cut endpoints and the path to fit termWidth.
func fitTable(entries []*podwirev1.Entry, termWidth int, loc *time.Location, color, wide bool) *table {
	t := &table{cols: tableCols, loc: loc, color: color, wide: wide}
	if wide {
		t.cols = wideCols
	}
	for _, c := range t.cols {
		t.width[c] = utf8.RuneCountInString(colNames[c])
	}
	for _, e := range entries {
		cells := t.cells(e)
		for _, c := range t.cols {
			if n := utf8.RuneCountInString(cells[c]); n > t.width[c] {
				t.width[c] = n
			}
		}
	}
	t.width[colID] = 0
	if wide {
		return t // widths fit the longest cells: nothing is cut
	}
	t.width[colSrc] = min(t.width[colSrc], maxEndpointWidth)
	t.width[colDst] = min(t.width[colDst], maxEndpointWidth)
	t.width[colMethod] = min(t.width[colMethod], methodWidth)
	longest := t.width[colPath]
	t.fitPath(termWidth)
	t.width[colPath] = max(min(t.width[colPath], longest), utf8.RuneCountInString(colNames[colPath]))
	return t
}

// fitPath gives the path column what termWidth leaves after the others.
func (t *table) fitPath(termWidth int) {
	if termWidth <= 0 {
		t.width[colPath] = defaultPathWidth
		return
	}
	used := idWidth
	for _, c := range t.cols {
		if c != colPath && c != colID {
			used += t.width[c] + 1
		}
	}
	t.width[colPath] = max(termWidth-used-1, minPathWidth)
}

// writeHeader writes the column names.
func (t *table) writeHeader(w io.Writer) error {
	var cells [numCols]string
	for _, c := range t.cols {
		cells[c] = colNames[c]
	}
	return t.writeCells(w, &cells, false)
}

// writeRow writes one entry as one line.
func (t *table) writeRow(w io.Writer, e *podwirev1.Entry) error {
	cells := t.cells(e)
	return t.writeCells(w, &cells, t.color && e.GetFailed())
}

func (t *table) writeCells(w io.Writer, cells *[numCols]string, red bool) error {
	var b strings.Builder
	for i, c := range t.cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		s := cells[c]
		last := i == len(t.cols)-1
		if width := t.width[c]; width > 0 {
			s = cut(s, width)
			pad := strings.Repeat(" ", width-utf8.RuneCountInString(s))
			switch {
			case rightAligned[c]:
				s = pad + s
			case !last:
				s += pad
			}
		}
		if red && c == colStatus {
			s = colorRed + s + colorReset
		}
		b.WriteString(s)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// cells returns the text of every column for e.
func (t *table) cells(e *podwirev1.Entry) [numCols]string {
	var c [numCols]string
	loc := t.loc
	if loc == nil {
		loc = time.Local
	}
	if e.GetTime() != nil {
		layout := "15:04:05.000"
		if t.wide {
			layout = "2006-01-02 15:04:05.000"
		}
		c[colTime] = e.GetTime().AsTime().In(loc).Format(layout)
	}
	c[colNode] = clean(e.GetNode())
	c[colProto] = clean(e.GetProtocol())
	if e.GetProtocol() == "http" && strings.HasPrefix(e.GetHttpVersion(), "2") && t.wide {
		c[colProto] = "http2"
	}
	c[colSrc] = endpointName(e.GetSrc())
	c[colDst] = endpointName(e.GetDst())
	c[colSrcAddr] = endpointAddr(e.GetSrc())
	c[colDstAddr] = endpointAddr(e.GetDst())
	c[colMethod] = clean(e.GetMethod())
	if e.GetMethod() == e.GetPath() && e.GetMethod() != "" {
		// gRPC: method and path are both /pkg.Service/Method.
		c[colMethod] = "-"
	}
	c[colPath] = clean(e.GetPath())
	c[colStatus] = statusCell(e)
	c[colLatency] = latencyCell(e)
	c[colReq] = sizeCell(e.GetRequest())
	c[colResp] = sizeCell(e.GetResponse())
	c[colSize] = c[colReq] + "/" + c[colResp]
	c[colFlags] = strings.Join(flags(e), ",")
	c[colID] = clean(e.GetId())
	for i := range c {
		if c[i] == "" {
			c[i] = "-"
		}
	}
	return c
}

func statusCell(e *podwirev1.Entry) string {
	if e.GetResponse() == nil && e.GetStatus() == 0 {
		return "-"
	}
	return strconv.Itoa(int(e.GetStatus()))
}

func latencyCell(e *podwirev1.Entry) string {
	if e.GetResponse() == nil && e.GetLatencyMs() == 0 {
		return "-"
	}
	return formatMs(e.GetLatencyMs())
}

// formatMs shows a latency with about three significant digits.
func formatMs(ms float64) string {
	switch {
	case ms >= 10000:
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + "s"
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
}

func sizeCell(m *podwirev1.Message) string {
	if m == nil {
		return "-"
	}
	return formatBytes(m.GetBodyBytes())
}

// formatBytes shows a size as 512B, 3.4K, 12.0M.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v := float64(n) / unit
	for _, suffix := range []string{"K", "M", "G", "T"} {
		if v < unit || suffix == "T" {
			return strconv.FormatFloat(v, 'f', 1, 64) + suffix
		}
		v /= unit
	}
	return ""
}

func flags(e *podwirev1.Entry) []string {
	var f []string
	if e.GetFailed() {
		f = append(f, "failed")
	}
	if e.GetIncomplete() {
		f = append(f, "incomplete")
	}
	if e.GetResponse() == nil {
		f = append(f, "no-response")
	}
	if e.GetRequest().GetTruncated() || e.GetResponse().GetTruncated() {
		f = append(f, "truncated")
	}
	if len(e.GetNotes()) > 0 {
		f = append(f, "notes")
	}
	return f
}

// endpointName names an endpoint by its workload (or pod, or service) with
// its namespace, falling back to ip:port.
func endpointName(p *podwirev1.Endpoint) string {
	name := p.GetWorkload()
	if name == "" {
		name = p.GetPod()
	}
	if name == "" {
		name = p.GetService()
	}
	if name == "" {
		return endpointAddr(p)
	}
	if ns := p.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return clean(name)
}

// endpointAddr is ip:port, [ip6]:port, or "" when neither is known.
func endpointAddr(p *podwirev1.Endpoint) string {
	if p.GetIp() == "" && p.GetPort() == 0 {
		return ""
	}
	return clean(net.JoinHostPort(p.GetIp(), strconv.Itoa(int(p.GetPort()))))
}

// cut shortens s to width characters, marking the cut with "…".
func cut(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	if width == 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// clean replaces control characters, which could drive the terminal, with
// U+FFFD.
func clean(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

func isControl(r rune) bool {
	return unicode.IsControl(r) || r == utf8.RuneError
}

// bold wraps s in bold when color is on.
func bold(s string, color bool) string {
	if !color {
		return s
	}
	return colorBold + s + colorReset
}

// red wraps s in red when color is on.
func red(s string, color bool) string {
	if !color {
		return s
	}
	return colorRed + s + colorReset
}

// plural is "1 entry", "2 entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
