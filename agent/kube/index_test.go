package kube

import (
	"net/netip"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podwire/podwire/agent/entry"
)

func pod(uid, ns, name, ip, node string, owner *metav1.OwnerReference, hostNet bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Namespace: ns, Name: name},
		Spec:   corev1.PodSpec{NodeName: node, HostNetwork: hostNet},
		Status: corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func ctl(kind, name, uid string) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{Kind: kind, Name: name, UID: types.UID(uid), Controller: &yes}
}

func TestIndex(t *testing.T) {
	x := NewIndex()
	x.SetPod(pod("u-web", "shop", "web-7d9c-abcde", "198.18.1.5", "node-a", ctl("ReplicaSet", "web-7d9c", "u-rs"), false))
	x.SetPod(pod("u-db", "shop", "db-0", "198.18.1.6", "node-b", ctl("StatefulSet", "db", "u-sts"), false))
	x.SetPod(pod("u-job", "ops", "backup-28-xyz", "198.18.1.7", "node-a", ctl("Job", "backup-28", "u-j"), false))
	x.SetPod(pod("u-bare", "ops", "debug", "198.18.1.8", "node-a", nil, false))
	x.SetPod(pod("u-host", "kube-system", "proxy-x", "198.18.0.10", "node-a", ctl("DaemonSet", "proxy", "u-ds"), true))
	x.SetNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.10"}, {Type: corev1.NodeHostName, Address: "node-a"}}}})
	x.SetService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: "198.19.0.10", ClusterIPs: []string{"198.19.0.10"}}})

	// The ReplicaSet's and Job's controllers arrive after the pods.
	x.SetReplicaSet(&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{UID: "u-rs", Name: "web-7d9c", OwnerReferences: []metav1.OwnerReference{*ctl("Deployment", "web", "u-dep")}}})
	x.SetJob(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{UID: "u-j", Name: "backup-28", OwnerReferences: []metav1.OwnerReference{*ctl("CronJob", "backup", "u-cj")}}})
	x.SetEndpointSlice(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.1.5"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", UID: "u-web"}}}})

	at := func(ip string) *entry.Identity { return x.At(netip.MustParseAddr(ip)) }
	cases := []struct {
		name string
		got  *entry.Identity
		want entry.Identity
	}{
		{"Deployment pod", at("198.18.1.5"), entry.Identity{Pod: "web-7d9c-abcde", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment", Service: "web", Node: "node-a"}},
		{"same pod by UID", x.Pod("u-web"), entry.Identity{Pod: "web-7d9c-abcde", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment", Service: "web", Node: "node-a"}},
		{"StatefulSet pod", at("198.18.1.6"), entry.Identity{Pod: "db-0", Namespace: "shop", Workload: "db", WorkloadKind: "StatefulSet", Node: "node-b"}},
		{"CronJob pod", at("198.18.1.7"), entry.Identity{Pod: "backup-28-xyz", Namespace: "ops", Workload: "backup", WorkloadKind: "CronJob", Node: "node-a"}},
		{"bare pod", at("198.18.1.8"), entry.Identity{Pod: "debug", Namespace: "ops", Workload: "debug", WorkloadKind: "Pod", Node: "node-a"}},
		{"hostNetwork pod answers as its node", at("198.18.0.10"), entry.Identity{Node: "node-a"}},
		{"ClusterIP", at("198.19.0.10"), entry.Identity{Service: "web", Namespace: "shop"}},
		{"IPv4-mapped address", at("::ffff:198.18.1.6"), entry.Identity{Pod: "db-0", Namespace: "shop", Workload: "db", WorkloadKind: "StatefulSet", Node: "node-b"}},
	}
	for _, tc := range cases {
		if tc.got == nil || *tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
	if id := at("203.0.113.9"); id != nil {
		t.Errorf("address outside the cluster named %+v", id)
	}

	// An identity handed out never changes; a pod that goes and another
	// that takes its IP give new names to new lookups only.
	old := at("198.18.1.6")
	x.DeletePod("u-db")
	if id := at("198.18.1.6"); id != nil {
		t.Errorf("deleted pod's IP still names %+v", id)
	}
	x.SetPod(pod("u-db2", "shop", "cache-1", "198.18.1.6", "node-b", ctl("StatefulSet", "cache", "u-sts2"), false))
	if id := at("198.18.1.6"); id == nil || id.Pod != "cache-1" {
		t.Errorf("reused IP: %+v, want cache-1", id)
	}
	if old.Pod != "db-0" {
		t.Errorf("an identity handed out changed: %+v", old)
	}
	// The old pod's late delete does not unmap the new holder.
	x.SetPod(pod("u-web", "shop", "web-7d9c-abcde", "198.18.1.50", "node-a", ctl("ReplicaSet", "web-7d9c", "u-rs"), false))
	if id := at("198.18.1.5"); id != nil {
		t.Errorf("a pod's old IP still names it after it moved: %+v", id)
	}
	// A service change renames its pods for new lookups.
	before := at("198.18.1.50")
	x.DeleteEndpointSlice("shop", "web-abc")
	if after := at("198.18.1.50"); after.Service != "" || before.Service != "web" {
		t.Errorf("service after the slice went: %q (before %q)", after.Service, before.Service)
	}
	if st := x.Stats(); st.Pods != 5 || st.Services != 1 || st.Owners != 2 {
		t.Errorf("stats %+v", st)
	}
}
