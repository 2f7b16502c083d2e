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
