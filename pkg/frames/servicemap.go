package frames

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Node kinds the agents give to groups that are not Kubernetes objects.
const (
	kindExternal = "external"
	kindProcess  = "process"
)

// groupField is the filter's endpoint field a grouping names: workload
// (the default), service, namespace or pod.
func groupField(groupBy string) string {
	switch groupBy {
	case "service", "namespace", "pod":
		return groupBy
	}
	return "workload"
}

// celString quotes s as a CEL string literal. Control characters, '$'
// (so Grafana never sees "${" in a link) and invalid UTF-8 are escaped.
func celString(s string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f || c == '$':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(append(b, '"'))
}

// endFilter is the CEL condition that an entry's side (src or dst) belongs
// to node n under the grouping.
func endFilter(side string, n *Node, groupBy string) string {
	f := groupField(groupBy)
	eq := func(field, v string) string { return side + "." + field + " == " + celString(v) }
	switch {
	case n.Kind == kindProcess || (n.Kind == "" && strings.HasPrefix(n.ID, "process:")):
		name := n.Name
		if name == "" || name == n.ID {
			name = strings.TrimPrefix(n.ID, "process:")
		}
		return eq("process", name) + " && " + eq(f, "")
	case n.Kind == kindExternal || isAddress(n.ID):
		if ap, err := netip.ParseAddrPort(n.ID); err == nil {
			return eq("ip", ap.Addr().String()) + " && " + side + ".port == " +
				strconv.Itoa(int(ap.Port())) + " && " + eq(f, "")
		}
		ip := n.ID
		if a, err := netip.ParseAddr(n.ID); err == nil {
			ip = a.String()
		}
		return eq("ip", ip) + " && " + eq(f, "")
	case f == "namespace":
		return eq("namespace", first(n.Namespace, n.Name))
	}
	return eq(f, n.Name) + " && " + eq("namespace", n.Namespace)
}

// isAddress reports whether id is an IP address, with or without a port.
func isAddress(id string) bool {
	if _, err := netip.ParseAddr(id); err == nil {
		return true
	}
	_, err := netip.ParseAddrPort(id)
	return err == nil
}

// NodeFilter returns the filter selecting the entries node n answered
// (dst) or sent (src) under the grouping.
func NodeFilter(n *Node, side, groupBy string) string { return endFilter(side, n, groupBy) }

// EdgeFilter returns the filter selecting the entries from src to dst.
func EdgeFilter(src, dst *Node, groupBy string) string {
	return endFilter("src", src, groupBy) + " && " + endFilter("dst", dst, groupBy)
}

// rangeSeconds is the length of [from, to) in seconds; an empty or reversed
// range counts as one second rather than dividing by zero.
func rangeSeconds(from, to time.Time) float64 {
	if s := to.Sub(from).Seconds(); s > 0 {
		return s
	}
	return 1
}

// quantile returns h's (dense or sparse) q-quantile in ms (to the
// microsecond), nil when h is empty.
func quantile(h interface{ Quantile(float64) float64 }, q float64) *float64 {
	v := h.Quantile(q)
	if math.IsNaN(v) {
		return nil
	}
	// Microseconds are plenty: a bucket is 9% wide.
	v = math.Round(v*1000) / 1000
	return &v
}

// ServiceMap returns the Node Graph frames; rates are per second over the
// range [from, to). A node's arcs are the shares of the requests it
// answered that succeeded and failed; a node that answered nothing (a pure
// client) has both arcs 0 and is drawn without them. Nodes link to the
// traffic they answered and sent, edges to the traffic between their ends.
func ServiceMap(m *Map, groupBy string, from, to time.Time, l Links) (nodes, edges *data.Frame) {
	if m == nil {
		m = &Map{}
	}
	secs := rangeSeconds(from, to)
	byID := make(map[string]*Node, len(m.Nodes))

	nn := len(m.Nodes)
	var (
		ids, titles, subtitles = strs(nn), strs(nn), strs(nn)
		ns, kinds              = strs(nn), strs(nn)
		filterTo, filterFrom   = strs(nn), strs(nn)
		mainstat, okArc, bad   = make([]float64, nn), make([]float64, nn), make([]float64, nn)
		p50, p95, p99          = make([]*float64, nn), make([]*float64, nn), make([]*float64, nn)
		reqs, failed, sent     = make([]uint64, nn), make([]uint64, nn), make([]uint64, nn)
	)
	for i, n := range m.Nodes {
		byID[n.ID] = n
		ids[i], titles[i], ns[i], kinds[i] = n.ID, first(n.Name, n.ID), n.Namespace, n.Kind
		subtitles[i] = first(n.Namespace, n.Kind)
		mainstat[i] = float64(n.Requests) / secs
		if n.Requests > 0 {
			f := min(n.Failed, n.Requests)
			bad[i] = float64(f) / float64(n.Requests)
			okArc[i] = 1 - bad[i]
		}
		p50[i], p95[i], p99[i] = quantile(&n.Latency, 0.5), quantile(&n.Latency, 0.95), quantile(&n.Latency, 0.99)
		reqs[i], failed[i], sent[i] = n.Requests, n.Failed, n.Sent
		filterTo[i] = NodeFilter(n, "dst", groupBy)
		filterFrom[i] = NodeFilter(n, "src", groupBy)
	}
	idCfg := cfg("ID", "")
	idCfg.Links = []data.DataLink{
		l.trafficLink("Requests to ${__data.fields.title}", "filterTo"),
		l.trafficLink("Requests from ${__data.fields.title}", "filterFrom"),
	}
	okCfg, badCfg := cfg("Success", "percentunit"), cfg("Failed", "percentunit")
	okCfg.Color, badCfg.Color = fixedColor("green"), fixedColor("red")
	nodes = data.NewFrame("nodes",
		data.NewField("id", nil, ids).SetConfig(idCfg),
		data.NewField("title", nil, titles).SetConfig(cfg("Name", "")),
		data.NewField("subtitle", nil, subtitles).SetConfig(cfg("Namespace or kind", "")),
		data.NewField("mainstat", nil, mainstat).SetConfig(cfg("Requests/s", "reqps")),
		data.NewField("secondarystat", nil, p95).SetConfig(cfg("p95 latency", "ms")),
		data.NewField("arc__success", nil, okArc).SetConfig(okCfg),
		data.NewField("arc__failed", nil, bad).SetConfig(badCfg),
		data.NewField("detail__namespace", nil, ns).SetConfig(cfg("Namespace", "")),
		data.NewField("detail__kind", nil, kinds).SetConfig(cfg("Kind", "")),
		data.NewField("detail__requests", nil, reqs).SetConfig(cfg("Requests answered", "none")),
		data.NewField("detail__failed", nil, failed).SetConfig(cfg("Failed", "none")),
		data.NewField("detail__sent", nil, sent).SetConfig(cfg("Requests sent", "none")),
		data.NewField("detail__p50", nil, p50).SetConfig(cfg("p50 latency", "ms")),
		data.NewField("detail__p99", nil, p99).SetConfig(cfg("p99 latency", "ms")),
		data.NewField("filterTo", nil, filterTo).SetConfig(cfg("Filter for requests to it", "")),
		data.NewField("filterFrom", nil, filterFrom).SetConfig(cfg("Filter for requests from it", "")),
	)
	nodes.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeNodeGraph}

	ne := len(m.Edges)
	var (
		eids, srcs, dsts, protos, svcs, filters = strs(ne), strs(ne), strs(ne), strs(ne), strs(ne), strs(ne)
		rate, errPct, thick                     = make([]float64, ne), make([]float64, ne), make([]float64, ne)
		ereqs, efailed                          = make([]uint64, ne), make([]uint64, ne)
		ep50, ep95, ep99                        = make([]*float64, ne), make([]*float64, ne), make([]*float64, ne)
	)
	var most uint64
	for _, e := range m.Edges {
		most = max(most, e.Requests)
	}
	for i, e := range m.Edges {
		eids[i], srcs[i], dsts[i] = e.Source+" -> "+e.Target, e.Source, e.Target
		rate[i] = float64(e.Requests) / secs
		if e.Requests > 0 {
			errPct[i] = 100 * float64(min(e.Failed, e.Requests)) / float64(e.Requests)
		}
		// 1 to 5 px, by the square root so small edges stay visible.
		thick[i] = 1
		if most > 0 {
			thick[i] = math.Round(10*(1+4*math.Sqrt(float64(e.Requests)/float64(most)))) / 10
		}
		ereqs[i], efailed[i] = e.Requests, e.Failed
		ep50[i], ep95[i], ep99[i] = quantile(&e.Latency, 0.5), quantile(&e.Latency, 0.95), quantile(&e.Latency, 0.99)
		protos[i] = protocolList(e.Protocols)
		svcs[i] = strings.Join(e.Services, ", ")
		s, t := byID[e.Source], byID[e.Target]
		if s == nil {
			s = orphan(e.Source)
		}
		if t == nil {
			t = orphan(e.Target)
		}
		filters[i] = EdgeFilter(s, t, groupBy)
	}
	eidCfg := cfg("ID", "")
	eidCfg.Links = []data.DataLink{l.trafficLink("Requests on this edge", "filter")}
	edges = data.NewFrame("edges",
		data.NewField("id", nil, eids).SetConfig(eidCfg),
		data.NewField("source", nil, srcs).SetConfig(cfg("Source", "")),
		data.NewField("target", nil, dsts).SetConfig(cfg("Target", "")),
		data.NewField("mainstat", nil, rate).SetConfig(cfg("Requests/s", "reqps")),
		data.NewField("secondarystat", nil, errPct).SetConfig(cfg("Errors", "percent")),
		data.NewField("thickness", nil, thick).SetConfig(cfg("Thickness", "")),
		data.NewField("detail__requests", nil, ereqs).SetConfig(cfg("Requests", "none")),
		data.NewField("detail__failed", nil, efailed).SetConfig(cfg("Failed", "none")),
		data.NewField("detail__protocols", nil, protos).SetConfig(cfg("Protocols", "")),
		data.NewField("detail__services", nil, svcs).SetConfig(cfg("Services", "")),
		data.NewField("detail__p50", nil, ep50).SetConfig(cfg("p50 latency", "ms")),
		data.NewField("detail__p95", nil, ep95).SetConfig(cfg("p95 latency", "ms")),
		data.NewField("detail__p99", nil, ep99).SetConfig(cfg("p99 latency", "ms")),
		data.NewField("filter", nil, filters).SetConfig(cfg("Filter", "")),
	)
	edges.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeNodeGraph}
	return nodes, edges
}

// orphan is a node known only by its id.
func orphan(id string) *Node {
	n := &Node{ID: id}
	n.Namespace, n.Name = splitID(id)
	return n
}

// protocolList is "http 120, grpc 3": by count, most first.
func protocolList(ps map[string]uint64) string {
	names := make([]string, 0, len(ps))
	for p := range ps {
		names = append(names, p)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(ps[b], ps[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for i, p := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(ps[p], 10))
	}
	return b.String()
}
