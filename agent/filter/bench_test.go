package filter

import "testing"

func BenchmarkMatch(b *testing.B) {
	for _, expr := range []string{
		`http && status >= 500`,
		`dst.namespace == "shop" && latency > duration("200ms")`,
		`request.headers["user-agent"].startsWith("curl")`,
		`path.matches("^/api/")`,
		`method in ["GET", "HEAD"]`,
		// Cost-tracked at run time: the static estimate is over CostLimit.
		`request.headers.exists(k, request.body.contains(k)) || http`,
	} {
		b.Run(expr, func(b *testing.B) {
			f, err := Compile(expr)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if !f.Match(httpErr) {
					b.Fatal("no match")
				}
			}
		})
	}
}
