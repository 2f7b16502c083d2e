package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// Test entries, by name.
var (
	httpErr = &entry.Entry{
		ID: "n1-1", Node: "n1", Time: t0, Protocol: entry.ProtoHTTP, HTTPVersion: "1.1",
		Src:    entry.Endpoint{IP: netip.MustParseAddr("10.0.0.1"), Port: 40000, Who: &entry.Identity{Pod: "web-1", Namespace: "front", Process: "curl"}},
		Dst:    entry.Endpoint{IP: netip.MustParseAddr("10.0.0.2"), Port: 8080, Who: &entry.Identity{Pod: "cart-1", Namespace: "shop", Workload: "cart", WorkloadKind: "Deployment", Service: "cart", Node: "n2"}},
		Method: "GET", Path: "/api/cart?id=1", Status: 503, Failed: true, Latency: 250 * time.Millisecond,
		Request: &entry.Message{Headers: []entry.Header{
			{Name: "host", Value: "cart"}, {Name: "user-agent", Value: "curl/8.5"},
			{Name: "accept", Value: "a"}, {Name: "accept", Value: "b"},
		}, Body: []byte(`{"q":1}`), BodyBytes: 7},
		Response: &entry.Message{Headers: []entry.Header{
			{Name: "content-type", Value: "text/plain"}, {Name: "set-cookie", Value: "a=1"}, {Name: "set-cookie", Value: "b=2"},
		}, Body: []byte("upstream oops"), BodyBytes: 5000, Truncated: true},
	}
	httpOK = &entry.Entry{
		ID: "n1-2", Node: "n1", Time: t0.Add(time.Second), Protocol: entry.ProtoHTTP, HTTPVersion: "2",
		Dst:    entry.Endpoint{Port: 443, Who: &entry.Identity{Namespace: "shop"}},
		Method: "HEAD", Path: "/index.html", Status: 200, Latency: 10 * time.Millisecond,
		Request:  &entry.Message{Headers: []entry.Header{{Name: "host", Value: "web"}}},
		Response: &entry.Message{},
	}
	redisGet = &entry.Entry{
		ID: "n2-7", Node: "n2", Time: t0, Protocol: entry.ProtoRedis,
		Dst:    entry.Endpoint{Port: 6379, Who: &entry.Identity{Namespace: "shop", Service: "redis"}},
		Method: "GET", Path: "cart:1", Latency: time.Millisecond,
		Request: &entry.Message{}, Incomplete: true,
	}
	grpcFail = &entry.Entry{
		ID: "n1-3", Node: "n1", Time: t0, Protocol: entry.ProtoGRPC, HTTPVersion: "2",
		Method: "/shop.Cart/Get", Path: "/shop.Cart/Get", Status: 14, Failed: true,
		Request: &entry.Message{Headers: []entry.Header{{Name: "content-type", Value: "application/grpc"}}},
		// No response seen.
	}
	dnsQuery = &entry.Entry{
		ID: "n1-4", Node: "n1", Time: t0, Protocol: entry.ProtoDNS,
		Method: "A", Path: "cart.shop.svc.cluster.local", Status: 3, Failed: true,
	}
)

func TestMatch(t *testing.T) {
	all := []*entry.Entry{httpErr, httpOK, redisGet, grpcFail, dnsQuery}
	name := map[*entry.Entry]string{httpErr: "httpErr", httpOK: "httpOK", redisGet: "redisGet", grpcFail: "grpcFail", dnsQuery: "dnsQuery"}
	cases := []struct {
		expr string
		want []*entry.Entry // the entries that match
	}{
		{``, all},
		{"  \n\t", all},
		{`http && status >= 500`, []*entry.Entry{httpErr}},
		{`dst.namespace == "shop" && latency > duration("200ms")`, []*entry.Entry{httpErr}},
		{`redis && method == "GET"`, []*entry.Entry{redisGet}},
		{`request.headers["user-agent"].startsWith("curl")`, []*entry.Entry{httpErr}},
		{`path.matches("^/api/")`, []*entry.Entry{httpErr}},
		{`method in ["GET","HEAD"]`, []*entry.Entry{httpErr, httpOK, redisGet}},
		{`grpc`, []*entry.Entry{grpcFail}},
		{`dns && path.endsWith(".cluster.local")`, []*entry.Entry{dnsQuery}},
		{`protocol == "http"`, []*entry.Entry{httpErr, httpOK}},
		{`httpVersion == "2"`, []*entry.Entry{httpOK, grpcFail}},
		{`failed`, []*entry.Entry{httpErr, grpcFail, dnsQuery}},
		{`!failed`, []*entry.Entry{httpOK, redisGet}},
		{`incomplete`, []*entry.Entry{redisGet}},
		{`status == 14`, []*entry.Entry{grpcFail}},
		{`status >= 500.0`, []*entry.Entry{httpErr}},
		{`latency < duration("5ms")`, []*entry.Entry{redisGet, grpcFail, dnsQuery}},
		{`time > timestamp("2024-05-01T10:00:00Z")`, []*entry.Entry{httpOK}},
		{`id.startsWith("n1-")`, []*entry.Entry{httpErr, httpOK, grpcFail, dnsQuery}},
		{`node == "n2"`, []*entry.Entry{redisGet}},
		{`src.ip == "10.0.0.1" && src.port == 40000`, []*entry.Entry{httpErr}},
		{`src.ip == ""`, []*entry.Entry{httpOK, redisGet, grpcFail, dnsQuery}},
		{`src.pod == "web-1" && src.namespace == "front" && src.process == "curl"`, []*entry.Entry{httpErr}},
		{`dst.port == 6379 && dst.service == "redis"`, []*entry.Entry{redisGet}},
		{`dst.workload == "cart" && dst.workloadKind == "Deployment" && dst.node == "n2" && dst.ip == "10.0.0.2" && dst.pod == "cart-1"`, []*entry.Entry{httpErr}},
		{`"user-agent" in request.headers`, []*entry.Entry{httpErr}},
		{`has(request.headers.host)`, []*entry.Entry{httpErr, httpOK}},
		{`request.headers.host == "web"`, []*entry.Entry{httpOK}},
		{`request.headers["x-missing"] == ""`, all},
		{`request.headers["accept"] == "a, b"`, []*entry.Entry{httpErr}},
		{`response.headers["set-cookie"] == "a=1\nb=2"`, []*entry.Entry{httpErr}},
		{`size(request.headers) == 3`, []*entry.Entry{httpErr}},
		{`request.headers.exists(k, k == "content-type")`, []*entry.Entry{grpcFail}},
		{`request.headers.all(k, k != "accept")`, []*entry.Entry{httpOK, redisGet, grpcFail, dnsQuery}},
		{`request.headers == {"host": "web"}`, []*entry.Entry{httpOK}},
		{`request.body.contains("\"q\"") && request.bodyBytes == 7`, []*entry.Entry{httpErr}},
		{`response.body.contains("oops") && response.truncated && response.bodyBytes > 1000`, []*entry.Entry{httpErr}},
		{`response.body == "" && !response.truncated && response.bodyBytes == 0`, []*entry.Entry{httpOK, redisGet, grpcFail, dnsQuery}},
		{`response.headers["content-type"] == ""`, []*entry.Entry{httpOK, redisGet, grpcFail, dnsQuery}},
		{`path.lowerAscii().contains("cart")`, []*entry.Entry{httpErr, redisGet, grpcFail, dnsQuery}},
		{`path.split(".").size() > 3`, []*entry.Entry{dnsQuery}},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			f, err := Compile(tc.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if f.String() != tc.expr {
				t.Errorf("String() = %q", f.String())
			}
			want := map[*entry.Entry]bool{}
			for _, e := range tc.want {
				want[e] = true
			}
			for _, e := range all {
				if got := f.Match(e); got != want[e] {
					t.Errorf("Match(%s) = %v, want %v", name[e], got, want[e])
				}
			}
			if n := f.Errors(); n != 0 {
				t.Errorf("Errors() = %d, want 0", n)
			}
		})
	}
}

func TestNilFilterMatches(t *testing.T) {
	var f *Filter
	if !f.Match(httpOK) {
		t.Fatal("nil filter did not match")
	}
}

func TestRuntimeErrorCounts(t *testing.T) {
	f, err := Compile(`int(path) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	if f.Match(httpErr) || f.Match(httpOK) {
		t.Fatal("matched on a run-time error")
	}
	if n := f.Errors(); n != 2 {
		t.Fatalf("Errors() = %d, want 2", n)
	}
}

func TestCostLimit(t *testing.T) {
	nums := make([]string, 200)
	for i := range nums {
		nums[i] = fmt.Sprint(i)
	}
	l := "[" + strings.Join(nums, ",") + "]"
	// 200^4 iterations: far over the limit.
	expr := fmt.Sprintf("%s.all(a, %s.all(b, %s.all(c, %s.all(d, a+b+c+d >= 0))))", l, l, l, l)
	f, err := Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	if !f.tracked {
		t.Fatal("hostile filter is not cost-tracked")
	}
	start := time.Now()
	if f.Match(httpOK) {
		t.Fatal("matched over the cost limit")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("evaluation took %v", d)
	}
	if f.Errors() != 1 {
		t.Fatalf("Errors() = %d, want 1", f.Errors())
	}

	cheap, err := Compile(`http && status >= 500 && request.body.contains("x")`)
	if err != nil {
		t.Fatal(err)
	}
	if cheap.tracked {
		t.Fatal("simple filter is cost-tracked")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name, expr   string
		line, column int
		offset       int
		msg          string
	}{
		{"undeclared", `staus >= 500`, 1, 1, 0, `undeclared reference to 'staus' (did you mean 'status'?)`},
		{"undeclared later", `http && staus >= 500`, 1, 9, 8, `undeclared reference to 'staus' (did you mean 'status'?)`},
		{"unknown field", `dst.namespace == "a" || src.podd == "x"`, 1, 29, 28, `undeclared reference to 'src.podd' (did you mean 'src.pod'?)`},
		{"unknown field second line", "http &&\n  src.podd == 'x'", 2, 7, 14, `undeclared reference to 'src.podd' (did you mean 'src.pod'?)`},
		{"unknown object", `source.pod == "x"`, 1, 1, 0, `undeclared reference to 'source'`},
		{"syntax mid-expression", `http && status >= && failed`, 1, 19, 18, "extraneous input '&&' expecting"},
		{"syntax end", `http && status >=`, 1, 18, 17, "mismatched input '<EOF>' expecting"},
		{"unclosed paren", `(http && failed`, 1, 16, 15, "missing ')' at '<EOF>'"},
		{"wrong type", `path == 5`, 1, 6, 5, `found no matching overload for '_==_' applied to '(string, int)'`},
		{"wrong type duration", `latency > 200`, 1, 9, 8, `found no matching overload for '_>_' applied to '(duration, int)'`},
		{"wrong type line 2", "http &&\n\tsrc.port > \"a\"", 2, 11, 18, `found no matching overload for '_>_' applied to '(int, string)'`},
		{"not boolean int", `status + 1`, 1, 1, 0, "filter must be a boolean expression, got int"},
		{"not boolean string", `path`, 1, 1, 0, "filter must be a boolean expression, got string"},
		{"not boolean duration", `latency`, 1, 1, 0, "filter must be a boolean expression, got duration"},
		{"unicode column", `path == "é" && staus == 1`, 1, 16, 16, `undeclared reference to 'staus' (did you mean 'status'?)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.expr)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Compile(%q) error = %v, want *Error", tc.expr, err)
			}
			if fe.Line != tc.line || fe.Column != tc.column || fe.Offset != tc.offset {
				t.Errorf("position = %d:%d offset %d, want %d:%d offset %d\n%v",
					fe.Line, fe.Column, fe.Offset, tc.line, tc.column, tc.offset, fe)
			}
			if !strings.HasPrefix(fe.Msg, tc.msg) {
				t.Errorf("Msg = %q, want prefix %q", fe.Msg, tc.msg)
			}
			if fe.Expr != tc.expr {
				t.Errorf("Expr = %q", fe.Expr)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	cases := []struct {
		expr, want string
	}{
		{`http && staus >= 500`, "filter:1:9: undeclared reference to 'staus' (did you mean 'status'?)\n" +
			"http && staus >= 500\n" +
			"        ^"},
		{"http &&\n\tsrc.port > \"a\"", "filter:2:11: found no matching overload for '_>_' applied to '(int, string)'\n" +
			"\tsrc.port > \"a\"\n" +
			"\t         ^"},
		{`status + 1`, "filter:1:1: filter must be a boolean expression, got int\n" +
			"status + 1\n" +
			"^"},
	}
	for _, tc := range cases {
		_, err := Compile(tc.expr)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Compile(%q) error:\n%v\nwant:\n%s", tc.expr, err, tc.want)
		}
	}
}

func TestFields(t *testing.T) {
	trivial := map[string]string{
		"string":              `%[1]s == "" || %[1]s != ""`,
		"int":                 `%[1]s >= 0`,
		"bool":                `%[1]s || !%[1]s`,
		"duration":            `%[1]s >= duration("0s")`,
		"timestamp":           `%[1]s >= timestamp("1970-01-01T00:00:00Z")`,
		"map(string, string)": `size(%[1]s) >= 0`,
	}
	seen := map[string]bool{}
	for _, f := range Fields() {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Doc == "" || f.Example == "" {
			t.Errorf("%s: missing Doc or Example", f.Name)
		}
		tmpl, ok := trivial[f.Type]
		if !ok {
			t.Errorf("%s: unexpected type %q", f.Name, f.Type)
			continue
		}
		flt, err := Compile(fmt.Sprintf(tmpl, f.Name))
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		if !flt.Match(httpErr) || !flt.Match(dnsQuery) {
			t.Errorf("%s: trivial filter did not match", f.Name)
		}
		ex, err := Compile(f.Example)
		if err != nil {
			t.Errorf("%s: example %q: %v", f.Name, f.Example, err)
			continue
		}
		for _, e := range []*entry.Entry{httpErr, httpOK, redisGet, grpcFail, dnsQuery} {
			ex.Match(e)
		}
		if ex.Errors() != 0 {
			t.Errorf("%s: example %q failed at run time", f.Name, f.Example)
		}
	}
	// Every name of the contract is there.
	for _, n := range []string{
		"protocol", "httpVersion", "method", "path", "status", "failed", "latency", "time", "id", "node",
		"incomplete", "http", "grpc", "redis", "dns",
		"request.headers", "request.body", "request.bodyBytes", "request.truncated",
		"response.headers", "response.body", "response.bodyBytes", "response.truncated",
	} {
		if !seen[n] {
			t.Errorf("Fields() lacks %s", n)
		}
	}
	for _, side := range []string{"src", "dst"} {
		for _, n := range []string{"ip", "port", "pod", "namespace", "workload", "workloadKind", "service", "node", "process"} {
			if !seen[side+"."+n] {
				t.Errorf("Fields() lacks %s.%s", side, n)
			}
		}
	}
}

func TestConcurrentMatch(t *testing.T) {
	f, err := Compile(`http && status >= 500 && request.headers["user-agent"].startsWith("curl")`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if !f.Match(httpErr) || f.Match(httpOK) {
					t.Error("wrong result")
					return
				}
			}
		})
	}
	wg.Wait()
}
