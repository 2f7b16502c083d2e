package kube_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podwire/podwire/agent/kube"
	"github.com/podwire/podwire/internal/kubetest"
)

// BenchmarkInformers fills a real API server with 10,000 pods and 2,000
// services, then measures how long the agent's informers take to be in
// sync and the heap they and the index hold. Run it alone:
//
//	go test -run=^$ -bench=BenchmarkInformers -benchtime=1x ./agent/kube
func BenchmarkInformers(b *testing.B) {
	cl := kubetest.Start(b)
	cs := cl.Client
	ctx := context.Background()
	for i := range 20 {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i)}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ns := fmt.Sprintf("ns-%d", i%20)
				var err error
				if i < 2000 {
					_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)},
						Spec: corev1.ServiceSpec{Selector: map[string]string{"app": fmt.Sprintf("app-%d", i)}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
				}
				if err == nil {
					p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d-%05d", i%2000, i), Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%2000)},
						Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(make([]byte, 1024))}},
						Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i%100), Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1",
							Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}}}}}
					if p, err = cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err == nil {
						ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).String()
						p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
						_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	t0 := time.Now()
	for i := range 10000 {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.Logf("created 10,000 pods and 2,000 services in %s", time.Since(t0).Round(time.Second))

	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		w, err := kube.Watch(cl.Config, kube.Config{Node: "node-1"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !w.WaitSynced(5 * time.Minute) {
			b.Fatal("not in sync after 5 minutes")
		}
		sync := time.Since(start)
		for i := range 10000 {
			w.Index.At(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if st := w.Index.Stats(); st.Pods != 10000 || st.Services < 2000 {
			b.Fatalf("index holds %+v", st)
		}
		b.ReportMetric(sync.Seconds(), "s-to-sync")
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB-heap")
		w.Stop()
	}
}
