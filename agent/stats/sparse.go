package stats

import (
	"math"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Sparse is a histogram holding only its non-empty buckets, for when many
// are kept at once (a metrics series' points): most see a few dozen
// distinct buckets, so one costs a few hundred bytes instead of a dense
// Histogram's 2 KiB.
type Sparse struct {
	// Buckets ascending, Counts[k] the count of Buckets[k]; no zeros.
	Buckets []uint32
	Counts  []uint64
	Count   uint64
	SumMs   float64
}

// MergeProto adds a histogram from the wire. Like Histogram.MergeProto it
// ignores out-of-range buckets; it also tolerates unsorted input.
func (s *Sparse) MergeProto(p *podwirev1.Histogram) {
	if p == nil {
		return
	}
	b, c := p.GetBuckets(), p.GetCounts()
	n := min(len(b), len(c))
	for k := 0; k < n; k++ {
		if b[k] < Buckets && c[k] != 0 {
			s.add(b[k], c[k])
		}
	}
	if sum := p.GetSumMs(); sum > 0 && !math.IsInf(sum, 0) {
		s.SumMs += sum
	}
}

// Merge adds o into s.
func (s *Sparse) Merge(o *Sparse) {
	for k, b := range o.Buckets {
		s.add(b, o.Counts[k])
	}
	s.SumMs += o.SumMs
}

// add counts c in bucket b, keeping Buckets sorted. Input arrives in
// ascending order, so the search mostly ends at the tail.
func (s *Sparse) add(b uint32, c uint64) {
	s.Count += c
	i := len(s.Buckets)
	for i > 0 && s.Buckets[i-1] > b {
		i--
	}
	if i > 0 && s.Buckets[i-1] == b {
		s.Counts[i-1] += c
		return
	}
	s.Buckets = append(s.Buckets, 0)
	s.Counts = append(s.Counts, 0)
	copy(s.Buckets[i+1:], s.Buckets[i:])
	copy(s.Counts[i+1:], s.Counts[i:])
	s.Buckets[i], s.Counts[i] = b, c
}

// Dense returns s as a dense Histogram.
func (s *Sparse) Dense() *Histogram {
	h := &Histogram{Count: s.Count, SumMs: s.SumMs}
	for k, b := range s.Buckets {
		h.Counts[b] += s.Counts[k]
	}
	return h
}

// Quantile is Histogram.Quantile for s.
func (s *Sparse) Quantile(q float64) float64 {
	if s.Count == 0 {
		return math.NaN()
	}
	rank := min(max(q, 0), 1) * float64(s.Count)
	var seen uint64
	for k, b := range s.Buckets {
		c := s.Counts[k]
		if float64(seen+c) >= rank {
			return within(int(b), rank-float64(seen), c)
		}
		seen += c
	}
	return Lower(Buckets - 1)
}
