package filter

import (
	"testing"

	"github.com/podwire/podwire/agent/entry"
)

// TestNeedsMessages: a filter that does not read the messages gives the
// same answer on an entry's summary as on the whole entry; one that does
// says so.
func TestNeedsMessages(t *testing.T) {
	entries := []*entry.Entry{httpErr, httpOK, redisGet, grpcFail, dnsQuery}
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{``, false},
		{`http && status >= 500`, false},
		{`dst.namespace == "shop" && latency > duration("200ms")`, false},
		{`src.process == "curl" || id == "n1-2" || incomplete`, false},
		{`path.startsWith("/api") && node == "n1" && httpVersion == "1.1"`, false},
		{`request.headers["user-agent"].startsWith("curl")`, true},
		{`response.body.contains("oops")`, true},
		{`http && response.bodyBytes > 1000`, true},
		{`request.truncated || status == 200`, true},
		{`has(response.headers.server)`, true},
		{`response.headers.exists(k, k == "set-cookie")`, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			f, err := Compile(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.NeedsMessages(); got != tc.want {
				t.Fatalf("NeedsMessages() = %v, want %v", got, tc.want)
			}
			var d entry.SummaryReader
			matches := 0
			for _, e := range entries {
				whole := f.Match(e)
				if whole {
					matches++
				}
				if tc.want {
					continue
				}
				sum, err := d.Read(entry.AppendPacked(nil, e))
				if err != nil {
					t.Fatal(err)
				}
				if got := f.Match(sum); got != whole {
					t.Errorf("entry %s: summary matches %v, whole entry %v", e.ID, got, whole)
				}
			}
			if tc.expr != "" && (matches == 0 || matches == len(entries)) && !tc.want {
				t.Errorf("matches %d of %d entries: the case tells nothing", matches, len(entries))
			}
		})
	}
}
