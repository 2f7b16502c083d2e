package kube

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// bigIndex holds 10,000 pods (in 2,000 Deployments' ReplicaSets) behind
// 2,000 services, as a big cluster would.
func bigIndex(b *testing.B) (*Index, []netip.Addr) {
	x := NewIndex()
	var ips []netip.Addr
	for i := range 10000 {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		ips = append(ips, ip)
		rs := fmt.Sprintf("rs-%d", i%2000)
		x.SetPod(pod(fmt.Sprintf("uid-%d", i), fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("app-%d-%05d", i%2000, i), ip.String(),
			fmt.Sprintf("node-%d", i%100), ctl("ReplicaSet", rs, "u-"+rs), false))
	}
	for i := range 2000 {
		ns := fmt.Sprintf("ns-%d", i%50)
		x.SetService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{ClusterIP: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}).String()}})
		var eps []discoveryv1.Endpoint
		for k := i; k < 10000; k += 2000 {
			eps = append(eps, discoveryv1.Endpoint{Addresses: []string{ips[k].String()}, TargetRef: &corev1.ObjectReference{Kind: "Pod", UID: types.UID(fmt.Sprintf("uid-%d", k))}})
		}
		x.SetEndpointSlice(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d-x", i),
			Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%d", i)}}, Endpoints: eps})
	}
	return x, ips
}

// BenchmarkIndexAt is the identity lookup for a connection's remote end,
// in a 10,000-pod index, once every pod's identity has been built.
func BenchmarkIndexAt(b *testing.B) {
	x, ips := bigIndex(b)
	for _, ip := range ips {
		x.At(ip)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if x.At(ips[i%len(ips)]) == nil {
			b.Fatal("pod not found")
		}
		i += 7
	}
}

// BenchmarkIndexMemory reports the heap the index of 10,000 pods and 2,000
// services takes (the informers' trimmed caches come on top).
func BenchmarkIndexMemory(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		x, ips := bigIndex(b)
		for _, ip := range ips {
			x.At(ip)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB")
		runtime.KeepAlive(x)
	}
}
