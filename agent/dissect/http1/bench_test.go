package http1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// recorded is a keep-alive conversation as capture delivers it: each
// message in one delivery.
type recorded struct {
	segs      []fuzzOp // client or server bytes, in order
	client    []byte   // all client bytes
	server    []byte   // all server bytes
	exchanges int
}

const browserHeaders = "Host: shop.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Sec-Fetch-Mode: cors\r\n" +
	"Sec-Fetch-Dest: empty\r\n" +
	"Referer: https://shop.example.com/cart\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-GB,en;q=0.9,de;q=0.8\r\n" +
	"Cookie: session=7f9c2ba4e88f827d616045507605853e; _ga=GA1.1.1234567890.1700000000; theme=dark\r\n"

const curlHeaders = "Host: orders.shop.svc.cluster.local:8080\r\n" +
	"User-Agent: curl/8.5.0\r\n" +
	"Accept: */*\r\n"

func jsonBody(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%d","price":%d.%02d,"tags":["a","b"]}`, rng.IntN(100000), i, rng.IntN(500), rng.IntN(100))
	}
	b.WriteString(`],"total":42}`)
	return b.String()
}

func responseHead(status string, extra string) string {
	return "HTTP/1.1 " + status + "\r\n" +
		"Date: Tue, 24 Nov 2026 17:00:00 GMT\r\n" +
		"Server: envoy\r\n" +
		"Content-Type: application/json; charset=utf-8\r\n" +
		"Cache-Control: no-store\r\n" +
		"Vary: Accept-Encoding\r\n" +
		"X-Request-Id: 3f1c9a2e-8d4b-4c1e-9a7f-2b6d5e8c0a13\r\n" +
		"x-envoy-upstream-service-time: 12\r\n" + extra
}

// record builds n varied exchanges: browser and curl GETs, JSON POSTs
// with bodies of 0..4 KiB, Content-Length and chunked responses, 204 and
// 304.
func record(n int) *recorded {
	rng := rand.New(rand.NewPCG(1, 2))
	r := &recorded{exchanges: n}
	add := func(client bool, s string) {
		r.segs = append(r.segs, fuzzOp{client: client, data: []byte(s)})
		if client {
			r.client = append(r.client, s...)
		} else {
			r.server = append(r.server, s...)
		}
	}
	for i := range n {
		var req, resp string
		switch k := rng.IntN(10); {
		case k < 4: // browser GET, JSON answer by length
			req = fmt.Sprintf("GET /api/products?page=%d&sort=price HTTP/1.1\r\n%s\r\n", i, browserHeaders)
			body := jsonBody(rng, rng.IntN(4096))
			resp = responseHead("200 OK", fmt.Sprintf("Content-Length: %d\r\nETag: \"%x\"\r\n\r\n", len(body), i)) + body
		case k < 6: // POST with a JSON body
			reqBody := jsonBody(rng, rng.IntN(4096))
			req = fmt.Sprintf("POST /api/orders HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\nOrigin: https://shop.example.com\r\n\r\n%s", browserHeaders, len(reqBody), reqBody)
			body := fmt.Sprintf(`{"id":%d,"status":"created"}`, i)
			resp = responseHead("201 Created", fmt.Sprintf("Location: /api/orders/%d\r\nContent-Length: %d\r\n\r\n", i, len(body))) + body
		case k < 8: // curl GET, chunked answer
			req = fmt.Sprintf("GET /v1/orders/%d/items HTTP/1.1\r\n%s\r\n", i, curlHeaders)
			body := jsonBody(rng, rng.IntN(4096))
			var cb strings.Builder
			for len(body) > 0 {
				m := min(len(body), 1+rng.IntN(1500))
				fmt.Fprintf(&cb, "%x\r\n%s\r\n", m, body[:m])
				body = body[m:]
			}
			cb.WriteString("0\r\n\r\n")
			resp = responseHead("200 OK", "Transfer-Encoding: chunked\r\n\r\n") + cb.String()
		case k < 9: // conditional GET
			req = fmt.Sprintf("GET /static/app.%d.js HTTP/1.1\r\n%sIf-None-Match: \"%x\"\r\n\r\n", i, browserHeaders, i)
			resp = "HTTP/1.1 304 Not Modified\r\nDate: Tue, 24 Nov 2026 17:00:00 GMT\r\nETag: \"" + fmt.Sprintf("%x", i) + "\"\r\nCache-Control: max-age=3600\r\n\r\n"
		default: // DELETE, no content
			req = fmt.Sprintf("DELETE /api/cart/items/%d HTTP/1.1\r\n%s\r\n", i, curlHeaders)
			resp = "HTTP/1.1 204 No Content\r\nDate: Tue, 24 Nov 2026 17:00:00 GMT\r\nServer: envoy\r\n\r\n"
		}
		add(true, req)
		add(false, resp)
	}
	return r
}

func TestRecordedStream(t *testing.T) {
	r := record(200)
	var got []*entry.Entry
	h := New(Config{}, &tcp.ConnInfo{Role: tcp.RoleClient}, func(e *entry.Entry) { got = append(got, e) }, nil)
	now := time.Unix(0, 0)
	for _, s := range r.segs {
		now = now.Add(time.Millisecond)
		h.Data(dirOf(s.client), s.data, now)
	}
	h.End(tcp.EndFIN, now)
	// net/http reads the same stream: the two must agree.
	br := bufio.NewReader(bytes.NewReader(r.client))
	bs := bufio.NewReader(bytes.NewReader(r.server))
	if len(got) != r.exchanges {
		t.Fatalf("got %d entries, want %d", len(got), r.exchanges)
	}
	for i, e := range got {
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatal(err)
		}
		reqBody, _ := io.ReadAll(req.Body)
		resp, err := http.ReadResponse(bs, req)
		if err != nil {
			t.Fatal(err)
		}
		respBody, _ := io.ReadAll(resp.Body)
		if e.Method != req.Method || e.Path != req.RequestURI || int(e.Status) != resp.StatusCode ||
			string(e.Request.Body) != string(reqBody) || string(e.Response.Body) != string(respBody) ||
			e.Incomplete || len(e.Request.Headers) != countHeaders(req.Header)+boolInt(req.Host != "") ||
			e.Request.Header("user-agent") != req.UserAgent() {
			t.Fatalf("entry %d: %s, net/http reads %s %s -> %d", i, summary(e), req.Method, req.RequestURI, resp.StatusCode)
		}
	}
}

func countHeaders(h http.Header) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func dirOf(client bool) tcp.Dir {
	if client {
		return tcp.Egress
	}
	return tcp.Ingress
}

// BenchmarkParse compares the dissector with net/http reading the same
// recorded keep-alive stream.
func BenchmarkParse(b *testing.B) {
	r := record(200)
	size := int64(len(r.client) + len(r.server))
	b.Run("podwire", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		info := &tcp.ConnInfo{Role: tcp.RoleClient}
		stats := new(Stats)
		n := 0
		emit := func(*entry.Entry) { n++ }
		now := time.Unix(0, 0)
		for b.Loop() {
			h := New(Config{}, info, emit, stats)
			for _, s := range r.segs {
				now = now.Add(time.Microsecond)
				h.Data(dirOf(s.client), s.data, now)
			}
			h.End(tcp.EndFIN, now)
		}
		if n != r.exchanges*b.N {
			b.Fatalf("%d entries, want %d", n, r.exchanges*b.N)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("nethttp", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			br := bufio.NewReader(bytes.NewReader(r.client))
			bs := bufio.NewReader(bytes.NewReader(r.server))
			for range r.exchanges {
				req, err := http.ReadRequest(br)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, req.Body)
				resp, err := http.ReadResponse(bs, req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n++
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
	})
}
