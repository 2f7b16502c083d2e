package plugin

import (
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// truncations gathers what agents said, in their answers' trailers, about
// aggregations that hit one of their bounds (too many groups, edges,
// points or values), so the panel says its numbers are short.
type truncations struct {
	mu   sync.Mutex
	byAg map[*agent]metadata.MD
}

// truncatedCall runs one aggregation RPC on a, keeping its trailer.
func truncatedCall[T any](t *truncations, a *agent, rpc func(opts ...grpc.CallOption) (T, error)) (T, error) {
	var md metadata.MD
	v, err := rpc(grpc.Trailer(&md))
	if len(md.Get(podwirev1.TruncatedTrailer)) > 0 {
		t.mu.Lock()
		if t.byAg == nil {
			t.byAg = map[*agent]metadata.MD{}
		}
		t.byAg[a] = md
		t.mu.Unlock()
	}
	return v, err
}

// warn adds a warning for each agent whose answer was cut.
func (t *truncations) warn(n *notices) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, md := range t.byAg {
		what := strings.Join(md.Get(podwirev1.TruncatedTrailer), ",")
		left := "some"
		if v := md.Get(podwirev1.TruncatedEntriesTrailer); len(v) > 0 {
			left = v[0]
		}
		n.warn("agent %s hit its bound on %s: %s matching entries are not counted; narrow the filter or the time range, or group more coarsely", a.name(), what, left)
	}
}
