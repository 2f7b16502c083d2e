package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketBounds(t *testing.T) {
	for _, ms := range []float64{0, 0.0005, 0.001, 0.00109, 0.0011, 0.5, 1, 3.7, 120, 999.9, 60000, 1e9} {
		i := Bucket(ms)
		if ms < Lower(i) || ms >= Upper(i) && i != Buckets-1 {
			t.Errorf("%g ms in bucket %d [%g, %g)", ms, i, Lower(i), Upper(i))
		}
	}
	if Bucket(math.NaN()) != 0 || Bucket(-3) != 0 {
		t.Error("NaN and negative latencies belong in bucket 0")
	}
	if Bucket(1e12) != Buckets-1 {
		t.Error("huge latencies belong in the last bucket")
	}
}

// Percentiles of merged histograms are within a bucket width of the exact
// percentiles of the merged samples, however the samples were split.
func TestMergedQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var all []float64
	var a, b Histogram
	for i := 0; i < 20000; i++ {
		ms := math.Exp(r.NormFloat64()*1.5 + 2) // log-normal around 7 ms
		all = append(all, ms)
		if i%3 == 0 {
			a.Add(ms)
		} else {
			b.Add(ms)
		}
	}
	var sum Histogram
	sum.MergeProto(a.Proto())
	sum.MergeProto(b.Proto())
	if sum.Count != 20000 {
		t.Fatalf("count %d", sum.Count)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := all[int(math.Ceil(q*float64(len(all))))-1]
		got := sum.Quantile(q)
		if math.Abs(got-exact)/exact > 0.095 {
			t.Errorf("p%g = %g, exact %g", q*100, got, exact)
		}
	}
	if m := sum.Mean(); math.Abs(m-(a.SumMs+b.SumMs)/20000) > 1e-9 {
		t.Errorf("mean %g", m)
	}
}

func TestMergeProtoIgnoresBadBuckets(t *testing.T) {
	var h Histogram
	h.Add(5)
	p := h.Proto()
	p.Buckets = append(p.Buckets, 9999)
	p.Counts = append(p.Counts, 7)
	var sum Histogram
	sum.MergeProto(p)
	if sum.Count != 1 || sum.Quantile(1) < 4.5 || sum.Quantile(1) > 5.5 {
		t.Fatalf("count %d p100 %g", sum.Count, sum.Quantile(1))
	}
	if !math.IsNaN(new(Histogram).Quantile(0.5)) {
		t.Error("empty histogram has no quantile")
	}
}

// A sparse histogram merged from the same parts answers exactly as the
// dense one.
func TestSparseMatchesDense(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var dense Histogram
	var sparse Sparse
	for part := 0; part < 5; part++ {
		var h Histogram
		for i := 0; i < 1000; i++ {
			h.Add(math.Exp(r.NormFloat64() + float64(part)))
		}
		dense.Merge(&h)
		p := h.Proto()
		// Reverse one part: MergeProto must not rely on the order.
		if part == 2 {
			slices.Reverse(p.Buckets)
			slices.Reverse(p.Counts)
		}
		sparse.MergeProto(p)
	}
	if sparse.Count != dense.Count || math.Abs(sparse.SumMs-dense.SumMs) > 1e-6 {
		t.Fatalf("count %d sum %g, dense %d %g", sparse.Count, sparse.SumMs, dense.Count, dense.SumMs)
	}
	if !slices.IsSorted(sparse.Buckets) {
		t.Fatal("buckets not sorted")
	}
	for _, q := range []float64{0.01, 0.5, 0.95, 0.99, 1} {
		if a, b := sparse.Quantile(q), dense.Quantile(q); a != b {
			t.Errorf("q%g: sparse %g, dense %g", q, a, b)
		}
	}
	if *sparse.Dense() != dense {
		t.Error("Dense() differs from the dense histogram")
	}
}
