package kube

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podwire/podwire/agent/cgroup"
	"github.com/podwire/podwire/agent/entry"
)

// Config tells where the API server is.
type Config struct {
	// Kubeconfig is a kubeconfig file; "" means in-cluster config when
	// running in a pod, and no Kubernetes identity otherwise.
	Kubeconfig string
	// Node is this agent's node name: local processes outside pods are
	// named as on it.
	Node string
	// Resync is the informers' resync period; 0 means none (watches keep
	// the caches current).
	Resync time.Duration
}

// RESTConfig returns the API server's client config for cfg, or nil with
// no error when there is no Kubernetes to talk to (no kubeconfig given and
// not in a pod).
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return c, nil
}

// Watcher keeps an Index current from the API server with informers
// (list once, then watch; client-go backs off while the server is away)
// and names connections' ends from it.
type Watcher struct {
	Index    *Index
	node     string
	factory  informers.SharedInformerFactory
	resolver *cgroup.Resolver
	synced   atomic.Bool
	cancel   context.CancelFunc
}

// Watch starts informers for pods, services, endpoint slices, replica
// sets, jobs and nodes, trimming each object to what identity needs.
// It returns at once; Synced tells when the first lists are in.
// resolver (may be nil) turns socket cgroups into paths.
func Watch(rc *rest.Config, cfg Config, resolver *cgroup.Resolver) (*Watcher, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	w := &Watcher{Index: NewIndex(), node: cfg.Node, resolver: resolver,
		factory: informers.NewSharedInformerFactoryWithOptions(cs, cfg.Resync, informers.WithTransform(trim))}
	x := w.Index
	add := func(inf cache.SharedIndexInformer, set func(any), del func(any)) {
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    set,
			UpdateFunc: func(_, o any) { set(o) },
			DeleteFunc: func(o any) {
				if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				del(o)
			},
		})
	}
	f := w.factory
	add(f.Core().V1().Pods().Informer(),
		func(o any) { x.SetPod(o.(*corev1.Pod)) },
		func(o any) { x.DeletePod(o.(*corev1.Pod).UID) })
	add(f.Core().V1().Services().Informer(),
		func(o any) { x.SetService(o.(*corev1.Service)) },
		func(o any) { s := o.(*corev1.Service); x.DeleteService(s.Namespace, s.Name) })
	add(f.Discovery().V1().EndpointSlices().Informer(),
		func(o any) { x.SetEndpointSlice(o.(*discoveryv1.EndpointSlice)) },
		func(o any) { s := o.(*discoveryv1.EndpointSlice); x.DeleteEndpointSlice(s.Namespace, s.Name) })
	add(f.Apps().V1().ReplicaSets().Informer(),
		func(o any) { x.SetReplicaSet(o.(*appsv1.ReplicaSet)) },
		func(o any) { x.DeleteOwned(o.(*appsv1.ReplicaSet).UID) })
	add(f.Batch().V1().Jobs().Informer(),
		func(o any) { x.SetJob(o.(*batchv1.Job)) },
		func(o any) { x.DeleteOwned(o.(*batchv1.Job).UID) })
	add(f.Core().V1().Nodes().Informer(),
		func(o any) { x.SetNode(o.(*corev1.Node)) },
		func(o any) { x.DeleteNode(o.(*corev1.Node).Name) })
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	f.Start(ctx.Done())
	go func() {
		if f.WaitForCacheSync(ctx.Done()); ctx.Err() == nil {
			w.synced.Store(true)
		}
	}()
	return w, nil
}

// Offline is a Watcher with no API server: local sockets are named by
// their cgroups (a process or service name), remote ends not at all.
func Offline(node string, resolver *cgroup.Resolver) *Watcher {
	return &Watcher{Index: NewIndex(), node: node, resolver: resolver}
}

// Synced tells whether every informer has had its first list.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Counters are the index's sizes and whether it is in sync.
func (w *Watcher) Counters() map[string]uint64 {
	st := w.Index.Stats()
	synced := uint64(0)
	if w.Synced() {
		synced = 1
	}
	return map[string]uint64{
		"kube_synced":         synced,
		"kube_pods":           uint64(st.Pods),
		"kube_services":       uint64(st.Services),
		"kube_endpointslices": uint64(st.EndpointSlices),
		"kube_owners":         uint64(st.Owners),
		"kube_changes":        st.Changes,
	}
}

// WaitSynced waits up to d for the first lists.
func (w *Watcher) WaitSynced(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !w.Synced() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Stop stops the informers.
func (w *Watcher) Stop() {
	if w.factory == nil {
		return
	}
	w.cancel()
	w.factory.Shutdown()
}

// Local names the socket's side from its cgroup: the pod it is in, or,
// outside pods, the cgroup's name on this node (a systemd service, say).
func (w *Watcher) Local(cgroupID uint64, addr netip.AddrPort) *entry.Identity {
	if w.resolver != nil && cgroupID != 0 {
		if p, err := w.resolver.Path(cgroupID); err == nil {
			if ref, ok := ParseCgroupPath(p); ok {
				if id := w.Index.Pod(types.UID(ref.PodUID)); id != nil {
					return id
				}
			} else if p != "/" {
				return &entry.Identity{Process: processName(p), Node: w.node}
			}
		}
	}
	// No cgroup to go by: the address may still be a pod's.
	return w.Index.At(addr.Addr())
}

// Remote names the peer by its address.
func (w *Watcher) Remote(addr netip.AddrPort) *entry.Identity { return w.Index.At(addr.Addr()) }

// processName is what a non-pod cgroup is called: its last element, with
// systemd's unit suffix taken off ("nginx" for .../nginx.service).
func processName(p string) string {
	base := path.Base(p)
	for _, suf := range []string{".service", ".scope", ".slice"} {
		if n, ok := strings.CutSuffix(base, suf); ok {
			return n
		}
	}
	return base
}

// trim keeps of each object what identity needs, so that the informers'
// caches stay small in big clusters.
func trim(o any) (any, error) {
	meta := func(m *metav1.ObjectMeta) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			OwnerReferences: m.OwnerReferences, Labels: trimLabels(m.Labels)}
	}
	switch v := o.(type) {
	case *corev1.Pod:
		p := &corev1.Pod{ObjectMeta: meta(&v.ObjectMeta),
			Spec:   corev1.PodSpec{NodeName: v.Spec.NodeName, HostNetwork: v.Spec.HostNetwork},
			Status: corev1.PodStatus{PodIP: v.Status.PodIP, PodIPs: v.Status.PodIPs, Phase: v.Status.Phase}}
		for _, cs := range v.Status.ContainerStatuses {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: cs.Name, ContainerID: cs.ContainerID})
		}
		for _, cs := range v.Status.InitContainerStatuses {
			p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, corev1.ContainerStatus{Name: cs.Name, ContainerID: cs.ContainerID})
		}
		return p, nil
	case *corev1.Service:
		return &corev1.Service{ObjectMeta: meta(&v.ObjectMeta),
			Spec: corev1.ServiceSpec{ClusterIP: v.Spec.ClusterIP, ClusterIPs: v.Spec.ClusterIPs}}, nil
	case *discoveryv1.EndpointSlice:
		s := &discoveryv1.EndpointSlice{ObjectMeta: meta(&v.ObjectMeta), AddressType: v.AddressType}
		for _, ep := range v.Endpoints {
			e := discoveryv1.Endpoint{Addresses: ep.Addresses}
			if ep.TargetRef != nil {
				e.TargetRef = &corev1.ObjectReference{Kind: ep.TargetRef.Kind, UID: ep.TargetRef.UID}
			}
			s.Endpoints = append(s.Endpoints, e)
		}
		return s, nil
	case *appsv1.ReplicaSet:
		return &appsv1.ReplicaSet{ObjectMeta: meta(&v.ObjectMeta)}, nil
	case *batchv1.Job:
		return &batchv1.Job{ObjectMeta: meta(&v.ObjectMeta)}, nil
	case *corev1.Node:
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: v.Name, UID: v.UID, ResourceVersion: v.ResourceVersion},
			Status: corev1.NodeStatus{Addresses: v.Status.Addresses}}, nil
	}
	return o, nil
}

// trimLabels keeps the one label identity reads (an EndpointSlice's
// service).
func trimLabels(l map[string]string) map[string]string {
	if s, ok := l[discoveryv1.LabelServiceName]; ok {
		return map[string]string{discoveryv1.LabelServiceName: s}
	}
	return nil
}
