package server

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/podwire/podwire/agent/stats"
)

// TestHist: sparse, turned dense, or kept sparse for want of budget, a
// hist sends what stats.Histogram would.
func TestHist(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		budget int
		dense  bool
	}{
		{"sparse", 10, 1, false},
		{"dense", 5000, 1, true},
		{"no budget", 5000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			var h hist
			var want stats.Histogram
			budget := tc.budget
			for range tc.n {
				ms := rng.ExpFloat64() * 50
				if rng.IntN(20) == 0 {
					ms = 0
				}
				want.Add(ms)
				h.add(stats.Bucket(ms), ms, &budget)
			}
			if (h.dense != nil) != tc.dense {
				t.Errorf("dense = %v, want %v", h.dense != nil, tc.dense)
			}
			if !proto.Equal(h.proto(), want.Proto()) {
				t.Errorf("proto\n got %v\nwant %v", h.proto(), want.Proto())
			}
		})
	}
}
