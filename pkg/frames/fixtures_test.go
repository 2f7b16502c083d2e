package frames

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/stats"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// t0 is the fixed time every fixture is built around.
var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

var testLinks = Links{DatasourceUID: "podwire-uid", DatasourceName: "Podwire"}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func pod(ns, workload, podName, ip string, port uint32) *podwirev1.Endpoint {
	return &podwirev1.Endpoint{Ip: ip, Port: port, Pod: podName, Namespace: ns, Workload: workload,
		WorkloadKind: "Deployment", Service: workload, Node: "worker-1"}
}

// at returns an entry with only an id and a time, offset from t0.
func at(id string, d time.Duration) *podwirev1.Entry {
	return &podwirev1.Entry{Id: id, Time: ts(t0.Add(d))}
}

// msg is a message with headers in order, a text body and its timing.
func msg(start, end time.Duration, body string, headers ...string) *podwirev1.Message {
	m := &podwirev1.Message{Headers: map[string]string{}, Body: body, BodyBytes: int64(len(body)),
		Start: ts(t0.Add(start)), End: ts(t0.Add(end))}
	for i := 0; i+1 < len(headers); i += 2 {
		m.HeaderList = append(m.HeaderList, &podwirev1.Header{Name: headers[i], Value: headers[i+1]})
		if prev, ok := m.Headers[headers[i]]; ok {
			m.Headers[headers[i]] = prev + ", " + headers[i+1]
		} else {
			m.Headers[headers[i]] = headers[i+1]
		}
	}
	return m
}

func withBinaryBody(m *podwirev1.Message, b64 string) *podwirev1.Message {
	m.Body, m.BodyEncoding, m.BodyBytes = b64, "base64", 11
	return m
}

func withTrailers(m *podwirev1.Message, kv ...string) *podwirev1.Message {
	m.Trailers = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Trailers[kv[i]] = kv[i+1]
	}
	return m
}

var (
	web   = pod("shop", "web", "web-7d9f8-abcde", "10.0.1.5", 43512)
	cart  = pod("shop", "cart", "cart-5c6b7-xk2p9", "10.0.2.8", 8080)
	redis = pod("data", "redis", "redis-0", "10.0.3.2", 6379)
	dnsSv = pod("kube-system", "coredns", "coredns-6f7b-q8l2", "10.0.0.10", 53)
)

// sampleEntries are realistic entries of every protocol, newest first.
func sampleEntries() []*podwirev1.Entry {
	httpOK := &podwirev1.Entry{
		Id: "worker-1-1005", Time: ts(t0.Add(5 * time.Second)), Protocol: "http", HttpVersion: "1.1",
		Src: web, Dst: cart, Method: "GET", Path: "/api/cart?user=42", Status: 200, LatencyMs: 12.5,
		Request: msg(5*time.Second, 5*time.Second+100*time.Microsecond, "",
			"host", "cart.shop.svc", "user-agent", "web/1.4", "accept", "application/json"),
		Response: msg(5*time.Second+12*time.Millisecond, 5*time.Second+12500*time.Microsecond,
			"{\"items\":[{\"sku\":\"A1\",\"qty\":2}],\n\"total\":19.9}\n",
			"content-type", "application/json", "set-cookie", "a=1", "set-cookie", "b=2"),
		Node: "worker-1", ConnId: 77,
	}
	http503 := &podwirev1.Entry{
		Id: "worker-1-1004", Time: ts(t0.Add(4 * time.Second)), Protocol: "http", HttpVersion: "2",
		Src: web, Dst: cart, Method: "POST", Path: "/api/cart", Status: 503, Failed: true, LatencyMs: 120,
		Request:  msg(4*time.Second, 4*time.Second+time.Millisecond, `{"sku":"A1"}`, "content-type", "application/json"),
		Response: msg(4*time.Second+119*time.Millisecond, 4*time.Second+120*time.Millisecond, "upstream unavailable", "content-type", "text/plain"),
		Node:     "worker-1",
	}
	grpc := &podwirev1.Entry{
		Id: "worker-2-17", Time: ts(t0.Add(3 * time.Second)), Protocol: "grpc", HttpVersion: "2",
		Src: cart, Dst: pod("shop", "pricing", "pricing-0", "10.0.2.9", 9090), Method: "/shop.Pricing/Quote",
		Path: "/shop.Pricing/Quote", Status: 14, Failed: true, LatencyMs: 3.25,
		Request: withBinaryBody(msg(3*time.Second, 3*time.Second+200*time.Microsecond, "",
			":method", "POST", ":path", "/shop.Pricing/Quote", ":authority", "pricing.shop.svc:9090",
			"content-type", "application/grpc", "te", "trailers"), "AAAAAAUKA0ExEgA="),
		Response: withTrailers(msg(3*time.Second+3*time.Millisecond, 3*time.Second+3250*time.Microsecond, "",
			":status", "200", "content-type", "application/grpc"), "grpc-status", "14", "grpc-message", "no backends"),
		Node: "worker-2",
	}
	redisGet := &podwirev1.Entry{
		Id: "worker-2-16", Time: ts(t0.Add(2 * time.Second)), Protocol: "redis", Src: cart, Dst: redis,
		Method: "GET", Path: "cart:42", Status: 0, LatencyMs: 0.42,
		Request: &podwirev1.Message{BodyBytes: 24}, Response: &podwirev1.Message{Body: "$-1", BodyBytes: 5},
		Node: "worker-2", Incomplete: true, Notes: []string{"capture gap of 120 bytes"},
	}
	dnsQ := &podwirev1.Entry{
		Id: "worker-1-1001", Time: ts(t0.Add(time.Second)), Protocol: "dns", Src: web, Dst: dnsSv,
		Method: "A", Path: "cart.shop.svc.cluster.local", Status: 3, Failed: true, LatencyMs: 1.7,
		Request: &podwirev1.Message{BodyBytes: 45}, Response: &podwirev1.Message{BodyBytes: 120},
		Node: "worker-1",
	}
	tcp := &podwirev1.Entry{
		Id: "worker-1-1000", Time: ts(t0), Protocol: "tcp",
		Src:     &podwirev1.Endpoint{Ip: "10.0.1.5", Port: 50122, Process: "curl", Node: "worker-1"},
		Dst:     &podwirev1.Endpoint{Ip: "203.0.113.9", Port: 443},
		Request: &podwirev1.Message{BodyBytes: 517}, Response: &podwirev1.Message{BodyBytes: 4096},
		LatencyMs: 1500, Node: "worker-1",
	}
	return []*podwirev1.Entry{httpOK, http503, grpc, redisGet, dnsQ, tcp}
}

// hist returns a wire histogram of the latencies (ms).
func hist(ms ...float64) *podwirev1.Histogram {
	var h stats.Histogram
	for _, v := range ms {
		h.Add(v)
	}
	return h.Proto()
}

// spread returns n latencies from lo to hi ms.
func spread(n int, lo, hi float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*float64(i)/float64(max(n-1, 1))
	}
	return out
}

// sampleMaps are two agents' views of one shop: web -> cart -> redis, and
// an external client calling web.
func sampleMaps() []*podwirev1.ServiceMapResponse {
	webN := &podwirev1.MapNode{Id: "shop/web", Name: "web", Namespace: "shop", Kind: "Deployment", Sent: 100}
	return []*podwirev1.ServiceMapResponse{
		{
			Nodes: []*podwirev1.MapNode{
				webN,
				{Id: "shop/cart", Name: "cart", Namespace: "shop", Kind: "Deployment", Requests: 100, Failed: 5,
					Latency: hist(spread(100, 2, 40)...), Sent: 60},
				{Id: "198.51.100.7", Name: "198.51.100.7", Kind: "external", Sent: 30},
			},
			Edges: []*podwirev1.MapEdge{
				{Source: "shop/web", Target: "shop/cart", Requests: 100, Failed: 5, Latency: hist(spread(100, 2, 40)...),
					Protocols: map[string]uint64{"http": 100}, Services: []string{"cart"}},
				{Source: "198.51.100.7", Target: "shop/web", Requests: 30, Latency: hist(spread(30, 5, 9)...),
					Protocols: map[string]uint64{"http": 30}},
			},
			Matched: 230, Scanned: 1000, Oldest: ts(t0.Add(-time.Hour)),
		},
		{
			Nodes: []*podwirev1.MapNode{
				{Id: "shop/web", Name: "web", Namespace: "shop", Kind: "Deployment", Requests: 30,
					Latency: hist(spread(30, 5, 9)...)},
				{Id: "shop/cart", Name: "cart", Namespace: "shop", Kind: "Deployment", Requests: 50, Failed: 20,
					Latency: hist(spread(50, 100, 300)...)},
				{Id: "data/redis", Name: "redis", Namespace: "data", Kind: "StatefulSet", Requests: 60,
					Latency: hist(spread(60, 0.2, 0.9)...)},
				{Id: "process:curl", Name: "curl", Kind: "process", Sent: 50},
			},
			Edges: []*podwirev1.MapEdge{
				{Source: "process:curl", Target: "shop/cart", Requests: 50, Failed: 20, Latency: hist(spread(50, 100, 300)...),
					Protocols: map[string]uint64{"http": 45, "grpc": 5}, Services: []string{"cart-grpc", "cart"}},
				{Source: "shop/cart", Target: "data/redis", Requests: 60, Latency: hist(spread(60, 0.2, 0.9)...),
					Protocols: map[string]uint64{"redis": 60}, Services: []string{"redis"}},
			},
			Matched: 110, Scanned: 400, Oldest: ts(t0.Add(-30 * time.Minute)),
		},
	}
}

// sampleMetrics are two agents' series over [t0, t0+10m) with 1 m steps.
func sampleMetrics() []*podwirev1.MetricsResponse {
	pt := func(m int, req, failed uint64, lat ...float64) *podwirev1.MetricsPoint {
		return &podwirev1.MetricsPoint{Time: ts(t0.Add(time.Duration(m) * time.Minute)), Requests: req, Failed: failed, Latency: hist(lat...)}
	}
	return []*podwirev1.MetricsResponse{
		{Series: []*podwirev1.MetricsSeries{
			{Group: "shop/cart", Name: "cart", Namespace: "shop", Points: []*podwirev1.MetricsPoint{
				pt(1, 60, 0, spread(60, 5, 20)...), pt(2, 120, 6, spread(120, 5, 50)...)}},
			{Group: "198.51.100.7", Name: "198.51.100.7", Points: []*podwirev1.MetricsPoint{pt(0, 6, 0, spread(6, 1, 2)...)}},
		}},
		{Series: []*podwirev1.MetricsSeries{
			{Group: "shop/cart", Name: "cart", Namespace: "shop", Points: []*podwirev1.MetricsPoint{
				pt(2, 60, 54, spread(60, 200, 400)...), pt(7, 30, 0, spread(30, 10, 11)...)}},
		}},
	}
}
