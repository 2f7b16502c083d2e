package server

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/filter"
	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Bounds on what one ServiceMap, Metrics or Values call tracks, so that its
// memory is bounded whatever the store holds. An entry that would need a
// group, edge, point or value beyond them is left out of the answer (it
// still counts in matched), and the answer carries the trailers
// TruncatedTrailer and TruncatedEntriesTrailer.
const (
	MaxMapNodes = 10000
	MaxMapEdges = 50000
	// MaxSeries bounds Metrics' groups, MaxPoints their points in all.
	MaxSeries = 10000
	MaxPoints = 200000
	// MaxValues bounds Values' distinct values, MaxValueBytes their text.
	MaxValues     = 100000
	MaxValueBytes = 16 << 20
	// maxEdgeProtocols and maxEdgeServices bound an edge's protocol counts
	// and service names; further ones are not listed (the edge's counts
	// still hold their entries).
	maxEdgeProtocols = 16
	maxEdgeServices  = 32
)

// Trailer metadata of an aggregation that hit a bound (see podwirev1).
const (
	TruncatedTrailer        = podwirev1.TruncatedTrailer
	TruncatedEntriesTrailer = podwirev1.TruncatedEntriesTrailer
)

// Metrics' steps: at most MaxSteps per range; 0 means the range / 100.
const (
	MaxSteps     = 11000
	defaultSteps = 100
	// maxMetricsRange keeps step arithmetic far from overflow.
	maxMetricsRange = 100 * 365 * 24 * time.Hour
)

// Values' limits: DefaultValues when the request has none, at most
// MaxValuesLimit.
const (
	DefaultValues  = 100
	MaxValuesLimit = 1000
)

// MaxAggregations is how many ServiceMap, Metrics and Values calls run at
// once; more wait their turn (or their deadline). Each takes a core while
// it scans.
const MaxAggregations = 2

// ctxCheck is how many entries a scan looks at between checks of its
// context.
const ctxCheck = 4096

// scanRange is the time range and filter of an aggregation.
type scanRange struct {
	from, to time.Time
	f        *filter.Filter
}

// parseRange reads filter, from and to; required makes both bounds
// required (Metrics).
func parseRange(expr string, from, to *timestamppb.Timestamp, required bool) (scanRange, error) {
	var r scanRange
	f, err := compileFilter(expr)
	if err != nil {
		return r, err
	}
	r.f = f
	if required && (from == nil || to == nil) {
		return r, status.Error(codes.InvalidArgument, "from and to are both required")
	}
	if from != nil {
		r.from = from.AsTime()
	}
	if to != nil {
		r.to = to.AsTime()
	}
	if !r.from.IsZero() && !r.to.IsZero() && !r.from.Before(r.to) {
		return r, status.Errorf(codes.InvalidArgument, "empty time range: from %s is not before to %s",
			r.from.Format(time.RFC3339Nano), r.to.Format(time.RFC3339Nano))
	}
	return r, nil
}

// acquire takes an aggregation slot, waiting for one until ctx ends.
func (s *Server) acquire(ctx context.Context) (func(), error) {
	select {
	case s.aggSlots <- struct{}{}:
		return func() { <-s.aggSlots }, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// scan calls fn with every stored entry in r that matches its filter and
// returns how many matched and how many were looked at. Entries are
// summaries unless the filter reads messages; fn must copy what it keeps.
func (s *Server) scan(ctx context.Context, r scanRange, fn func(*entry.Entry)) (matched, scanned uint64, err error) {
	match := matcher(r.f)
	every := uint64(ctxCheck)
	if r.f.Costly() {
		// One evaluation may take a good part of a second.
		every = 1
	}
	s.st.Scan(r.from, r.to, r.f.NeedsMessages(), func(e *entry.Entry) bool {
		scanned++
		if scanned%every == 0 && ctx.Err() != nil {
			return false
		}
		if match != nil && !match(e) {
			return true
		}
		matched++
		fn(e)
		return true
	})
	if err := ctx.Err(); err != nil {
		return matched, scanned, status.FromContextError(err).Err()
	}
	return matched, scanned, nil
}

// truncation collects what hit a bound during one aggregation.
type truncation struct {
	what    []string
	entries uint64
}

func (t *truncation) hit(what string) {
	t.entries++
	if !slices.Contains(t.what, what) {
		t.what = append(t.what, what)
	}
}

// report sets the trailers when something was left out and counts it.
func (s *Server) report(ctx context.Context, t *truncation) {
	if t.entries == 0 {
		return
	}
	s.truncated.Add(t.entries)
	_ = grpc.SetTrailer(ctx, metadata.Pairs(
		TruncatedTrailer, strings.Join(t.what, ","),
		TruncatedEntriesTrailer, strconv.FormatUint(t.entries, 10),
	))
}

func (s *Server) oldest() *timestamppb.Timestamp {
	if o := s.st.Stats().Oldest; !o.IsZero() {
		return timestamppb.New(o)
	}
	return nil
}

// latency returns an entry's latency in milliseconds and its bucket.
func latency(e *entry.Entry) (float64, int) {
	ms := float64(e.Latency) / float64(time.Millisecond)
	return ms, stats.Bucket(ms)
}

// ServiceMap aggregates matching stored entries into nodes (groups of
// ends) and edges (source group to destination group).
func (s *Server) ServiceMap(ctx context.Context, req *podwirev1.ServiceMapRequest) (*podwirev1.ServiceMapResponse, error) {
	if err := s.auth.check(ctx); err != nil {
		return nil, err
	}
	r, err := parseRange(req.GetFilter(), req.GetFrom(), req.GetTo(), false)
	if err != nil {
		return nil, err
	}
	g, err := parseGrouping(req.GetGroupBy(), false)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	a := newMapAgg(g)
	matched, scanned, err := s.scan(ctx, r, a.add)
	if err != nil {
		return nil, err
	}
	resp := a.response()
	resp.Matched, resp.Scanned, resp.Oldest = matched, scanned, s.oldest()
	s.report(ctx, &a.trunc)
	return resp, nil
}

// mapAgg builds a service map.
type mapAgg struct {
	g      grouping
	nodeIx map[string]int32 // by appendEndKey
	nodes  []mapNode
	// edgeIx finds an edge by its ends' keys (see add) in one lookup.
	edgeIx map[string]int32
	edges  []mapEdge
	dense  int
	trunc  truncation
	pair   []byte // reused key buffer
}

type mapNode struct {
	info                   groupInfo
	requests, failed, sent uint64
	lat                    hist
}

type mapEdge struct {
	src, dst         int32
	requests, failed uint64
	lat              hist
	protos           []nameCount
	services         []string
}

type nameCount struct {
	name string
	n    uint64
}

func newMapAgg(g grouping) *mapAgg {
	return &mapAgg{g: g, nodeIx: make(map[string]int32), edgeIx: make(map[string]int32), dense: maxDense}
}

// newNode adds the node of the end ep, whose compact key is k.
func (a *mapAgg) newNode(k []byte, ep *entry.Endpoint) int32 {
	i := int32(len(a.nodes))
	a.nodes = append(a.nodes, mapNode{info: info(a.g, endKey(a.g, ep).clone(), ep)})
	a.nodeIx[string(k)] = i
	return i
}

func (a *mapAgg) add(e *entry.Entry) {
	// pair is the source's key, its length (two bytes), then the
	// destination's key: unambiguous.
	a.pair = appendEndKey(a.pair[:0], a.g, &e.Src)
	n := len(a.pair)
	a.pair = append(a.pair, byte(n>>8), byte(n))
	a.pair = appendEndKey(a.pair, a.g, &e.Dst)
	ei, ok := a.edgeIx[string(a.pair)]
	if !ok {
		if ei = a.newEdge(e, a.pair[:n], a.pair[n+2:]); ei < 0 {
			return
		}
		a.edgeIx[string(a.pair)] = ei
	}
	ms, b := latency(e)
	ed := &a.edges[ei]
	ed.requests++
	ed.lat.add(b, ms, &a.dense)
	ed.protos = countName(ed.protos, e.Protocol, maxEdgeProtocols)
	if svc := e.Dst.Ident().Service; svc != "" && !slices.Contains(ed.services, svc) && len(ed.services) < maxEdgeServices {
		ed.services = append(ed.services, strings.Clone(svc))
	}
	dn := &a.nodes[ed.dst]
	dn.requests++
	dn.lat.add(b, ms, &a.dense)
	if e.Failed {
		ed.failed++
		dn.failed++
	}
	a.nodes[ed.src].sent++
}

// newEdge makes the edge between the nodes of the keys sk and dk, and the
// nodes when they are new, and returns the edge's index, or -1 when a
// bound stops it.
func (a *mapAgg) newEdge(e *entry.Entry, sk, dk []byte) int32 {
	if len(a.edges) >= MaxMapEdges {
		a.trunc.hit("edges")
		return -1
	}
	si, sok := a.nodeIx[string(sk)]
	di, dok := a.nodeIx[string(dk)]
	if !sok || !dok {
		// Make both nodes or neither, so a full map gains no empty node.
		same := string(sk) == string(dk)
		need := 0
		if !sok {
			need++
		}
		if !dok && !(same && !sok) {
			need++
		}
		if len(a.nodes)+need > MaxMapNodes {
			a.trunc.hit("nodes")
			return -1
		}
		if !sok {
			si = a.newNode(sk, &e.Src)
		}
		switch {
		case dok:
		case same:
			di = si
		default:
			di = a.newNode(dk, &e.Dst)
		}
	}
	a.edges = append(a.edges, mapEdge{src: si, dst: di})
	return int32(len(a.edges) - 1)
}

// countName counts one name in a short list, adding it when there is room.
func countName(list []nameCount, name string, room int) []nameCount {
	for i := range list {
		if list[i].name == name {
			list[i].n++
			return list
		}
	}
	if len(list) >= room {
		return list
	}
	return append(list, nameCount{name: strings.Clone(name), n: 1})
}

func (a *mapAgg) response() *podwirev1.ServiceMapResponse {
	resp := &podwirev1.ServiceMapResponse{
		Nodes: make([]*podwirev1.MapNode, len(a.nodes)),
		Edges: make([]*podwirev1.MapEdge, len(a.edges)),
	}
	for i := range a.nodes {
		n := &a.nodes[i]
		resp.Nodes[i] = &podwirev1.MapNode{
			Id: n.info.id, Name: n.info.name, Namespace: n.info.namespace, Kind: n.info.kind,
			Requests: n.requests, Failed: n.failed, Latency: n.lat.proto(), Sent: n.sent,
		}
	}
	for i := range a.edges {
		ed := &a.edges[i]
		pe := &podwirev1.MapEdge{
			Source: a.nodes[ed.src].info.id, Target: a.nodes[ed.dst].info.id,
			Requests: ed.requests, Failed: ed.failed, Latency: ed.lat.proto(),
			Protocols: make(map[string]uint64, len(ed.protos)),
			Services:  ed.services,
		}
		for _, p := range ed.protos {
			pe.Protocols[p.name] = p.n
		}
		slices.Sort(pe.Services)
		resp.Edges[i] = pe
	}
	slices.SortFunc(resp.Nodes, func(x, y *podwirev1.MapNode) int { return cmp.Compare(x.Id, y.Id) })
	slices.SortFunc(resp.Edges, func(x, y *podwirev1.MapEdge) int {
		return cmp.Or(cmp.Compare(x.Source, y.Source), cmp.Compare(x.Target, y.Target))
	})
	return resp
}

// Metrics aggregates matching stored entries into per-step points per
// group.
func (s *Server) Metrics(ctx context.Context, req *podwirev1.MetricsRequest) (*podwirev1.MetricsResponse, error) {
	if err := s.auth.check(ctx); err != nil {
		return nil, err
	}
	r, err := parseRange(req.GetFilter(), req.GetFrom(), req.GetTo(), true)
	if err != nil {
		return nil, err
	}
	g, err := parseGrouping(req.GetGroupBy(), true)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	span := r.to.Sub(r.from)
	if span > maxMetricsRange {
		return nil, status.Errorf(codes.InvalidArgument, "time range of %s is too long for metrics (at most %s)", span, maxMetricsRange)
	}
	step := req.GetStep().AsDuration()
	switch {
	case req.GetStep() == nil || step == 0:
		step = max((span+defaultSteps-1)/defaultSteps, 1)
	case step < 0 || req.GetStep().CheckValid() != nil:
		return nil, status.Errorf(codes.InvalidArgument, "step %s is not a positive duration", step)
	}
	steps := span / step
	if span%step != 0 {
		steps++
	}
	if steps > MaxSteps {
		return nil, status.Errorf(codes.InvalidArgument, "step %s cuts the range of %s into %d steps; at most %d are allowed",
			step, span, steps, MaxSteps)
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	a := newMetricsAgg(g, r.from, step)
	matched, _, err := s.scan(ctx, r, a.add)
	if err != nil {
		return nil, err
	}
	resp := a.response()
	resp.Step, resp.Matched, resp.Oldest = durationpb.New(step), matched, s.oldest()
	s.report(ctx, &a.trunc)
	return resp, nil
}

// metricsAgg builds Metrics' series.
type metricsAgg struct {
	g       grouping
	from    time.Time
	step    time.Duration
	groupIx map[string]int32 // by appendMetricsKey
	groups  []groupInfo
	pointIx map[[2]int32]int32 // group, step
	points  []point
	dense   int
	trunc   truncation
	key     []byte
}

type point struct {
	group, step      int32
	requests, failed uint64
	lat              hist
}

func newMetricsAgg(g grouping, from time.Time, step time.Duration) *metricsAgg {
	return &metricsAgg{g: g, from: from, step: step,
		groupIx: make(map[string]int32), pointIx: make(map[[2]int32]int32), dense: maxDense}
}

func (a *metricsAgg) add(e *entry.Entry) {
	a.key = appendMetricsKey(a.key[:0], a.g, e)
	// Scan passes only entries in [from, to), and the steps fit in int32.
	k := int32(e.Time.Sub(a.from) / a.step)
	gi, gok := a.groupIx[string(a.key)]
	pi, pok := int32(0), false
	if gok {
		pi, pok = a.pointIx[[2]int32{gi, k}]
	}
	if !pok {
		// A new point, perhaps of a new group: make both or neither, so
		// that no series is left without points.
		switch {
		case !gok && len(a.groups) >= MaxSeries:
			a.trunc.hit("series")
			return
		case len(a.points) >= MaxPoints:
			a.trunc.hit("points")
			return
		}
		if !gok {
			gi = int32(len(a.groups))
			a.groups = append(a.groups, info(a.g, metricsKey(a.g, e).clone(), &e.Dst))
			a.groupIx[string(a.key)] = gi
		}
		pi = int32(len(a.points))
		a.points = append(a.points, point{group: gi, step: k})
		a.pointIx[[2]int32{gi, k}] = pi
	}
	p := &a.points[pi]
	ms, b := latency(e)
	p.requests++
	p.lat.add(b, ms, &a.dense)
	if e.Failed {
		p.failed++
	}
}

func (a *metricsAgg) response() *podwirev1.MetricsResponse {
	series := make([]*podwirev1.MetricsSeries, len(a.groups))
	for i, gi := range a.groups {
		series[i] = &podwirev1.MetricsSeries{Group: gi.id, Name: gi.name, Namespace: gi.namespace}
	}
	if a.g == byNone && len(series) == 1 {
		series[0].Group, series[0].Name = "", ""
	}
	slices.SortFunc(a.points, func(x, y point) int { return cmp.Compare(x.step, y.step) })
	for i := range a.points {
		p := &a.points[i]
		s := series[p.group]
		s.Points = append(s.Points, &podwirev1.MetricsPoint{
			Time:     timestamppb.New(a.from.Add(time.Duration(p.step) * a.step)),
			Requests: p.requests, Failed: p.failed, Latency: p.lat.proto(),
		})
	}
	slices.SortFunc(series, func(x, y *podwirev1.MetricsSeries) int { return cmp.Compare(x.Group, y.Group) })
	return &podwirev1.MetricsResponse{Series: series}
}

// Values lists the distinct values of one field in matching stored
// entries, most frequent first.
func (s *Server) Values(ctx context.Context, req *podwirev1.ValuesRequest) (*podwirev1.ValuesResponse, error) {
	if err := s.auth.check(ctx); err != nil {
		return nil, err
	}
	r, err := parseRange(req.GetFilter(), req.GetFrom(), req.GetTo(), false)
	if err != nil {
		return nil, err
	}
	vf, ok := valueFields[req.GetField()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unknown field %q: want one of %s", req.GetField(), strings.Join(valueFieldNames(), ", "))
	}
	limit := int(req.GetLimit())
	switch {
	case limit <= 0:
		limit = DefaultValues
	case limit > MaxValuesLimit:
		limit = MaxValuesLimit
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	a := &valuesAgg{vf: vf, prefix: req.GetPrefix(), ix: make(map[string]int32), addrs: make(map[netip.Addr]uint64)}
	if _, _, err := s.scan(ctx, r, a.add); err != nil {
		return nil, err
	}
	s.report(ctx, &a.trunc)
	return &podwirev1.ValuesResponse{Values: a.top(limit)}, nil
}

// valueField reads a field's values from an entry: strings by str, or
// addresses by addr (kept as netip.Addr so that reading them does not
// format them); either is nil.
type valueField struct {
	str  func(e *entry.Entry) (string, string)
	addr func(e *entry.Entry) netip.Addr
}

// valueFields are the fields Values takes; a string reader returns one
// value, or two for the fields meaning either end.
var valueFields = func() map[string]valueField {
	one := func(get func(*entry.Entry) string) valueField {
		return valueField{str: func(e *entry.Entry) (string, string) { return get(e), "" }}
	}
	m := map[string]valueField{
		"protocol": one(func(e *entry.Entry) string { return e.Protocol }),
		"method":   one(func(e *entry.Entry) string { return e.Method }),
		"path":     one(func(e *entry.Entry) string { return e.Path }),
		"node":     one(func(e *entry.Entry) string { return e.Node }),
		"src.ip":   {addr: func(e *entry.Entry) netip.Addr { return e.Src.IP }},
		"dst.ip":   {addr: func(e *entry.Entry) netip.Addr { return e.Dst.IP }},
	}
	idFields := map[string]func(*entry.Identity) string{
		"namespace": func(id *entry.Identity) string { return id.Namespace },
		"workload":  func(id *entry.Identity) string { return id.Workload },
		"service":   func(id *entry.Identity) string { return id.Service },
		"pod":       func(id *entry.Identity) string { return id.Pod },
		"node":      func(id *entry.Identity) string { return id.Node },
		"process":   func(id *entry.Identity) string { return id.Process },
	}
	for name, get := range idFields {
		m["src."+name] = one(func(e *entry.Entry) string { return get(e.Src.Ident()) })
		m["dst."+name] = one(func(e *entry.Entry) string { return get(e.Dst.Ident()) })
		if name != "node" && name != "process" {
			m[name] = valueField{str: func(e *entry.Entry) (string, string) { return get(e.Src.Ident()), get(e.Dst.Ident()) }}
		}
	}
	return m
}()

func valueFieldNames() []string {
	names := make([]string, 0, len(valueFields))
	for name := range valueFields {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// valuesAgg counts a field's values.
type valuesAgg struct {
	vf     valueField
	prefix string
	// counts[ix[v]] is value v's count. A map value is never assigned for
	// a key that is present: Go may then replace the stored key with the
	// one given, and entries' strings do not outlive the scan callback.
	ix     map[string]int32
	counts []nameCount
	addrs  map[netip.Addr]uint64
	bytes  int
	trunc  truncation
}

func (a *valuesAgg) add(e *entry.Entry) {
	if a.vf.addr != nil {
		ip := a.vf.addr(e)
		if !ip.IsValid() {
			return
		}
		ip = ip.Unmap()
		if _, ok := a.addrs[ip]; !ok {
			var buf [64]byte
			text := ip.AppendTo(buf[:0])
			if !hasPrefixFold(unsafe.String(unsafe.SliceData(text), len(text)), a.prefix) {
				return
			}
			if len(a.addrs) >= MaxValues {
				a.trunc.hit("values")
				return
			}
		}
		a.addrs[ip]++
		return
	}
	v1, v2 := a.vf.str(e)
	a.count(v1)
	if v2 != v1 {
		a.count(v2)
	}
}

func (a *valuesAgg) count(v string) {
	if v == "" {
		return
	}
	if i, ok := a.ix[v]; ok {
		a.counts[i].n++
		return
	}
	if !hasPrefixFold(v, a.prefix) {
		return
	}
	if len(a.counts) >= MaxValues || a.bytes+len(v) > MaxValueBytes {
		a.trunc.hit("values")
		return
	}
	a.bytes += len(v)
	v = strings.Clone(v)
	a.ix[v] = int32(len(a.counts))
	a.counts = append(a.counts, nameCount{name: v, n: 1})
}

// hasPrefixFold reports whether s starts with prefix, ignoring case
// (Unicode simple folding, as strings.EqualFold).
func hasPrefixFold(s, prefix string) bool {
	for _, pr := range prefix {
		if s == "" {
			return false
		}
		r, n := utf8.DecodeRuneInString(s)
		if r != pr && !foldsTo(r, pr) {
			return false
		}
		s = s[n:]
	}
	return true
}

// foldsTo reports whether b is a case variant of a.
func foldsTo(a, b rune) bool {
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// top returns the most frequent values, ties by value.
func (a *valuesAgg) top(limit int) []*podwirev1.ValueCount {
	out := make([]*podwirev1.ValueCount, 0, len(a.counts)+len(a.addrs))
	for _, c := range a.counts {
		out = append(out, &podwirev1.ValueCount{Value: c.name, Count: c.n})
	}
	for ip, n := range a.addrs {
		out = append(out, &podwirev1.ValueCount{Value: ip.String(), Count: n})
	}
	slices.SortFunc(out, func(x, y *podwirev1.ValueCount) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Value, y.Value))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}
