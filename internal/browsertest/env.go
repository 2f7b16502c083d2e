// Package browsertest runs what a Grafana user meets end to end, without
// Grafana: a real Kubernetes API server, two capturing agents as two nodes
// with simulated pods exchanging real HTTP traffic, and the plugin's backend
// started as Grafana starts it. The browser test drives the real editors in
// Debian's chromium against it; provisioning/ runs every dashboard panel
// through it.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	"github.com/podwire/podwire/internal/kubetest"
	"github.com/podwire/podwire/internal/plugintest"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// DataSourceUID is the data source's uid, as provisioned
// (provisioning/datasources/podwire.yaml).
const DataSourceUID = "podwire"

// Pod is a simulated pod: a Pod object in the API server, a network
// namespace with its address and a cgroup laid out as kubelet's systemd
// driver would, holding its processes.
type Pod struct {
	Namespace, Name, Workload string
	Host                      *agenttest.Host
	Cgroup                    *agenttest.Cgroup
}

// Node is one capturing agent over its own cgroup subtree, with a client
// pod calling a server pod, both in one namespace.
type Node struct {
	Name           string
	Namespace      string
	Root           *agenttest.Cgroup
	Agent          *agenttest.Agent
	Server, Client *Pod
	// ServerAddr is where the server pod's HTTP server listens.
	ServerAddr string
}

// Env is the whole set-up.
type Env struct {
	Cluster *kubetest.Cluster
	// A is node-a: web calls cart in namespace shop. B is node-b:
	// dispatch calls tracker in namespace shipping.
	A, B *Node
	// BigEntryID is the entry of GET /catalog.json on node-a, whose JSON
	// response body is BigBytes long (when Options.BigBytes was set).
	BigEntryID string
	BigBytes   int
}

// Options change the set-up.
type Options struct {
	// BigBytes, when not 0, makes node-a's cart also serve a JSON file of
	// about this size (python3's http.server) and fetches it once.
	BigBytes int
}

// maxBody is the agents' body limit: the big JSON body must fit whole.
const maxBody = 8 << 20

// Start sets everything up and waits until both agents have stored the
// traffic: on node-a GET /api/cart/items, /api/cart/total and /status/503;
// on node-b GET /api/parcels/7 and /status/500 (curl's --retry repeats a
// 5xx answer, so those two come several times). The test binary's
// TestMain must call agenttest.PeerMain first.
func Start(t *testing.T, o Options) *Env {
	t.Helper()
	agenttest.RequireRoot(t)
	cl := kubetest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"shop", "shipping"} {
		if _, err := cl.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating namespace %s: %v", ns, err)
		}
	}
	e := &Env{Cluster: cl}
	e.A = makeNode(t, cl, "node-a", "shop", 62, "cart", "web")
	e.B = makeNode(t, cl, "node-b", "shipping", 63, "tracker", "dispatch")
	for _, n := range []*Node{e.A, e.B} {
		n.start(t, cl, 4)
	}

	var bigAddr string
	if o.BigBytes > 0 {
		dir := t.TempDir()
		body := BigJSON(o.BigBytes)
		if err := os.WriteFile(filepath.Join(dir, "catalog.json"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		e.BigBytes = len(body)
		bigAddr = e.A.Server.Host.IP + ":8081"
		e.A.Server.start(t, "python3", "-m", "http.server", "--bind", e.A.Server.Host.IP, "--directory", dir, "8081")
	}

	e.A.curl(t, "http://"+e.A.ServerAddr+"/api/cart/items", "http://"+e.A.ServerAddr+"/api/cart/total", "http://"+e.A.ServerAddr+"/status/503")
	e.B.curl(t, "http://"+e.B.ServerAddr+"/api/parcels/7", "http://"+e.B.ServerAddr+"/status/500")
	if bigAddr != "" {
		e.A.curl(t, "http://"+bigAddr+"/catalog.json")
	}
	e.A.Agent.WaitEntries(t, `http && dst.namespace == "shop"`, 3, 60*time.Second)
	e.B.Agent.WaitEntries(t, `http && dst.namespace == "shipping"`, 2, 60*time.Second)
	if bigAddr != "" {
		got := e.A.Agent.WaitEntries(t, `path == "/catalog.json"`, 1, 60*time.Second)
		full, err := e.A.Agent.Client.GetEntry(ctx, &podwirev1.GetEntryRequest{Id: got[0].GetId()}, grpc.MaxCallRecvMsgSize(4*maxBody))
		if err != nil {
			t.Fatalf("get %s: %v", got[0].GetId(), err)
		}
		if n := len(full.GetResponse().GetBody()); n != e.BigBytes || full.GetResponse().GetTruncated() {
			t.Fatalf("the agent kept %d of the %d bytes of /catalog.json (truncated %v); counters %v",
				n, e.BigBytes, full.GetResponse().GetTruncated(), e.A.Agent.Counters())
		}
		e.BigEntryID = full.GetId()
	}
	return e
}

// Agents are the agents' addresses, node-a's first.
func (e *Env) Agents() []string { return []string{e.A.Agent.Addr(), e.B.Agent.Addr()} }

// DataSource is the data source over both agents, with the provisioned uid.
func (e *Env) DataSource() plugintest.DataSource {
	return plugintest.DataSource{UID: DataSourceUID, Name: "Podwire", JSONData: map[string]any{"agents": e.Agents(), "timeoutSeconds": 10}}
}

// makeNode makes the node's cgroup subtree and its two pods.
func makeNode(t *testing.T, cl *kubetest.Cluster, name, ns string, subnet int, server, client string) *Node {
	t.Helper()
	root := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-browser-"+name+"-"))
	srvHost, cliHost := agenttest.NewHostPair(t, subnet)
	n := &Node{Name: name, Namespace: ns, Root: root}
	n.Server = makePod(t, cl, root, ns, server+"-0", server, srvHost, name)
	n.Client = makePod(t, cl, root, ns, client+"-0", client, cliHost, name)
	n.ServerAddr = srvHost.IP + ":8080"
	return n
}

// start starts the node's agent, waits until it knows pods pods, and
// starts the server pod's HTTP server.
func (n *Node) start(t *testing.T, cl *kubetest.Cluster, pods uint64) {
	t.Helper()
	n.Agent = agenttest.StartAgent(t, daemon.Options{CgroupRoot: n.Root.Path, Kubeconfig: cl.Kubeconfig, NodeName: n.Name,
		Version: "v-browsertest", MaxBodyBytes: maxBody, RingBytes: 64 << 20})
	deadline := time.Now().Add(60 * time.Second)
	for n.Agent.Counters()["kube_synced"] != 1 || n.Agent.Counters()["kube_pods"] < pods {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the agent does not see the %d pods: %v", n.Name, pods, n.Agent.Counters())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := n.Server.Cgroup.PeerInHost(n.Server.Host, "http-server "+n.ServerAddr)
	n.Server.run(t, cmd.Path, cmd.Args[1:], cmd.Env)
}

// curl fetches the URLs from the client pod, retrying while servers start.
func (n *Node) curl(t *testing.T, urls ...string) {
	t.Helper()
	args := []string{"-sS", "--retry", "50", "--retry-connrefused", "--retry-delay", "0", "--retry-max-time", "20"}
	// Regular files, not /dev/null: curl truncates its output on a retry.
	dir := t.TempDir()
	for i, u := range urls {
		args = append(args, "-o", filepath.Join(dir, strconv.Itoa(i)), u)
	}
	if out, err := n.Client.Cgroup.InHost(n.Client.Host, "curl", args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: curl %s: %v\n%s", n.Name, strings.Join(urls, " "), err, out)
	}
}

// makePod creates the Pod, owned by a StatefulSet named workload, running
// on node with the host's address, and its container cgroup under root.
func makePod(t *testing.T, cl *kubetest.Cluster, root *agenttest.Cgroup, ns, name, workload string, h *agenttest.Host, node string) *Pod {
	t.Helper()
	ctx := context.Background()
	yes := true
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: workload,
		UID: types.UID("7e0c1a5b-0000-4000-8000-" + fmt.Sprintf("%012x", []byte(workload+"-owner"))[:12]), Controller: &yes}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": workload}, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "example.invalid/" + workload}}}}
	p, err := cl.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
	cid := fmt.Sprintf("%064x", []byte(ns+"/"+name))[:64]
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: h.IP, PodIPs: []corev1.PodIP{{IP: h.IP}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + cid}}}
	if p, err = cl.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod %s/%s status: %v", ns, name, err)
	}
	// kubelet's systemd driver: kubepods.slice/kubepods-burstable.slice/
	// kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope.
	dir := root.Path
	for _, level := range []string{"kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod" + strings.ReplaceAll(string(p.UID), "-", "_") + ".slice"} {
		dir = filepath.Join(dir, level)
		if err := os.Mkdir(dir, 0o755); err == nil {
			d := dir
			t.Cleanup(func() { os.Remove(d) })
		} else if !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	cg := agenttest.NewCgroup(t, dir, "cri-containerd-"+cid+".scope")
	return &Pod{Namespace: ns, Name: name, Workload: workload, Host: h, Cgroup: cg}
}

// start runs a command in the pod (its cgroup and network namespace) until
// the test ends.
func (p *Pod) start(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := p.Cgroup.InHost(p.Host, name, args...)
	p.run(t, cmd.Path, cmd.Args[1:], nil)
}

// run starts path with args in the pod's cgroup, with env added, killed
// when the test ends; its output is shown when the test failed.
func (p *Pod) run(t *testing.T, path string, args, env []string) {
	t.Helper()
	cmd := p.Cgroup.Command(path, args...)
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && out.Len() > 0 {
			t.Logf("%s/%s: %s %s:\n%s", p.Namespace, p.Name, filepath.Base(path), strings.Join(args, " "), out.String())
		}
	})
}

// BigJSON is a JSON document of at least n bytes: a catalog of items.
func BigJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"catalog":"podwire-test","items":[`)
	for i := 0; b.Len() < n-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"sku":"sku-%06d","name":"item number %d","tags":["red","small"],"price":{"amount":%s,"currency":"EUR"},"stock":%d}`,
			i, i, i, strconv.FormatFloat(float64(i)/100, 'f', 2, 64), i%17)
	}
	b.WriteString(`],"complete":true}`)
	return b.Bytes()
}
