package frames

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// manyEntries returns n realistic entries, newest first, cycling through
// the fixtures with distinct ids and times.
func manyEntries(n int) []*podwirev1.Entry {
	base := sampleEntries()
	out := make([]*podwirev1.Entry, n)
	for i := range out {
		e := proto.CloneOf(base[i%len(base)])
		e.Id = fmt.Sprintf("worker-%d-%d", i%3, n-i)
		e.Time = ts(t0.Add(time.Duration(n-i) * time.Millisecond))
		out[i] = e
	}
	return out
}

// BenchmarkTraffic builds the traffic table of a 10,000-row query.
func BenchmarkTraffic(b *testing.B) {
	es := manyEntries(10000)
	b.ReportAllocs()
	for b.Loop() {
		Traffic(es, testLinks)
	}
}

// BenchmarkLogs builds the log-lines frame of a 10,000-line query.
func BenchmarkLogs(b *testing.B) {
	es := manyEntries(10000)
	b.ReportAllocs()
	for b.Loop() {
		Logs(es, testLinks)
	}
}

// BenchmarkMergeEntries merges 10 agents' 10,000 entries each to 10,000.
func BenchmarkMergeEntries(b *testing.B) {
	lists := make([][]*podwirev1.Entry, 10)
	for a := range lists {
		lists[a] = manyEntries(10000)
		for i, e := range lists[a] {
			e.Id = fmt.Sprintf("a%d-%d", a, i)
			e.Time = ts(t0.Add(time.Duration((10000-i)*10+a) * time.Millisecond))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		MergeEntries(lists, 10000)
	}
}
