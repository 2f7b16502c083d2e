package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

// scan returns the paths Scan passes, and checks the count it returns.
func scan(t *testing.T, s *Store, from, to time.Time, whole bool) []string {
	t.Helper()
	var out []string
	n := s.Scan(from, to, whole, func(e *entry.Entry) bool {
		out = append(out, strings.Clone(e.Path))
		return true
	})
	if n != uint64(len(out)) {
		t.Errorf("Scan returned %d, passed %d", n, len(out))
	}
	return out
}

// TestScanMatchesQuery: over entries arriving out of order, in several
// batches, Scan passes the same entries in the same order as an unlimited
// Query, for whole entries and summaries.
func TestScanMatchesQuery(t *testing.T) {
	s := New(Config{Node: "n", MaxBytes: 1 << 30})
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3*scanBatch + 17
	for i := range n {
		e := mk(float64(i)/10+rng.Float64(), fmt.Sprintf("/%d", i))
		e.Request = &entry.Message{Headers: []entry.Header{{Name: "x", Value: strings.Repeat("h", i%50)}}, Body: []byte("body")}
		s.Add(e)
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
	}{
		{"all", time.Time{}, time.Time{}},
		{"from", at(100), time.Time{}},
		{"to", time.Time{}, at(300)},
		{"range", at(50.5), at(500.25)},
		{"empty", at(400), at(400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := query(s, Query{From: tc.from, To: tc.to, Limit: 1 << 30})
			for _, whole := range []bool{false, true} {
				got := scan(t, s, tc.from, tc.to, whole)
				if !slices.Equal(got, want) {
					t.Errorf("whole=%v: %d entries, Query gives %d; first %v vs %v", whole, len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
				}
			}
		})
	}
}

func TestScanSummaryAndWhole(t *testing.T) {
	s := New(Config{Node: "n", MaxBytes: 1 << 20})
	e := mk(1, "/x")
	e.Src.Who = &entry.Identity{Namespace: "shop", Workload: "web"}
	e.Request = &entry.Message{Headers: []entry.Header{{Name: "host", Value: "cart"}}}
	e.Notes = []string{"note"}
	s.Add(e)
	s.Scan(time.Time{}, time.Time{}, false, func(got *entry.Entry) bool {
		if got.Request != nil || got.Notes != nil || got.Path != "/x" || got.Src.Ident().Workload != "web" || got.ID != e.ID {
			t.Errorf("summary %+v", got)
		}
		return true
	})
	s.Scan(time.Time{}, time.Time{}, true, func(got *entry.Entry) bool {
		if got.Request.Header("host") != "cart" || len(got.Notes) != 1 {
			t.Errorf("whole entry %+v", got)
		}
		return true
	})
}

func TestScanStops(t *testing.T) {
	s := New(Config{Node: "n", MaxBytes: 1 << 30})
	for i := range 5000 {
		s.Add(mk(float64(i), "/"))
	}
	calls := 0
	n := s.Scan(time.Time{}, time.Time{}, false, func(*entry.Entry) bool {
		calls++
		return calls < 3000
	})
	if calls != 3000 || n != 3000 {
		t.Errorf("fn called %d times, Scan returned %d; want 3000 (stopped)", calls, n)
	}
}

// TestScanWhileAdding: Scan over a store that evicts as it is scanned
// reads valid entries only (the race detector checks the rest).
func TestScanWhileAdding(t *testing.T) {
	s := New(Config{Node: "n", MaxBytes: 256 << 10})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Add(mk(float64(i), fmt.Sprintf("/p%d", i)))
		}
	})
	for range 50 {
		s.Scan(time.Time{}, time.Time{}, false, func(e *entry.Entry) bool {
			if !strings.HasPrefix(e.Path, "/p") {
				t.Fatalf("bad entry %+v", e)
			}
			return true
		})
	}
	close(stop)
	wg.Wait()
}

// BenchmarkScan1M passes every one of 1M stored entries (about 1 KiB
// each by Size, with headers and a 512-byte body) to a function that
// reads a field: as summaries, and whole.
func BenchmarkScan1M(b *testing.B) {
	const n = 1_000_000
	s := New(Config{Node: "node-1", MaxBytes: 1 << 40})
	for i := range n {
		s.Add(benchEntry(i))
	}
	for _, whole := range []bool{false, true} {
		name := "summary"
		if whole {
			name = "whole"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				failed := 0
				if got := s.Scan(time.Time{}, time.Time{}, whole, func(e *entry.Entry) bool {
					if e.Status >= 500 {
						failed++
					}
					return true
				}); got != n || failed == 0 {
					b.Fatalf("scanned %d, %d failed", got, failed)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
