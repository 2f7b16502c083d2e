package kubetest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podwire/podwire/internal/kubetest/kubetools"
)

const ns = "shop"

// workload is what TestCluster creates: the objects an agent reads to name
// a pod's traffic.
type workload struct {
	rs    *appsv1.ReplicaSet
	pod   *corev1.Pod
	svc   *corev1.Service
	slice *discoveryv1.EndpointSlice
}

func TestCluster(t *testing.T) {
	t0 := time.Now()
	c := Start(t)
	t.Logf("cluster started in %v: %s, etcd %s, dir %s", time.Since(t0).Round(time.Millisecond), c.Server, c.EtcdURL, c.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The kubeconfig file works on its own, as a person or helm would use it.
	fromFile, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("loading %s: %v", c.Kubeconfig, err)
	}
	if fromFile.Host != c.Server || fromFile.BearerToken != c.Token {
		t.Errorf("kubeconfig points at %s with token %q, want %s and the admin token", fromFile.Host, fromFile.BearerToken, c.Server)
	}
	v, err := kubernetes.NewForConfigOrDie(fromFile).Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version through the kubeconfig: %v", err)
	}
	if v.GitVersion != kubetools.KubeVersion {
		t.Errorf("server says it is %s, want %s", v.GitVersion, kubetools.KubeVersion)
	}

	w := createWorkload(ctx, t, c.Client)
	checkWorkload(ctx, t, c, w)

	t.Run("RBAC and service-account tokens", func(t *testing.T) { checkServiceAccount(ctx, t, c) })

	// Stop the API server: clients notice, etcd keeps the data.
	apiPID, etcdPID := c.APIServerPID(), c.EtcdPID()
	t0 = time.Now()
	if err := c.StopAPIServer(); err != nil {
		t.Fatalf("StopAPIServer: %v", err)
	}
	t.Logf("kube-apiserver stopped in %v", time.Since(t0).Round(time.Millisecond))
	if alive(apiPID) {
		t.Errorf("kube-apiserver (pid %d) still runs after StopAPIServer", apiPID)
	}
	if !alive(etcdPID) {
		t.Errorf("etcd (pid %d) stopped with the API server", etcdPID)
	}
	short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.Client.CoreV1().Pods(ns).Get(short, w.pod.Name, metav1.GetOptions{})
	cancelShort()
	if err == nil {
		t.Fatalf("GET pod succeeded while the API server was stopped")
	}
	if !isConnRefused(err) {
		t.Logf("while stopped, GET failed with %v (expected connection refused)", err)
	}

	t0 = time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatalf("StartAPIServer: %v", err)
	}
	t.Logf("kube-apiserver restarted in %v", time.Since(t0).Round(time.Millisecond))
	if c.APIServerPID() == apiPID || c.APIServerPID() == 0 {
		t.Errorf("kube-apiserver pid after restart is %d (before: %d)", c.APIServerPID(), apiPID)
	}
	if c.EtcdPID() != etcdPID {
		t.Errorf("etcd pid changed from %d to %d", etcdPID, c.EtcdPID())
	}
	// Same objects (same UIDs, IPs), through the same client.
	checkWorkload(ctx, t, c, w)

	// A watch works again and sees a change made after the restart.
	pods := c.Client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	watcher, err := pods.Watch(wctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatalf("watch after restart: %v", err)
	}
	defer watcher.Stop()
	patch := []byte(`{"metadata":{"labels":{"restarted":"yes"}}}`)
	if _, err := pods.Patch(ctx, w.pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching the pod: %v", err)
	}
	select {
	case ev, ok := <-watcher.ResultChan():
		if !ok {
			t.Fatal("watch closed without an event")
		}
		p, isPod := ev.Object.(*corev1.Pod)
		if ev.Type != watch.Modified || !isPod || p.UID != w.pod.UID || p.Labels["restarted"] != "yes" {
			t.Fatalf("watch event %s %T, want MODIFIED of pod %s with label restarted=yes", ev.Type, ev.Object, w.pod.UID)
		}
	case <-wctx.Done():
		t.Fatal("no watch event within 30s of patching the pod")
	}

	// Stop kills both processes and removes the folder.
	dir := c.Dir
	apiPID, etcdPID = c.APIServerPID(), c.EtcdPID()
	t0 = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("cluster stopped in %v", time.Since(t0).Round(time.Millisecond))
	if alive(apiPID) || alive(etcdPID) {
		t.Errorf("after Stop: kube-apiserver alive %v, etcd alive %v", alive(apiPID), alive(etcdPID))
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop, %s still exists (%v)", dir, err)
	}
	if err := c.StartAPIServer(ctx); err == nil {
		t.Error("StartAPIServer after Stop succeeded")
	}
}

func createWorkload(ctx context.Context, t *testing.T, cs kubernetes.Interface) workload {
	t.Helper()
	var w workload
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	labels := map[string]string{"app": "cart"}
	var err error
	w.rs, err = cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "cart-7d9f8", Labels: labels},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "cart", Image: "cart:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating replicaset: %v", err)
	}
	ctrl := true
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "cart-7d9f8-abcde", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: w.rs.Name, UID: w.rs.UID, Controller: &ctrl,
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   "node-a",
			Containers: []corev1.Container{{Name: "cart", Image: "cart:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	if pod.UID == "" {
		t.Fatal("created pod has no UID")
	}
	// What kubelet would report.
	pod.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		HostIP: "198.18.0.1", PodIP: "198.18.1.10",
		PodIPs: []corev1.PodIP{{IP: "198.18.1.10"}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "cart", Image: "cart:1", ImageID: "cart@sha256:0", Ready: true,
			ContainerID: "containerd://4f2c0a9e1d7b", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		}},
	}
	if w.pod, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating pod status: %v", err)
	}
	if err := Retry(ctx, func() error {
		w.svc, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "cart"},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatalf("creating service: %v", err)
	}
	port, proto, ready := int32(8080), corev1.ProtocolTCP, true
	portName := "http"
	w.slice, err = cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "cart-x1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "cart"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"198.18.1.10"},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName:   &w.pod.Spec.NodeName,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: w.pod.Name, UID: w.pod.UID},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating endpointslice: %v", err)
	}
	// The real API server validates: a loopback endpoint is refused.
	bad := w.slice.DeepCopy()
	bad.ObjectMeta = metav1.ObjectMeta{Name: "cart-loopback", Labels: bad.Labels}
	bad.Endpoints[0].Addresses = []string{"127.0.0.1"}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("creating an EndpointSlice with 127.0.0.1: got %v, want Invalid", err)
	}
	return w
}

// checkWorkload lists the objects back and checks what an agent would rely on.
func checkWorkload(ctx context.Context, t *testing.T, c *Cluster, w workload) {
	t.Helper()
	cs := c.Client
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=cart"})
	if err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("listed %d pods, want 1", len(pods.Items))
	}
	p := pods.Items[0]
	if p.UID != w.pod.UID || p.Status.PodIP != "198.18.1.10" || p.Status.Phase != corev1.PodRunning {
		t.Errorf("pod %s uid %s ip %q phase %s; want uid %s ip 198.18.1.10 Running", p.Name, p.UID, p.Status.PodIP, p.Status.Phase, w.pod.UID)
	}
	if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].ContainerID != "containerd://4f2c0a9e1d7b" {
		t.Errorf("pod container statuses %+v, want containerd://4f2c0a9e1d7b", p.Status.ContainerStatuses)
	}
	if o := metav1.GetControllerOf(&p); o == nil || o.Kind != "ReplicaSet" || o.UID != w.rs.UID {
		t.Errorf("pod controller %+v, want ReplicaSet uid %s", o, w.rs.UID)
	}

	svc, err := cs.CoreV1().Services(ns).Get(ctx, "cart", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting service: %v", err)
	}
	_, cidr, _ := net.ParseCIDR(c.ServiceCIDR)
	ip := net.ParseIP(svc.Spec.ClusterIP)
	if ip == nil || !cidr.Contains(ip) {
		t.Errorf("service ClusterIP %q is not in %s", svc.Spec.ClusterIP, c.ServiceCIDR)
	}
	if svc.Spec.ClusterIP != w.svc.Spec.ClusterIP || svc.UID != w.svc.UID {
		t.Errorf("service now %s/%s, was %s/%s", svc.UID, svc.Spec.ClusterIP, w.svc.UID, w.svc.Spec.ClusterIP)
	}

	slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=cart"})
	if err != nil {
		t.Fatalf("listing endpointslices: %v", err)
	}
	if len(slices.Items) != 1 {
		t.Fatalf("listed %d endpointslices for cart, want 1", len(slices.Items))
	}
	ep := slices.Items[0].Endpoints
	if len(ep) != 1 || len(ep[0].Addresses) != 1 || ep[0].Addresses[0] != "198.18.1.10" || ep[0].TargetRef == nil || ep[0].TargetRef.UID != w.pod.UID {
		t.Errorf("endpointslice endpoints %+v, want 198.18.1.10 -> pod %s", ep, w.pod.UID)
	}

	nsList, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nsList.Items {
		names = append(names, n.Name)
	}
	if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+ns+" ") {
		t.Errorf("namespaces %v lack %s", names, ns)
	}
}

// checkServiceAccount: RBAC is enforced and service-account tokens (signed
// with the generated RSA key) authenticate — what an agent in the cluster uses.
func checkServiceAccount(ctx context.Context, t *testing.T, c *Cluster) {
	cs := c.Client
	sa, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podwire-agent"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service account: %v", err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token: %v", err)
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = tr.Status.Token
	agent := kubernetes.NewForConfigOrDie(cfg)

	_, err = agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("listing pods as the service account before any binding: %v, want Forbidden", err)
	}
	if !strings.Contains(err.Error(), "system:serviceaccount:"+ns+":podwire-agent") {
		t.Errorf("forbidden error does not name the service account: %v", err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "podwire-agent"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "podwire-agent"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "podwire-agent"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa.Name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer's cache catches up with new bindings within moments.
	var pods *corev1.PodList
	err = Retry(ctx, func() error {
		pods, err = agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			return errors.New(err.Error()) // retry: bindings take a moment
		}
		return err
	})
	if err != nil {
		t.Fatalf("listing pods as the bound service account: %v", err)
	}
	if len(pods.Items) != 1 {
		t.Errorf("the service account sees %d pods, want 1", len(pods.Items))
	}
	if _, err := agent.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as the service account: %v, want Forbidden", err)
	}
}

// TestMissingBinaries: without built binaries the error says how to build them.
func TestMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	_, err := New(context.Background(), Options{BinDir: empty})
	if err == nil {
		t.Fatal("New with an empty BinDir succeeded")
	}
	if !errors.Is(err, kubetools.ErrMissing) || !strings.Contains(err.Error(), "go tool mage kubeTools") {
		t.Errorf("error %q does not say to run `go tool mage kubeTools`", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("New left files in %s", empty)
	}
}

// TestDetachedStopDir: a detached cluster (as `go tool mage cluster` starts
// it) is stopped by StopDir from its state.json alone.
func TestDetachedStopDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	c := StartWith(t, Options{Dir: dir, Detach: true})
	s, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Running() || s.APIPID != c.APIServerPID() || s.EtcdPID != c.EtcdPID() || s.Server != c.Server {
		t.Fatalf("state %+v does not describe the running cluster (api pid %d, etcd pid %d)", s, c.APIServerPID(), c.EtcdPID())
	}
	// Own sessions: not in this process's group.
	if sid, _ := unix.Getsid(s.APIPID); sid != s.APIPID {
		t.Errorf("detached kube-apiserver session %d, want its own (%d)", sid, s.APIPID)
	}
	if err := StopDir(dir); err != nil {
		t.Fatalf("StopDir: %v", err)
	}
	if s.Running() {
		t.Error("cluster still running after StopDir")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after StopDir", dir)
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused")
}
