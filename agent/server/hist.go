package server

import (
	"slices"

	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// sparseMax is how many distinct buckets a histogram keeps as a sorted
// list before it turns into a dense stats.Histogram (2 KiB). Most groups
// see few distinct latencies, so most histograms of a request stay small.
const sparseMax = 24

// maxDense bounds the dense histograms one request makes (each 2 KiB);
// beyond it histograms stay sparse, which is slower to fill but costs at
// most 8 bytes per distinct bucket, so memory stays bounded by the caps on
// groups plus a few bytes per entry.
const maxDense = 8192

// hist is a latency histogram in stats' buckets, sparse while small.
type hist struct {
	n   uint64
	sum float64
	// sp holds the sparse form, one word per bucket in ascending order:
	// the bucket in the top 8 bits, its count in the other 56.
	sp    []uint64
	dense *stats.Histogram
}

const (
	spShift = 56
	spCount = 1<<spShift - 1
)

// add counts one latency of ms milliseconds in bucket (stats.Bucket(ms)).
// dense is the request's remaining budget of dense histograms.
func (h *hist) add(bucket int, ms float64, dense *int) {
	h.n++
	if ms > 0 {
		h.sum += ms
	}
	if h.dense != nil {
		h.dense.Counts[bucket]++
		return
	}
	b := uint64(bucket)
	i := 0
	for i < len(h.sp) && h.sp[i]>>spShift < b {
		i++
	}
	if i < len(h.sp) && h.sp[i]>>spShift == b {
		h.sp[i]++
		return
	}
	if len(h.sp) >= sparseMax && *dense > 0 {
		*dense--
		d := new(stats.Histogram)
		for _, w := range h.sp {
			d.Counts[w>>spShift] = w & spCount
		}
		d.Counts[bucket]++
		h.dense, h.sp = d, nil
		return
	}
	if h.sp == nil {
		h.sp = make([]uint64, 0, 4)
	}
	h.sp = slices.Insert(h.sp, i, b<<spShift|1)
}

// proto returns the histogram in the wire form.
func (h *hist) proto() *podwirev1.Histogram {
	if h.dense != nil {
		h.dense.Count, h.dense.SumMs = h.n, h.sum
		return h.dense.Proto()
	}
	p := &podwirev1.Histogram{SumMs: h.sum}
	if len(h.sp) > 0 {
		p.Buckets = make([]uint32, len(h.sp))
		p.Counts = make([]uint64, len(h.sp))
		for i, w := range h.sp {
			p.Buckets[i], p.Counts[i] = uint32(w>>spShift), w&spCount
		}
	}
	return p
}
