package kube

import (
	"net/netip"
	"slices"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podwire/podwire/agent/entry"
)

// Index answers "who is at this address" and "which pod is this UID" from
// the objects the informers keep it told of. Identities it hands out are
// never changed: a change to a pod, its owners or its services makes new
// ones, so entries keep the names valid when they were captured.
type Index struct {
	mu sync.RWMutex
	// gen is bumped by every change that can rename a pod (owners,
	// services); a pod's cached identity is rebuilt when it is older.
	gen         uint64
	pods        map[types.UID]*podRec
	byIP        map[netip.Addr]*podRec // pods on the pod network; the newest holder of an IP wins
	services    map[string]*svcRec     // namespace/name
	byClusterIP map[netip.Addr]*svcRec
	slices      map[string]sliceRec            // namespace/name of the slice
	podSvcs     map[types.UID]map[string]int   // services whose slices list the pod, and by how many slices
	owners      map[types.UID]ownerRec         // ReplicaSets and Jobs: what owns them
	nodes       map[netip.Addr]*entry.Identity // node addresses (hostNetwork pods answer there)
	changes     uint64                         // objects set or deleted, for Stats
}

type podRec struct {
	uid          types.UID
	name, ns     string
	node         string
	hostNetwork  bool
	ips          []netip.Addr
	ownerKind    string
	ownerName    string
	ownerUID     types.UID
	containerIDs []string // runtime ids, without the "containerd://" scheme
	id           *entry.Identity
	idGen        uint64
}

type svcRec struct {
	name, ns   string
	clusterIPs []netip.Addr
	id         *entry.Identity
}

type sliceRec struct {
	service string // namespace/name
	pods    []types.UID
}

type ownerRec struct {
	kind, name string // the controller of the ReplicaSet or Job (Deployment, CronJob), "" for none
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		pods:        map[types.UID]*podRec{},
		byIP:        map[netip.Addr]*podRec{},
		services:    map[string]*svcRec{},
		byClusterIP: map[netip.Addr]*svcRec{},
		slices:      map[string]sliceRec{},
		podSvcs:     map[types.UID]map[string]int{},
		owners:      map[types.UID]ownerRec{},
		nodes:       map[netip.Addr]*entry.Identity{},
	}
}

// SetPod adds or updates a pod.
func (x *Index) SetPod(p *corev1.Pod) {
	r := &podRec{uid: p.UID, name: p.Name, ns: p.Namespace, node: p.Spec.NodeName, hostNetwork: p.Spec.HostNetwork}
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			r.ips = append(r.ips, a.Unmap())
		}
	}
	if len(r.ips) == 0 && p.Status.PodIP != "" {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			r.ips = append(r.ips, a.Unmap())
		}
	}
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			r.ownerKind, r.ownerName, r.ownerUID = o.Kind, o.Name, o.UID
		}
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if _, id, ok := strings.Cut(cs.ContainerID, "://"); ok {
			r.containerIDs = append(r.containerIDs, id)
		}
	}
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	if old := x.pods[p.UID]; old != nil {
		x.unmapIPs(old)
	}
	x.pods[p.UID] = r
	if !r.hostNetwork {
		for _, a := range r.ips {
			x.byIP[a] = r
		}
	}
}

// DeletePod forgets a pod; its IP keeps answering for the pod only until
// another pod takes it.
func (x *Index) DeletePod(uid types.UID) {
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	if old := x.pods[uid]; old != nil {
		x.unmapIPs(old)
		delete(x.pods, uid)
	}
}

func (x *Index) unmapIPs(r *podRec) {
	for _, a := range r.ips {
		if x.byIP[a] == r {
			delete(x.byIP, a)
		}
	}
}

// SetService adds or updates a service.
func (x *Index) SetService(s *corev1.Service) {
	key := s.Namespace + "/" + s.Name
	r := &svcRec{name: s.Name, ns: s.Namespace}
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			r.clusterIPs = append(r.clusterIPs, a.Unmap())
		}
	}
	r.id = &entry.Identity{Service: s.Name, Namespace: s.Namespace}
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	x.dropService(key)
	x.services[key] = r
	for _, a := range r.clusterIPs {
		x.byClusterIP[a] = r
	}
}

// DeleteService forgets a service.
func (x *Index) DeleteService(namespace, name string) {
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	x.dropService(namespace + "/" + name)
}

func (x *Index) dropService(key string) {
	if old := x.services[key]; old != nil {
		for _, a := range old.clusterIPs {
			if x.byClusterIP[a] == old {
				delete(x.byClusterIP, a)
			}
		}
		delete(x.services, key)
	}
}

// SetEndpointSlice records which pods back a service.
func (x *Index) SetEndpointSlice(s *discoveryv1.EndpointSlice) {
	svc := s.Labels[discoveryv1.LabelServiceName]
	rec := sliceRec{}
	if svc != "" {
		rec.service = s.Namespace + "/" + svc
	}
	for _, ep := range s.Endpoints {
		if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.TargetRef.UID != "" {
			rec.pods = append(rec.pods, ep.TargetRef.UID)
		}
	}
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	key := s.Namespace + "/" + s.Name
	x.countSlice(x.slices[key], -1)
	x.slices[key] = rec
	x.countSlice(rec, +1)
}

// DeleteEndpointSlice forgets a slice.
func (x *Index) DeleteEndpointSlice(namespace, name string) {
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	key := namespace + "/" + name
	x.countSlice(x.slices[key], -1)
	delete(x.slices, key)
}

// countSlice adds (d = +1) or takes away (d = -1) a slice's pods from
// their services.
func (x *Index) countSlice(s sliceRec, d int) {
	if s.service == "" || len(s.pods) == 0 {
		return
	}
	name := s.service[strings.IndexByte(s.service, '/')+1:]
	for _, uid := range s.pods {
		m := x.podSvcs[uid]
		if m == nil {
			m = map[string]int{}
			x.podSvcs[uid] = m
		}
		if m[name] += d; m[name] <= 0 {
			delete(m, name)
			if len(m) == 0 {
				delete(x.podSvcs, uid)
			}
		}
	}
	x.gen++
}

// SetReplicaSet records the ReplicaSet's controller (a Deployment).
func (x *Index) SetReplicaSet(rs *appsv1.ReplicaSet) {
	x.setOwner(rs.UID, controllerOf(rs.OwnerReferences))
}

// SetJob records the Job's controller (a CronJob).
func (x *Index) SetJob(j *batchv1.Job) { x.setOwner(j.UID, controllerOf(j.OwnerReferences)) }

// DeleteOwned forgets a ReplicaSet or Job.
func (x *Index) DeleteOwned(uid types.UID) {
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	delete(x.owners, uid)
	x.gen++
}

func (x *Index) setOwner(uid types.UID, o ownerRec) {
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	if old, ok := x.owners[uid]; ok && old == o {
		return
	}
	x.owners[uid] = o
	x.gen++
}

// SetNode records a node's addresses.
func (x *Index) SetNode(n *corev1.Node) {
	id := &entry.Identity{Node: n.Name}
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	x.dropNode(n.Name)
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			x.nodes[ip.Unmap()] = id
		}
	}
}

// DeleteNode forgets a node.
func (x *Index) DeleteNode(name string) {
	x.mu.Lock()
	x.changes++
	defer x.mu.Unlock()
	x.dropNode(name)
}

func (x *Index) dropNode(name string) {
	for a, id := range x.nodes {
		if id.Node == name {
			delete(x.nodes, a)
		}
	}
}

func controllerOf(refs []metav1.OwnerReference) ownerRec {
	for _, o := range refs {
		if o.Controller != nil && *o.Controller {
			return ownerRec{kind: o.Kind, name: o.Name}
		}
	}
	return ownerRec{}
}

// Pod returns the identity of the pod with the given UID, or nil.
func (x *Index) Pod(uid types.UID) *entry.Identity {
	x.mu.RLock()
	r := x.pods[uid]
	var id *entry.Identity
	if r != nil && r.idGen == x.gen && r.id != nil {
		id = r.id
	}
	x.mu.RUnlock()
	if id != nil || r == nil {
		return id
	}
	return x.identity(r)
}

// At returns who is at an address: a pod on the pod network, a service's
// cluster IP, or a node (hostNetwork pods answer at their node's address);
// nil for an address outside the cluster.
func (x *Index) At(a netip.Addr) *entry.Identity {
	a = a.Unmap()
	x.mu.RLock()
	r := x.byIP[a]
	var id *entry.Identity
	switch {
	case r != nil:
		if r.idGen == x.gen && r.id != nil {
			id = r.id
		}
	case x.byClusterIP[a] != nil:
		id = x.byClusterIP[a].id
	default:
		id = x.nodes[a]
	}
	x.mu.RUnlock()
	if id != nil || r == nil {
		return id
	}
	return x.identity(r)
}

// identity builds (and caches) a pod's identity at the current generation.
func (x *Index) identity(r *podRec) *entry.Identity {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r.id != nil && r.idGen == x.gen {
		return r.id
	}
	id := &entry.Identity{Pod: r.name, Namespace: r.ns, Node: r.node}
	id.Workload, id.WorkloadKind = r.ownerName, r.ownerKind
	switch r.ownerKind {
	case "ReplicaSet", "Job":
		if o, ok := x.owners[r.ownerUID]; ok && o.name != "" {
			id.Workload, id.WorkloadKind = o.name, o.kind
		}
	case "":
		id.Workload, id.WorkloadKind = r.name, "Pod"
	}
	if m := x.podSvcs[r.uid]; len(m) > 0 {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		slices.Sort(names)
		id.Service = strings.Join(names, ",")
	}
	r.id, r.idGen = id, x.gen
	return id
}

// Stats is what the index holds.
type Stats struct {
	Pods, Services, EndpointSlices, Owners, NodeAddresses int
	// Changes counts objects set or deleted since the start.
	Changes uint64
}

// Stats counts what the index holds.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Stats{Pods: len(x.pods), Services: len(x.services), EndpointSlices: len(x.slices), Owners: len(x.owners), NodeAddresses: len(x.nodes), Changes: x.changes}
}
