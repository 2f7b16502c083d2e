package plugin

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// streamBuffer is how many entries one agent's stream reads ahead of the
// merge.
const streamBuffer = 256

// agentStream is one agent's Query stream being read into a channel.
type agentStream struct {
	a    *agent
	c    chan *podwirev1.Entry
	err  error // set before c is closed
	head *podwirev1.Entry
	took []*podwirev1.Entry
}

// streamHeap orders streams by their head entry, newest first.
type streamHeap []*agentStream

func (h streamHeap) Len() int { return len(h) }
func (h streamHeap) Less(i, j int) bool {
	a, b := h[i].head.GetTime(), h[j].head.GetTime()
	if a.GetSeconds() != b.GetSeconds() {
		return a.GetSeconds() > b.GetSeconds()
	}
	if a.GetNanos() != b.GetNanos() {
		return a.GetNanos() > b.GetNanos()
	}
	return h[i].head.GetId() > h[j].head.GetId()
}
func (h streamHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)   { *h = append(*h, x.(*agentStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeQuery runs req on every agent and reads their streams (each newest
// first) in time order across agents until limit entries are taken, then
// cancels the rest: with many agents each could send limit entries, but
// only limit are needed. It returns what it took from each agent, and
// whether more entries matched. A failed or late agent is a warning in n
// (what it sent before is kept: it is its newest entries).
func (d *Datasource) mergeQuery(ctx context.Context, agents []*agent, req *podwirev1.QueryRequest, limit int, n *notices) ([][]*podwirev1.Entry, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*agentStream, len(agents))
	for i, a := range agents {
		s := &agentStream{a: a, c: make(chan *podwirev1.Entry, streamBuffer)}
		streams[i] = s
		go func() {
			r := callAgent(ctx, a, d.s.Timeout, "Query", func(ctx context.Context, a *agent) (struct{}, error) {
				return struct{}{}, s.read(ctx, req)
			})
			s.err = r.err
			close(s.c)
		}()
	}

	var h streamHeap
	var failures []string
	// next moves s to its next entry, and onto the heap when it has one.
	next := func(s *agentStream) error {
		e, ok := <-s.c
		if ok {
			s.head = e
			heap.Push(&h, s)
			return nil
		}
		s.head = nil
		if s.err == nil || ctx.Err() != nil && status.Code(s.err) == codes.Canceled {
			return nil
		}
		if status.Code(s.err) == codes.InvalidArgument {
			return &queryError{msg: status.Convert(s.err).Message()}
		}
		d := describe(s.a, s.err, d.s.Timeout)
		failures = append(failures, d)
		n.warn("%s", d)
		return nil
	}
	for _, s := range streams {
		if err := next(s); err != nil {
			return nil, false, err
		}
	}
	taken := 0
	for h.Len() > 0 && taken < limit {
		s := h[0]
		s.took = append(s.took, s.head)
		taken++
		heap.Pop(&h)
		if err := next(s); err != nil {
			return nil, false, err
		}
	}
	more := h.Len() > 0
	cancel()
	// Drain so the readers end; their errors now are our cancellation.
	for _, s := range streams {
		for range s.c {
		}
	}
	if taken == 0 && len(failures) == len(agents) && len(agents) > 0 {
		if len(failures) == 1 {
			return nil, false, fmt.Errorf("query failed: %s", failures[0])
		}
		return nil, false, fmt.Errorf("query failed on all %d agents: %s", len(failures), strings.Join(failures, "; "))
	}
	lists := make([][]*podwirev1.Entry, len(streams))
	for i, s := range streams {
		lists[i] = s.took
		if len(s.took) > 0 {
			s.a.setNode(s.took[0].GetNode())
		}
	}
	return lists, more, nil
}

// read reads the agent's Query stream into s.c until it ends or ctx does.
func (s *agentStream) read(ctx context.Context, req *podwirev1.QueryRequest) error {
	stream, err := s.a.client.Query(ctx, req, grpc.ForceCodecV2(summaryCodecV2))
	if err != nil {
		return err
	}
	for {
		e, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case s.c <- e:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}
