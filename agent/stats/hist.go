// Package stats holds the latency histogram agents fill and the plugin
// merges: fixed log-scale buckets shared by every agent, so percentiles are
// taken from the summed histogram rather than averaged across agents.
package stats

import (
	"math"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Buckets is the number of histogram buckets; bucket i holds latencies in
// [2^((i-1)/8), 2^(i/8)) microseconds (bucket 0: below 1 us; the last one:
// everything above its lower bound). Neighbouring bounds differ by 9%.
const Buckets = 256

// Bucket returns the bucket of a latency in milliseconds.
func Bucket(ms float64) int {
	us := ms * 1000
	if !(us >= 1) { // also NaN
		return 0
	}
	// Exact bucket boundaries are computed the same way by Upper, so a
	// latency exactly on a bound goes to the bucket above it.
	i := int(math.Floor(8*math.Log2(us))) + 1
	if i >= Buckets {
		return Buckets - 1
	}
	return i
}

// Upper returns bucket i's upper bound in milliseconds (+Inf for the last).
func Upper(i int) float64 {
	if i >= Buckets-1 {
		return math.Inf(1)
	}
	return math.Exp2(float64(i)/8) / 1000
}

// Lower returns bucket i's lower bound in milliseconds (0 for bucket 0).
func Lower(i int) float64 {
	if i <= 0 {
		return 0
	}
	return math.Exp2(float64(i-1)/8) / 1000
}

// Histogram is a dense latency histogram.
type Histogram struct {
	Counts [Buckets]uint64
	Count  uint64
	SumMs  float64
}

// Add counts one latency in milliseconds.
func (h *Histogram) Add(ms float64) {
	h.Counts[Bucket(ms)]++
	h.Count++
	if ms > 0 {
		h.SumMs += ms
	}
}

// Merge adds o into h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Count += o.Count
	h.SumMs += o.SumMs
}

// MergeProto adds a histogram from the wire into h. Out-of-range or
// mismatched buckets are ignored (an agent of another version), so one bad
// agent cannot poison the sum.
func (h *Histogram) MergeProto(p *podwirev1.Histogram) {
	if p == nil {
		return
	}
	b, c := p.GetBuckets(), p.GetCounts()
	n := min(len(b), len(c))
	for k := 0; k < n; k++ {
		if b[k] >= Buckets {
			continue
		}
		h.Counts[b[k]] += c[k]
		h.Count += c[k]
	}
	if s := p.GetSumMs(); s > 0 && !math.IsInf(s, 0) {
		h.SumMs += s
	}
}

// Proto returns h in the sparse wire form.
func (h *Histogram) Proto() *podwirev1.Histogram {
	p := &podwirev1.Histogram{SumMs: h.SumMs}
	for i, c := range h.Counts {
		if c != 0 {
			p.Buckets = append(p.Buckets, uint32(i))
			p.Counts = append(p.Counts, c)
		}
	}
	return p
}

// Quantile returns the q-quantile (0 < q <= 1) in milliseconds, or NaN when
// h is empty. Within a bucket it interpolates geometrically between the
// bounds, so the error is within a bucket's width (9%).
func (h *Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	q = min(max(q, 0), 1)
	rank := q * float64(h.Count)
	var seen uint64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if float64(seen+c) >= rank {
			return within(i, rank-float64(seen), c)
		}
		seen += c
	}
	return Lower(Buckets - 1)
}

// within interpolates geometrically inside bucket i holding c entries the
// latency of rank r among them.
func within(i int, r float64, c uint64) float64 {
	lo, hi := Lower(i), Upper(i)
	if i == 0 {
		return hi
	}
	if math.IsInf(hi, 1) {
		return lo
	}
	return lo * math.Pow(hi/lo, r/float64(c))
}

// Mean returns the mean latency in milliseconds, or NaN when h is empty.
func (h *Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.SumMs / float64(h.Count)
}
