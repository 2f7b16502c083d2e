package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// TestAggregationStopsWhenCanceled: a caller that gives up stops the
// scan, and gets Canceled rather than a partial answer.
func TestAggregationStopsWhenCanceled(t *testing.T) {
	st := store.New(store.Config{Node: "n", MaxBytes: 64 << 20})
	for i := range 3 * ctxCheck {
		st.Add(&entry.Entry{Time: benchT0.Add(time.Duration(i)), Protocol: entry.ProtoHTTP})
	}
	s := New(st, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"ServiceMap": func() error { _, err := s.ServiceMap(ctx, &podwirev1.ServiceMapRequest{}); return err },
		"Metrics": func() error {
			_, err := s.Metrics(ctx, &podwirev1.MetricsRequest{From: tsp(benchT0), To: tsp(benchT0.Add(time.Hour))})
			return err
		},
		"Values": func() error { _, err := s.Values(ctx, &podwirev1.ValuesRequest{Field: "protocol"}); return err },
		// A costly filter checks the context at every entry.
		"costly filter": func() error {
			_, err := s.ServiceMap(ctx, &podwirev1.ServiceMapRequest{Filter: `request.headers.exists(k, request.body.contains(k)) || http`})
			return err
		},
	}
	for name, call := range calls {
		if code := status.Code(call()); code != codes.Canceled {
			t.Errorf("%s: %v, want Canceled", name, code)
		}
	}
	if n := len(s.aggSlots); n != 0 {
		t.Errorf("%d aggregation slots still taken", n)
	}
}

func tsp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
