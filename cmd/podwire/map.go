package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func (c *cli) serviceMap(ctx context.Context, args []string) error {
	fs := newFlagSet("map")
	var cf clientFlags
	since := fs.String("since", "15m", "start of the time range: a duration ago (5m, 2h) or an RFC 3339 time")
	until := fs.String("until", "", "end of the time range: a duration ago or an RFC 3339 time (default now)")
	groupBy := fs.StringP("group-by", "g", "workload", "group ends by workload, service, namespace or pod")
	output := fs.StringP("output", "o", outTable, "output format: table, or json (the merged map as one object)")
	cf.register(fs)
	if err := c.parse(fs, "map", args); err != nil {
		return err
	}
	switch *output {
	case outTable, outJSON:
	default:
		return usageError("map: unknown output %q (want table or json)", *output)
	}
	switch *groupBy {
	case "workload", "service", "namespace", "pod":
	default:
		return usageError("map: unknown --group-by %q (want workload, service, namespace or pod)", *groupBy)
	}
	now := c.now()
	from, err := parseWhen(*since, now, c.loc)
	if err != nil {
		return usageError("map: --since: %v", err)
	}
	to := now
	if *until != "" {
		if to, err = parseWhen(*until, now, c.loc); err != nil {
			return usageError("map: --until: %v", err)
		}
	}
	if !from.Before(to) {
		return usageError("map: --since %s is not before --until %s", from.In(c.loc).Format(time.DateTime), to.In(c.loc).Format(time.DateTime))
	}
	req := &podwirev1.ServiceMapRequest{
		Filter:  filterArg(fs.Args()),
		From:    timestamppb.New(from),
		To:      timestamppb.New(to),
		GroupBy: *groupBy,
	}

	conns, err := c.dial(&cf)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	results := make([]*podwirev1.ServiceMapResponse, len(conns))
	trailers := make([]metadata.MD, len(conns))
	errs := forEach(ctx, conns, cf.timeout, func(ctx context.Context, i int, a *agentConn) error {
		r, err := a.client.ServiceMap(ctx, req, grpc.Trailer(&trailers[i]))
		results[i] = r
		return err
	})
	ok, err := c.answered(conns, errs, cf.timeout)
	if err != nil {
		return err
	}
	m := newMergedMap()
	for _, i := range ok {
		if what := trailers[i].Get(server.TruncatedTrailer); len(what) > 0 {
			n := strings.Join(trailers[i].Get(server.TruncatedEntriesTrailer), "")
			fmt.Fprintf(c.stderr, "warning: agent %s: map too large (%s full): %s matching entries left out\n",
				conns[i].addr, clean(strings.Join(what, ",")), clean(n))
		}
		m.add(results[i])
	}
	bw := bufio.NewWriter(c.stdout)
	if *output == outJSON {
		if err := writeJSONLine(bw, m.proto()); err != nil {
			return err
		}
		return bw.Flush()
	}
	if len(m.edges) == 0 {
		fmt.Fprintf(c.stderr, "no traffic between %s and %s\n", from.In(c.loc).Format(time.DateTime), untilText(req.To, c.loc))
		return nil
	}
	if err := writeMapTable(bw, m, to.Sub(from), c.useColor()); err != nil {
		return err
	}
	return bw.Flush()
}

// mergedMap adds up the maps of several agents: counts and histograms
// add, so percentiles come from the whole.
type mergedMap struct {
	nodes            map[string]*mergedNode
	edges            map[[2]string]*mergedEdge
	matched, scanned uint64
	oldest           time.Time // the latest of the agents' oldest entries
}

type mergedNode struct {
	p   *podwirev1.MapNode
	lat stats.Histogram
}

type mergedEdge struct {
	p        *podwirev1.MapEdge
	lat      stats.Histogram
	services map[string]bool
}

func newMergedMap() *mergedMap {
	return &mergedMap{nodes: make(map[string]*mergedNode), edges: make(map[[2]string]*mergedEdge)}
}

func (m *mergedMap) add(r *podwirev1.ServiceMapResponse) {
	m.matched += r.GetMatched()
	m.scanned += r.GetScanned()
	if o := r.GetOldest(); o != nil && o.AsTime().After(m.oldest) {
		m.oldest = o.AsTime()
	}
	for _, n := range r.GetNodes() {
		mn := m.nodes[n.GetId()]
		if mn == nil {
			mn = &mergedNode{p: &podwirev1.MapNode{Id: n.GetId(), Name: n.GetName(), Namespace: n.GetNamespace(), Kind: n.GetKind()}}
			m.nodes[n.GetId()] = mn
		}
		mn.p.Requests += n.GetRequests()
		mn.p.Failed += n.GetFailed()
		mn.p.Sent += n.GetSent()
		mn.lat.MergeProto(n.GetLatency())
	}
	for _, e := range r.GetEdges() {
		k := [2]string{e.GetSource(), e.GetTarget()}
		me := m.edges[k]
		if me == nil {
			me = &mergedEdge{p: &podwirev1.MapEdge{Source: k[0], Target: k[1], Protocols: map[string]uint64{}}, services: map[string]bool{}}
			m.edges[k] = me
		}
		me.p.Requests += e.GetRequests()
		me.p.Failed += e.GetFailed()
		me.lat.MergeProto(e.GetLatency())
		for p, n := range e.GetProtocols() {
			me.p.Protocols[p] += n
		}
		for _, s := range e.GetServices() {
			me.services[s] = true
		}
	}
}

// sortedEdges returns the edges busiest first, then by source and target.
func (m *mergedMap) sortedEdges() []*mergedEdge {
	edges := make([]*mergedEdge, 0, len(m.edges))
	for _, e := range m.edges {
		edges = append(edges, e)
	}
	slices.SortFunc(edges, func(a, b *mergedEdge) int {
		return cmp.Or(cmp.Compare(b.p.Requests, a.p.Requests), cmp.Compare(a.p.Source, b.p.Source), cmp.Compare(a.p.Target, b.p.Target))
	})
	return edges
}

// proto returns the merged map in the agent's wire form, nodes by id and
// edges busiest first.
func (m *mergedMap) proto() *podwirev1.ServiceMapResponse {
	out := &podwirev1.ServiceMapResponse{Matched: m.matched, Scanned: m.scanned}
	if !m.oldest.IsZero() {
		out.Oldest = timestamppb.New(m.oldest)
	}
	for _, n := range m.nodes {
		n.p.Latency = n.lat.Proto()
		out.Nodes = append(out.Nodes, n.p)
	}
	slices.SortFunc(out.Nodes, func(a, b *podwirev1.MapNode) int { return cmp.Compare(a.Id, b.Id) })
	for _, e := range m.sortedEdges() {
		e.p.Latency = e.lat.Proto()
		e.p.Services = slices.Sorted(maps.Keys(e.services))
		out.Edges = append(out.Edges, e.p)
	}
	return out
}

// writeMapTable writes one line per edge: source, target, requests per
// second over the range, error percentage, latency percentiles and the
// protocols, busiest edges first.
func writeMapTable(w io.Writer, m *mergedMap, window time.Duration, color bool) error {
	header := []string{"SOURCE", "", "TARGET", "REQUESTS", "REQ/S", "ERR%", "P50", "P95", "P99", "PROTOCOLS"}
	rightAligned := []bool{false, false, false, true, true, true, true, true, true, false}
	var rows [][]string
	var failing []bool
	for _, e := range m.sortedEdges() {
		rows = append(rows, []string{
			clean(e.p.Source), "->", clean(e.p.Target),
			strconv.FormatUint(e.p.Requests, 10),
			formatRate(float64(e.p.Requests) / window.Seconds()),
			formatPercent(e.p.Failed, e.p.Requests),
			quantileCell(&e.lat, 0.50), quantileCell(&e.lat, 0.95), quantileCell(&e.lat, 0.99),
			protocolsCell(e.p.Protocols),
		})
		failing = append(failing, e.p.Failed > 0)
	}
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = len(h)
	}
	for _, r := range rows {
		for i, cell := range r {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	ew := &errWriter{w: w}
	line := func(cells []string, errCol bool) {
		var b strings.Builder
		for i, cell := range cells {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if i == len(cells)-1 {
				pad = ""
			}
			if errCol && i == 5 {
				cell = red(cell, color)
			}
			if rightAligned[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		ew.printf("%s\n", strings.TrimRight(b.String(), " "))
	}
	line(header, false)
	for i, r := range rows {
		line(r, failing[i])
	}
	return ew.err
}

// formatRate shows requests per second with two significant decimals for
// small rates.
func formatRate(r float64) string {
	switch {
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

func formatPercent(n, of uint64) string {
	if of == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64)
}

func quantileCell(h *stats.Histogram, q float64) string {
	v := h.Quantile(q)
	if math.IsNaN(v) {
		return "-"
	}
	return formatMs(v)
}

// protocolsCell lists protocols busiest first: "http 120, grpc 4".
func protocolsCell(p map[string]uint64) string {
	names := make([]string, 0, len(p))
	for name := range p {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(p[b], p[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = clean(name) + " " + strconv.FormatUint(p[name], 10)
	}
	return strings.Join(parts, ", ")
}
