package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// benchStream is a redis-benchmark-like pipelined conversation (-P 16):
// SET, GET, LPUSH and LRANGE of small values, each batch of 16 commands in
// one write and its 16 replies in one write.
func benchStream(batches int) (c2s, s2c [][]byte, replies int) {
	for i := range batches {
		var cb, sb []byte
		for j := range 16 {
			k := fmt.Sprintf("key:%012d", (i*16+j)%100000)
			switch (i*16 + j) % 4 {
			case 0:
				cb = fmt.Appendf(cb, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n", len(k), k)
				sb = append(sb, "+OK\r\n"...)
			case 1:
				cb = fmt.Appendf(cb, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k)
				sb = append(sb, "$3\r\nxxx\r\n"...)
			case 2:
				cb = fmt.Appendf(cb, "*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$3\r\nxxx\r\n")
				sb = fmt.Appendf(sb, ":%d\r\n", i*4+j)
			case 3:
				cb = fmt.Appendf(cb, "*4\r\n$6\r\nLRANGE\r\n$6\r\nmylist\r\n$1\r\n0\r\n$1\r\n9\r\n")
				sb = append(sb, "*10\r\n"...)
				for range 10 {
					sb = append(sb, "$3\r\nxxx\r\n"...)
				}
			}
			replies++
		}
		c2s, s2c = append(c2s, cb), append(s2c, sb)
	}
	return c2s, s2c, replies
}

func BenchmarkRedis(b *testing.B) {
	c2s, s2c, replies := benchStream(64)
	total := 0
	for i := range c2s {
		total += len(c2s[i]) + len(s2c[i])
	}
	st := new(Stats)
	n := 0
	emit := func(*entry.Entry) { n++ }
	t0 := time.Unix(1, 0)
	b.SetBytes(int64(total))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, emit, st)
		for i := range c2s {
			h.Data(tcp.Egress, c2s[i], t0)
			h.Data(tcp.Ingress, s2c[i], t0)
		}
		h.End(tcp.EndFIN, t0)
	}
	b.StopTimer()
	if n != b.N*replies || st.Orphans.Load() != 0 || st.Malformed.Load() != 0 {
		b.Fatalf("%d entries for %d runs of %d replies (stats %v)", n, b.N, replies, st.Snapshot())
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "replies/s")
}

// lrangeStream mirrors redis-benchmark's LRANGE_600 test at -P 16: each
// batch is 16 pipelined "LRANGE mylist 0 599" in one write, answered by 16
// arrays of 600 bulk strings of 3 bytes ("xxx", redis-benchmark's default
// -d 3). The replies come in pieces of chunk bytes, as Redis writes them
// (16 KiB reply blocks) and as the capture hands them over.
func lrangeStream(batches, chunk int) (c2s, s2c [][]byte, replies int) {
	const elems = 600
	for range batches {
		var cb, sb []byte
		for range 16 {
			cb = append(cb, "*4\r\n$6\r\nLRANGE\r\n$6\r\nmylist\r\n$1\r\n0\r\n$3\r\n599\r\n"...)
			sb = fmt.Appendf(sb, "*%d\r\n", elems)
			for range elems {
				sb = append(sb, "$3\r\nxxx\r\n"...)
			}
			replies++
		}
		c2s = append(c2s, cb)
		for len(sb) > 0 {
			n := min(chunk, len(sb))
			s2c = append(s2c, sb[:n:n])
			sb = sb[n:]
		}
		// An empty piece marks the end of a batch's replies.
		s2c = append(s2c, nil)
	}
	return c2s, s2c, replies
}

func BenchmarkRedisLRANGE600(b *testing.B) {
	c2s, s2c, replies := lrangeStream(4, 16<<10)
	total := 0
	for _, p := range c2s {
		total += len(p)
	}
	for _, p := range s2c {
		total += len(p)
	}
	st := new(Stats)
	n := 0
	emit := func(e *entry.Entry) {
		n++
		if e.Response == nil || e.Response.Truncated {
			b.Fatalf("entry %q without a whole reply", e.Method)
		}
	}
	t0 := time.Unix(1, 0)
	b.SetBytes(int64(total))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, emit, st)
		k := 0
		for i := range c2s {
			h.Data(tcp.Egress, c2s[i], t0)
			for ; s2c[k] != nil; k++ {
				h.Data(tcp.Ingress, s2c[k], t0)
			}
			k++
		}
		h.End(tcp.EndFIN, t0)
	}
	b.StopTimer()
	if n != b.N*replies || st.Orphans.Load() != 0 || st.Malformed.Load() != 0 || st.Incomplete.Load() != 0 {
		b.Fatalf("%d entries for %d runs of %d replies (stats %v)", n, b.N, replies, st.Snapshot())
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "replies/s")
}
