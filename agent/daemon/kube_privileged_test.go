package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	"github.com/podwire/podwire/internal/kubetest"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// simPod is a simulated pod: a Pod object in the API server, and a cgroup
// laid out as kubelet would for its UID, holding its processes.
type simPod struct {
	pod *corev1.Pod
	cg  *agenttest.Cgroup
}

// layout is how kubelet lays out a pod's container cgroup: its cgroup
// driver, the pod's QoS class and the container runtime.
type layout struct {
	systemd bool
	qos     string // "guaranteed", "burstable" or "besteffort"
	runtime string // "containerd", "crio" or "docker"
}

var (
	systemdBurstable   = layout{true, "burstable", "containerd"}
	cgroupfsBestEffort = layout{false, "besteffort", "containerd"}
	everyLayout        = []layout{{true, "guaranteed", "containerd"}, {true, "burstable", "crio"}, {true, "besteffort", "docker"}, {false, "guaranteed", "docker"}, {false, "burstable", "crio"}, {false, "besteffort", "containerd"}}
)

// makePod creates the Pod (owned by owner), gives it ip, and makes its
// container cgroup under root as kubelet would with layout l.
func makePod(t *testing.T, cs kubernetes.Interface, root *agenttest.Cgroup, ns, name, ip, node string, owner metav1.OwnerReference, l layout, labels map[string]string) simPod {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}}}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cid := fmt.Sprintf("%064x", []byte(name))[:64]
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: l.runtime + "://" + cid}}}
	if p, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	uid := string(p.UID)
	dir := func(parent, name string) string { // shared levels made once
		p := filepath.Join(parent, name)
		if err := os.Mkdir(p, 0o755); err == nil {
			t.Cleanup(func() { os.Remove(p) })
		} else if !os.IsExist(err) {
			t.Fatal(err)
		}
		return p
	}
	var leaf *agenttest.Cgroup
	if l.systemd {
		d := dir(root.Path, "kubepods.slice")
		podSlice := "kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
		if l.qos != "guaranteed" {
			d = dir(d, "kubepods-"+l.qos+".slice")
			podSlice = "kubepods-" + l.qos + "-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
		}
		d = dir(d, podSlice)
		prefix := map[string]string{"containerd": "cri-containerd-", "crio": "crio-", "docker": "docker-"}[l.runtime]
		leaf = agenttest.NewCgroup(t, d, prefix+cid+".scope")
	} else {
		d := dir(root.Path, "kubepods")
		if l.qos != "guaranteed" {
			d = dir(d, l.qos)
		}
		d = dir(d, "pod"+uid)
		prefix := map[string]string{"crio": "crio-"}[l.runtime]
		leaf = agenttest.NewCgroup(t, d, prefix+cid)
	}
	return simPod{pod: p, cg: leaf}
}

// waitUntil polls ok until it holds, failing the test with why() once
// deadline has passed.
// startShop starts a real API server with the namespace "shop".
func startShop(t *testing.T) (*kubetest.Cluster, string) {
	cl := kubetest.Start(t)
	ns := "shop"
	if _, err := cl.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cl, ns
}

// statefulSet is a controller reference to the StatefulSet name.
func statefulSet(name, uid string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: name, UID: types.UID(uid), Controller: &yes}
}

func waitUntil(t *testing.T, deadline time.Time, ok func() bool, why func() string) {
	t.Helper()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveHTTP runs the http-server peer at addr in the pod's cgroup and
// inside host h, until the test ends (or the caller kills it).
func serveHTTP(t *testing.T, p simPod, h *agenttest.Host, addr string) *exec.Cmd {
	t.Helper()
	srv := p.cg.PeerInHost(h, "http-server "+addr)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	return srv
}

// curlFrom fetches url from the pod's cgroup inside host h, retrying while
// the server starts.
func curlFrom(t *testing.T, p simPod, h *agenttest.Host, url string) {
	t.Helper()
	args := []string{"-sS", "--retry", "50", "--retry-connrefused", "--retry-delay", "0", "--retry-max-time", "20", "-o", "/dev/null", url}
	if o, err := p.cg.InHost(h, "curl", args...).CombinedOutput(); err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, o)
	}
}

// TestIdentityFromAPIServer: two simulated pods on two network namespaces,
// a Deployment's pod calling a StatefulSet's pod behind a Service, against
// a real kube-apiserver: the entries name both ends.
func TestIdentityFromAPIServer(t *testing.T) {
	agenttest.RequireRoot(t)
	cl, ns := startShop(t)
	cs := cl.Client
	ctx := context.Background()
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	dep, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/web"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f7",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: dep.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Selector: dep.Spec.Selector, Template: dep.Spec.Template}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srvHost, cliHost := agenttest.NewHostPair(t, 40)
	root := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	web := makePod(t, cs, root, ns, "web-5d8f7-x2x9q", cliHost.IP, "node-a",
		metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}, systemdBurstable, map[string]string{"app": "web"})
	cart := makePod(t, cs, root, ns, "cart-0", srvHost.IP, "node-a",
		statefulSet("cart", "6d1f0c3e-0000-4000-8000-000000000001"), cgroupfsBestEffort, map[string]string{"app": "cart"})
	var svc *corev1.Service
	if err := kubetest.Retry(ctx, func() (err error) {
		svc, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cart"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	port := int32(8080)
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "cart-1", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{srvHost.IP}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "cart-0", UID: cart.pod.UID}}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: root.Path, Kubeconfig: cl.Kubeconfig, NodeName: "node-a"})
	deadline := time.Now().Add(30 * time.Second)
	waitUntil(t, deadline, func() bool { return !(a.Counters()["kube_synced"] != 1 || a.Counters()["kube_endpointslices"] < 1) }, func() string { return fmt.Sprintf("identity index not in sync: %v", a.Counters()) })

	addr := srvHost.IP + ":8080"
	srv := serveHTTP(t, cart, srvHost, addr)
	curlFrom(t, web, cliHost, "http://"+addr+"/status/201")
	entries := a.WaitEntries(t, `http && path == "/status/201"`, 1, 30*time.Second)
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1", len(entries))
	}
	e := entries[0]
	check := func(side string, got *podwirev1.Endpoint, want *podwirev1.Endpoint) {
		t.Helper()
		g := fmt.Sprintf("%s/%s %s %s/%s svc=%s node=%s", got.GetIp(), got.GetNamespace(), got.GetPod(), got.GetWorkloadKind(), got.GetWorkload(), got.GetService(), got.GetNode())
		w := fmt.Sprintf("%s/%s %s %s/%s svc=%s node=%s", want.GetIp(), want.GetNamespace(), want.GetPod(), want.GetWorkloadKind(), want.GetWorkload(), want.GetService(), want.GetNode())
		if g != w {
			t.Errorf("%s: %s\n      want %s", side, g, w)
		}
	}
	check("src", e.GetSrc(), &podwirev1.Endpoint{Ip: cliHost.IP, Namespace: ns, Pod: web.pod.Name, WorkloadKind: "Deployment", Workload: "web", Node: "node-a"})
	check("dst", e.GetDst(), &podwirev1.Endpoint{Ip: srvHost.IP, Namespace: ns, Pod: "cart-0", WorkloadKind: "StatefulSet", Workload: "cart", Service: svc.Name, Node: "node-a"})

	// A client pod in each cgroup layout kubelet makes (driver x QoS
	// class x runtime) is named from its cgroup.
	for i, l := range everyLayout {
		name := fmt.Sprintf("client-%d", i)
		c := makePod(t, cs, root, ns, name, cliHost.IP, "node-a",
			metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "clients", UID: "6d1f0c3e-0000-4000-8000-0000000000d0", Controller: &yes}, l, nil)
		waitUntil(t, deadline.Add(30*time.Second), func() bool { return !(a.Counters()["kube_pods"] < uint64(3+i)) }, func() string { return fmt.Sprintf("the agent did not see %s", name) })
		curlFrom(t, c, cliHost, "http://"+addr+"/layout/"+name)
		got := a.WaitEntries(t, `path == "/layout/`+name+`"`, 1, 30*time.Second)
		if len(got) != 1 || got[0].GetSrc().GetPod() != name || got[0].GetSrc().GetWorkload() != "clients" || got[0].GetSrc().GetWorkloadKind() != "DaemonSet" {
			t.Errorf("layout %+v: entries %v, want one from %s of DaemonSet clients", l, got, name)
		}
	}

	// cart-0 goes; another pod, of another workload, gets its IP. New
	// exchanges name the new pod; the old entry keeps the old names.
	srv.Process.Kill()
	srv.Wait()
	before := a.Counters()["kube_changes"]
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "cart-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	cache := makePod(t, cs, root, ns, "cache-0", srvHost.IP, "node-a",
		statefulSet("cache", "6d1f0c3e-0000-4000-8000-000000000002"), systemdBurstable, nil)
	waitUntil(t, deadline.Add(30*time.Second), func() bool { return a.Counters()["kube_changes"] >= before+3 }, // delete, create, status
		func() string { return fmt.Sprintf("the agent did not see the pod change: %v", a.Counters()) })
	serveHTTP(t, cache, srvHost, addr)
	curlFrom(t, web, cliHost, "http://"+addr+"/status/202")
	after := a.WaitEntries(t, `http && path == "/status/202"`, 1, 30*time.Second)
	if len(after) != 1 {
		t.Fatalf("%d entries after the IP changed hands, want 1", len(after))
	}
	check("dst after the IP changed hands", after[0].GetDst(), &podwirev1.Endpoint{Ip: srvHost.IP, Namespace: ns, Pod: "cache-0", WorkloadKind: "StatefulSet", Workload: "cache", Node: "node-a"})
	check("old entry's dst", a.Get(t, e.GetId()).GetDst(), &podwirev1.Endpoint{Ip: srvHost.IP, Namespace: ns, Pod: "cart-0", WorkloadKind: "StatefulSet", Workload: "cart", Service: svc.Name, Node: "node-a"})
}

// TestTwoNodesReportCrossNodeCallOnce: two agents scoped to two cgroup
// subtrees act as two nodes. A call from a pod on node-a to a pod on node-b
// is reported once, by node-b's agent (the server's side), with both ends
// named; node-a's agent leaves it, counted.
func TestTwoNodesReportCrossNodeCallOnce(t *testing.T) {
	agenttest.RequireRoot(t)
	cl, ns := startShop(t)
	cs := cl.Client
	srvHost, cliHost := agenttest.NewHostPair(t, 41)
	rootA := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-node-a-"))
	rootB := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-node-b-"))
	web := makePod(t, cs, rootA, ns, "web-0", cliHost.IP, "node-a",
		statefulSet("web", "6d1f0c3e-0000-4000-8000-00000000000a"), systemdBurstable, nil)
	cart := makePod(t, cs, rootB, ns, "cart-0", srvHost.IP, "node-b",
		statefulSet("cart", "6d1f0c3e-0000-4000-8000-00000000000b"), cgroupfsBestEffort, nil)

	agentA := agenttest.StartAgent(t, daemon.Options{CgroupRoot: rootA.Path, Kubeconfig: cl.Kubeconfig, NodeName: "node-a"})
	agentB := agenttest.StartAgent(t, daemon.Options{CgroupRoot: rootB.Path, Kubeconfig: cl.Kubeconfig, NodeName: "node-b"})
	deadline := time.Now().Add(30 * time.Second)
	waitUntil(t, deadline, func() bool { return !(agentA.Counters()["kube_pods"] < 2 || agentB.Counters()["kube_pods"] < 2) }, func() string { return fmt.Sprintf("agents not in sync: %v / %v", agentA.Counters(), agentB.Counters()) })
	addr := srvHost.IP + ":8080"
	serveHTTP(t, cart, srvHost, addr)
	curlFrom(t, web, cliHost, "http://"+addr+"/cross-node")
	got := agentB.WaitEntries(t, `path == "/cross-node"`, 1, 30*time.Second)
	if len(got) != 1 {
		t.Fatalf("node-b's agent: %d entries, want 1", len(got))
	}
	e := got[0]
	if e.GetNode() != "node-b" || e.GetSrc().GetPod() != "web-0" || e.GetSrc().GetNode() != "node-a" || e.GetDst().GetPod() != "cart-0" || e.GetDst().GetNode() != "node-b" {
		t.Errorf("entry: node %s, %s@%s -> %s@%s; want node-b, web-0@node-a -> cart-0@node-b",
			e.GetNode(), e.GetSrc().GetPod(), e.GetSrc().GetNode(), e.GetDst().GetPod(), e.GetDst().GetNode())
	}
	waitUntil(t, deadline.Add(30*time.Second), func() bool { return !(agentA.Counters()["conns_reported_by_other_node"] < 1) }, func() string { return fmt.Sprintf("node-a's agent never saw the call: %v", agentA.Counters()) })
	if dup := agentA.Query(t, `path == "/cross-node"`, 10, 0); len(dup) != 0 {
		t.Errorf("node-a's agent reported the call too (%d entries)", len(dup))
	}
}

// catchUpAfterOutage is client-go's reflector backoff cap (60 s) plus
// time for one list and the event to reach the index.
const catchUpAfterOutage = 70 * time.Second

// TestAPIServerOutage: with the API server stopped for 30 s, capture goes
// on and entries keep the names already known; once it is back, a pod
// created then is named within catchUpAfterOutage, without restarting the
// agent.
func TestAPIServerOutage(t *testing.T) {
	agenttest.RequireRoot(t)
	cl, ns := startShop(t)
	cs := cl.Client
	ctx := context.Background()
	srvHost, cliHost := agenttest.NewHostPair(t, 42)
	root := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	web := makePod(t, cs, root, ns, "web-0", cliHost.IP, "node-a", statefulSet("web", "6d1f0c3e-0000-4000-8000-0000000000c1"), systemdBurstable, nil)
	cart := makePod(t, cs, root, ns, "cart-0", srvHost.IP, "node-a", statefulSet("cart", "6d1f0c3e-0000-4000-8000-0000000000c2"), cgroupfsBestEffort, nil)
	a := agenttest.StartAgent(t, daemon.Options{CgroupRoot: root.Path, Kubeconfig: cl.Kubeconfig, NodeName: "node-a"})
	deadline := time.Now().Add(30 * time.Second)
	waitUntil(t, deadline, func() bool { return !(a.Counters()["kube_synced"] != 1 || a.Counters()["kube_pods"] < 2) }, func() string { return fmt.Sprintf("not in sync: %v", a.Counters()) })
	addr := srvHost.IP + ":8080"
	serveHTTP(t, cart, srvHost, addr)

	if err := cl.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	for i := 0; time.Since(down) < 30*time.Second; i++ {
		curlFrom(t, web, cliHost, fmt.Sprintf("http://%s/while-down/%d", addr, i))
		time.Sleep(2 * time.Second)
	}
	during := a.WaitEntries(t, `path.startsWith("/while-down/")`, 10, 30*time.Second)
	if len(during) < 10 {
		t.Fatalf("%d entries while the API server was down, want every exchange (at least 10)", len(during))
	}
	for _, e := range during {
		if e.GetSrc().GetPod() != "web-0" || e.GetDst().GetPod() != "cart-0" {
			t.Errorf("%s while down: %s -> %s, want web-0 -> cart-0 from the cache", e.GetPath(), e.GetSrc().GetPod(), e.GetDst().GetPod())
		}
	}

	if err := cl.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	late := makePod(t, cs, root, ns, "late-0", cliHost.IP, "node-a", statefulSet("late", "6d1f0c3e-0000-4000-8000-0000000000c3"), systemdBurstable, nil)
	// late-0 took web-0's address: once the agent has the change, calls
	// from that address are late-0's.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		curlFrom(t, late, cliHost, "http://"+addr+"/after")
		es := a.Query(t, `path == "/after" && src.pod == "late-0"`, 1, 0)
		if len(es) == 1 {
			break
		}
		// After failing for the whole outage, client-go's reflectors
		// retry every 30-60 s (their backoff cap, which keeps a
		// cluster's worth of agents from hammering a recovering API
		// server; informer factories do not let it be set). So the
		// change is named within that cap plus one list.
		if time.Since(back) > catchUpAfterOutage {
			t.Fatalf("%v after the API server came back the agent still does not name late-0: %v", catchUpAfterOutage, a.Counters())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the change made after the API server came back was named %.1f s later", time.Since(back).Seconds())
}
