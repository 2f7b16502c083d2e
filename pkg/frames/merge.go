package frames

import (
	"container/heap"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// newer reports whether a started after b (nil entries and unset times are
// the oldest). Equal times order by id, so merging is deterministic.
func newer(a, b *podwirev1.Entry) bool {
	as, an := a.GetTime().GetSeconds(), a.GetTime().GetNanos()
	bs, bn := b.GetTime().GetSeconds(), b.GetTime().GetNanos()
	if as != bs {
		return as > bs
	}
	if an != bn {
		return an > bn
	}
	return a.GetId() > b.GetId()
}

// cursor is the next unread entry of one list.
type cursor struct {
	list []*podwirev1.Entry
	i    int
}

// cursors is a max-heap of lists by their next entry's time.
type cursors []*cursor

func (c cursors) Len() int           { return len(c) }
func (c cursors) Less(i, j int) bool { return newer(c[i].list[c[i].i], c[j].list[c[j].i]) }
func (c cursors) Swap(i, j int)      { c[i], c[j] = c[j], c[i] }
func (c *cursors) Push(x any)        { *c = append(*c, x.(*cursor)) }
func (c *cursors) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// MergeEntries merges per-agent lists (each newest first) into one
// newest-first list of at most limit entries (limit <= 0: no limit),
// dropping duplicate ids (the first seen is kept) and nil entries. A list
// that is not newest first is sorted (a copy), so one misbehaving agent
// cannot disorder the result.
func MergeEntries(lists [][]*podwirev1.Entry, limit int) []*podwirev1.Entry {
	total := 0
	h := make(cursors, 0, len(lists))
	for _, l := range lists {
		if slices.Contains(l, nil) || !slices.IsSortedFunc(l, cmpNewer) {
			l = slices.DeleteFunc(slices.Clone(l), func(e *podwirev1.Entry) bool { return e == nil })
			slices.SortStableFunc(l, cmpNewer)
		}
		if len(l) == 0 {
			continue
		}
		total += len(l)
		h = append(h, &cursor{list: l})
	}
	if limit <= 0 || limit > total {
		limit = total
	}
	heap.Init(&h)
	out := make([]*podwirev1.Entry, 0, limit)
	seen := make(map[string]struct{}, limit)
	for len(h) > 0 && len(out) < limit {
		c := h[0]
		e := c.list[c.i]
		c.i++
		if c.i == len(c.list) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
		if id := e.GetId(); id != "" {
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
		}
		out = append(out, e)
	}
	return out
}

// cmpNewer orders newest first.
func cmpNewer(a, b *podwirev1.Entry) int {
	switch {
	case newer(a, b):
		return -1
	case newer(b, a):
		return 1
	}
	return 0
}

// Node is one group of a service map, summed over agents.
type Node struct {
	ID, Name, Namespace, Kind string
	// Requests this node answered, of which Failed; Sent it made.
	Requests, Failed, Sent uint64
	// Latency of the requests it answered.
	Latency stats.Histogram
}

// Edge is the traffic from one group to another, summed over agents.
type Edge struct {
	Source, Target   string
	Requests, Failed uint64
	Latency          stats.Histogram
	// Protocols counts requests by protocol.
	Protocols map[string]uint64
	// Services the source addressed on the target, sorted.
	Services []string
}

// Map is a service map summed over agents: nodes sorted by id, edges by
// source then target.
type Map struct {
	Nodes []*Node
	Edges []*Edge
	// Matched and Scanned are summed; Oldest is the newest of the agents'
	// oldest entries: a range starting before it misses data on some agent.
	Matched, Scanned uint64
	Oldest           time.Time
}

// MergeServiceMap adds up the agents' maps: nodes by id, edges by source
// and target, histograms bucket by bucket. Every edge end is a node (one
// no agent described gets its name from its id).
func MergeServiceMap(rs []*podwirev1.ServiceMapResponse) *Map {
	m := &Map{}
	nodes := map[string]*Node{}
	type pair struct{ s, t string }
	edges := map[pair]*Edge{}
	node := func(id string) *Node {
		n := nodes[id]
		if n == nil {
			n = &Node{ID: id}
			nodes[id] = n
		}
		return n
	}
	for _, r := range rs {
		if r == nil {
			continue
		}
		m.Matched += r.GetMatched()
		m.Scanned += r.GetScanned()
		if o := r.GetOldest(); o != nil {
			if t := o.AsTime(); t.After(m.Oldest) {
				m.Oldest = t
			}
		}
		for _, p := range r.GetNodes() {
			if p == nil {
				continue
			}
			n := node(p.GetId())
			n.Name = first(n.Name, p.GetName())
			n.Namespace = first(n.Namespace, p.GetNamespace())
			n.Kind = first(n.Kind, p.GetKind())
			n.Requests += p.GetRequests()
			n.Failed += p.GetFailed()
			n.Sent += p.GetSent()
			n.Latency.MergeProto(p.GetLatency())
		}
		for _, p := range r.GetEdges() {
			if p == nil {
				continue
			}
			k := pair{p.GetSource(), p.GetTarget()}
			e := edges[k]
			if e == nil {
				e = &Edge{Source: k.s, Target: k.t, Protocols: map[string]uint64{}}
				edges[k] = e
			}
			e.Requests += p.GetRequests()
			e.Failed += p.GetFailed()
			e.Latency.MergeProto(p.GetLatency())
			for proto, c := range p.GetProtocols() {
				e.Protocols[proto] += c
			}
			for _, s := range p.GetServices() {
				if s != "" && !slices.Contains(e.Services, s) {
					e.Services = append(e.Services, s)
				}
			}
		}
	}
	for k, e := range edges {
		slices.Sort(e.Services)
		node(k.s)
		node(k.t)
		m.Edges = append(m.Edges, e)
	}
	for _, n := range nodes {
		if n.Name == "" {
			n.Namespace, n.Name = splitID(n.ID)
		}
		m.Nodes = append(m.Nodes, n)
	}
	slices.SortFunc(m.Nodes, func(a, b *Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(m.Edges, func(a, b *Edge) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Target, b.Target)
	})
	return m
}

// first returns the first non-empty string.
func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// splitID splits a "namespace/name" id; other ids are the name.
func splitID(id string) (ns, name string) {
	if i := strings.IndexByte(id, '/'); i > 0 && !strings.Contains(id, ":") {
		return id[:i], id[i+1:]
	}
	return "", id
}

// Point is one step of a series: entries in [Time, Time+step).
type Point struct {
	Time             time.Time
	Requests, Failed uint64
	// Latency is sparse: a query may hold a point for every step of every
	// group, so a dense 2 KiB histogram each would not do.
	Latency stats.Sparse
}

// Series is one group's points, ascending by time.
type Series struct {
	Group, Name, Namespace string
	Points                 []Point
}

// MergeMetrics adds up the agents' series: series by group, points by
// time. Series are sorted by group.
func MergeMetrics(rs []*podwirev1.MetricsResponse) []*Series {
	type acc struct {
		s      *Series
		points map[int64]*Point
	}
	groups := map[string]*acc{}
	for _, r := range rs {
		for _, ps := range r.GetSeries() {
			if ps == nil {
				continue
			}
			a := groups[ps.GetGroup()]
			if a == nil {
				a = &acc{s: &Series{Group: ps.GetGroup()}, points: map[int64]*Point{}}
				groups[ps.GetGroup()] = a
			}
			a.s.Name = first(a.s.Name, ps.GetName())
			a.s.Namespace = first(a.s.Namespace, ps.GetNamespace())
			for _, pp := range ps.GetPoints() {
				if pp == nil || pp.GetTime() == nil {
					continue
				}
				t := pp.GetTime().AsTime()
				p := a.points[t.UnixNano()]
				if p == nil {
					p = &Point{Time: t}
					a.points[t.UnixNano()] = p
				}
				p.Requests += pp.GetRequests()
				p.Failed += pp.GetFailed()
				p.Latency.MergeProto(pp.GetLatency())
			}
		}
	}
	out := make([]*Series, 0, len(groups))
	for _, a := range groups {
		keys := slices.Sorted(maps.Keys(a.points))
		a.s.Points = make([]Point, len(keys))
		for i, k := range keys {
			a.s.Points[i] = *a.points[k]
		}
		out = append(out, a.s)
	}
	slices.SortFunc(out, func(x, y *Series) int { return strings.Compare(x.Group, y.Group) })
	return out
}
