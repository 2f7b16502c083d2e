// Package kubetest runs a real Kubernetes control plane — etcd and
// kube-apiserver, built from the tools module into .bin/kube by
// `go tool mage kubeTools` — for tests and for people.
//
// The cluster has no controller manager, scheduler or kubelet: objects are
// stored and served exactly as a real API server does (UIDs, resource
// versions, watches, RBAC, ClusterIP allocation, validation), but nothing acts
// on them. A test writes what kubelet would (a Pod's status and IP) itself.
//
//	c := kubetest.Start(t)                 // fails the test when it cannot start
//	pods := c.Client.CoreV1().Pods("shop") // admin (system:masters) client
//	kubetest.Retry(ctx, func() error { ... first Service create ... })
//	c.StopAPIServer(); c.StartAPIServer(ctx) // same etcd, ports and certs
//
// Everything lives in a temporary folder (certificates, etcd data, logs,
// kubeconfig) that Stop removes; the processes run in their own process
// groups and die with the test process.
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/podwire/podwire/internal/kubetest/kubetools"
)

// DefaultServiceCIDR is where Services get their ClusterIPs. Pod addresses
// in tests come from 198.18.0.0/16, the other half of 198.18.0.0/15.
const DefaultServiceCIDR = "198.19.0.0/16"

// Admin identity in the token file: user "admin" in group system:masters.
const (
	AdminUser  = "admin"
	AdminGroup = "system:masters"
)

// ServiceAccountIssuer is the issuer of service-account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Options configure New. The zero value is what tests want.
type Options struct {
	// Dir holds certificates, etcd data, logs, the kubeconfig and state.json.
	// Empty: a new temporary folder. If set it must not exist or be empty.
	// Stop removes it either way.
	Dir string
	// BinDir holds kube-apiserver and etcd. Empty: kubetools.Find
	// ($PODWIRE_KUBE_BIN, else .bin/kube of the repository when current).
	BinDir string
	// ServiceCIDR for ClusterIPs; empty: DefaultServiceCIDR.
	ServiceCIDR string
	// Detach runs the processes in their own sessions, so they outlive this
	// process (for `go tool mage cluster`); StopDir stops them later.
	// Otherwise they are killed when this process dies.
	Detach bool
	// StartTimeout bounds each start (etcd, kube-apiserver up to the first
	// Service create); 0 means 2 minutes.
	StartTimeout time.Duration
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	Dir         string // working folder (removed by Stop)
	Kubeconfig  string // path of an admin kubeconfig file in Dir
	Server      string // https://127.0.0.1:PORT
	Token       string // the admin bearer token
	CAFile      string // the CA that signed the serving certificate
	ServiceCIDR string
	EtcdURL     string // http://127.0.0.1:PORT

	// Config is an admin client configuration (system:masters); copy it
	// (rest.CopyConfig) before changing it.
	Config *rest.Config
	// Client is a clientset for Config.
	Client *kubernetes.Clientset

	bin        string
	detach     bool
	timeout    time.Duration
	securePort int
	etcdPort   int
	peerPort   int

	mu        sync.Mutex
	etcd      *proc
	apiserver *proc
	stopped   bool
}

// Start starts a cluster for a test with default Options and stops it when
// the test ends, showing the ends of both logs if the test failed. When the
// binaries are missing the test fails saying to run `go tool mage kubeTools`.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with Options.
func StartWith(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: cluster in %s\n%s", c.Dir, c.Logs(80))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("kubetest: stopping the cluster: %v", err)
		}
	})
	return c
}

// New starts etcd and kube-apiserver and returns when the API server serves
// /readyz and a Service can be created (ClusterIP allocation works). On error
// nothing is left running and the error carries the ends of the logs.
func New(ctx context.Context, opts Options) (_ *Cluster, err error) {
	bin := opts.BinDir
	if bin == "" {
		if bin, err = kubetools.Find(); err != nil {
			return nil, err
		}
	} else if err := kubetools.CheckDir(bin); err != nil {
		return nil, err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		removeStale()
		if dir, err = os.MkdirTemp("", "kubetest-"); err != nil {
			return nil, err
		}
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			return nil, fmt.Errorf("kubetest: %s is not empty (another cluster there? stop it first)", dir)
		}
	}
	c := &Cluster{
		Dir:         dir,
		Kubeconfig:  filepath.Join(dir, "kubeconfig"),
		CAFile:      filepath.Join(dir, "ca.crt"),
		ServiceCIDR: opts.ServiceCIDR,
		bin:         bin,
		detach:      opts.Detach,
		timeout:     opts.StartTimeout,
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.timeout == 0 {
		c.timeout = 2 * time.Minute
	}
	defer func() {
		if err != nil {
			logs := c.Logs(40)
			c.Stop()
			err = fmt.Errorf("%w\n%s", err, logs)
		}
	}()

	if err := writeCerts(dir); err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	c.Token = hex.EncodeToString(tok)
	tokens := fmt.Sprintf("%s,%s,%s-uid,\"%s\"\n", c.Token, AdminUser, AdminUser, AdminGroup)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return nil, err
	}

	// Free ports can be taken between choosing and binding: try again with
	// new ones when a process says so.
	for attempt := 0; ; attempt++ {
		if c.etcdPort, err = freePort(); err != nil {
			return nil, err
		}
		if c.peerPort, err = freePort(); err != nil {
			return nil, err
		}
		err = c.startEtcd(ctx)
		if err == nil || attempt == 2 || !c.etcd.addrInUse() {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if c.securePort, err = freePort(); err != nil {
			return nil, err
		}
		c.Server = "https://127.0.0.1:" + strconv.Itoa(c.securePort)
		if err := c.writeClientConfig(); err != nil {
			return nil, err
		}
		err = c.startAPIServer(ctx)
		if err == nil || attempt == 2 || !c.apiserver.addrInUse() {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) writeClientConfig() error {
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return err
	}
	c.Config = &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS:             100,
		Burst:           200,
		Timeout:         30 * time.Second,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: ca}
	kc.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: c.Token}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: AdminUser, Namespace: "default"}
	kc.CurrentContext = "kubetest"
	return clientcmd.WriteToFile(*kc, c.Kubeconfig)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	c.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(c.etcdPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(c.peerPort)
	// A failed attempt may have left a member with other peer URLs.
	if err := os.RemoveAll(filepath.Join(c.Dir, "etcd")); err != nil {
		return err
	}
	args := []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + c.EtcdURL,
		"--advertise-client-urls=" + c.EtcdURL,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=kubetest=" + peer,
		"--initial-cluster-state=new",
		"--log-level=warn",
		// Test data: no need to wait for the disk on every write.
		"--unsafe-no-fsync",
	}
	p, err := c.spawn("etcd", kubetools.Etcd, args)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(c.EtcdURL + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(b, []byte(`"true"`)) {
				return c.writeState()
			}
		}
		if err := p.waitOrDone(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("etcd did not become healthy: %w", err)
		}
	}
}

func (c *Cluster) apiserverArgs() []string {
	return []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.securePort),
		"--cert-dir=" + filepath.Join(c.Dir, "certs"),
		"--tls-cert-file=" + filepath.Join(c.Dir, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(c.Dir, "apiserver.key"),
		"--token-auth-file=" + filepath.Join(c.Dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + filepath.Join(c.Dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(c.Dir, "sa.key"),
		// 127.0.0.1 cannot be an endpoint of the "kubernetes" Service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		// On SIGTERM, end open watches after a second instead of waiting a
		// minute for their clients to go away.
		"--shutdown-watch-termination-grace-period=1s",
	}
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	p, err := c.spawn("kube-apiserver", kubetools.APIServer, c.apiserverArgs())
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.apiserver = p
	c.mu.Unlock()
	if err := c.writeState(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.waitReadyz(ctx, p); err != nil {
		return err
	}
	// /readyz can say ok a moment before a Service can get a ClusterIP (the
	// default ServiceCIDR is not ready yet): wait until one can.
	svcs := c.Client.CoreV1().Services(metav1.NamespaceDefault)
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubetest-ready-probe"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	var last error
	for {
		_, err := svcs.Create(ctx, probe, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			err = svcs.Delete(ctx, probe.Name, metav1.DeleteOptions{})
			if err == nil || apierrors.IsNotFound(err) {
				return nil
			}
		}
		last = err
		if err := p.waitOrDone(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("kube-apiserver is ready but cannot create a Service: %v (%w)", last, err)
		}
	}
}

func (c *Cluster) waitReadyz(ctx context.Context, p *proc) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.Config.TLSClientConfig.CAData)
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer hc.CloseIdleConnections()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, lastLines(string(b), 5))
		} else {
			last = err.Error()
		}
		if err := p.waitOrDone(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("kube-apiserver did not become ready (last /readyz: %s): %w", last, err)
		}
	}
}

// StopAPIServer stops kube-apiserver as a node shutdown would (SIGTERM: open
// watches end within a second, then the process exits; SIGKILL if it has
// not after 10 s), leaving etcd, the port, certificates and tokens as they
// are.
func (c *Cluster) StopAPIServer() error {
	c.mu.Lock()
	p := c.apiserver
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(10 * time.Second)
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same port with the same etcd, certificates and tokens, so Config, Client
// and the kubeconfig keep working. It returns when the server is ready as in
// New.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	p := c.apiserver
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return errors.New("kubetest: cluster was stopped")
	}
	if p != nil && !p.exited() {
		return errors.New("kubetest: kube-apiserver is running (StopAPIServer first)")
	}
	if err := c.startAPIServer(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, c.Logs(40))
	}
	return nil
}

// Stop kills kube-apiserver and etcd (SIGKILL: nothing of theirs is kept)
// and removes Dir. It may be called more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	c.stopped = true
	api, etcd := c.apiserver, c.etcd
	c.mu.Unlock()
	var errs []error
	if api != nil {
		errs = append(errs, api.stop(0))
	}
	if etcd != nil {
		errs = append(errs, etcd.stop(0))
	}
	if c.Dir != "" {
		errs = append(errs, os.RemoveAll(c.Dir))
	}
	return errors.Join(errs...)
}

// APIServerPID and EtcdPID return the process ids (0 when not running).
func (c *Cluster) APIServerPID() int { return c.pid(func() *proc { return c.apiserver }) }

// EtcdPID is the process id of etcd.
func (c *Cluster) EtcdPID() int { return c.pid(func() *proc { return c.etcd }) }

func (c *Cluster) pid(get func() *proc) int {
	c.mu.Lock()
	p := get()
	c.mu.Unlock()
	if p == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Logs returns the last n lines of each process's log, headed by its path.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		path := filepath.Join(c.Dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- last %d lines of %s ---\n%s\n", n, path, lastLines(string(data), n))
	}
	return b.String()
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Retry calls fn until it succeeds, returns an error that retrying cannot
// fix (already exists, invalid, forbidden, unauthorized, bad request), or ctx
// ends or 30 s pass; it returns fn's last error then. Use it for the first
// writes after a (re)start, which a just-ready API server can still refuse.
func Retry(ctx context.Context, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := fn()
		if err == nil || permanent(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func permanent(err error) bool {
	return apierrors.IsAlreadyExists(err) || apierrors.IsInvalid(err) || apierrors.IsForbidden(err) ||
		apierrors.IsUnauthorized(err) || apierrors.IsBadRequest(err) || apierrors.IsMethodNotSupported(err)
}

// removeStale removes the temporary folders of test clusters whose test
// process died without cleaning up (a test binary's timeout panic, a
// SIGKILL): their processes died with it, their etcd data stays.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kubetest-*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		s, err := ReadState(d)
		if err != nil || s.Dir != d {
			continue
		}
		if !ours(s.EtcdPID, filepath.Join(s.BinDir, kubetools.Etcd)) &&
			!ours(s.APIPID, filepath.Join(s.BinDir, kubetools.APIServer)) {
			os.RemoveAll(d)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// State is what state.json in a cluster's Dir records, so another process
// (`go tool mage clusterDown`) can find and stop it.
type State struct {
	Dir         string `json:"dir"`
	Server      string `json:"server"`
	Kubeconfig  string `json:"kubeconfig"`
	Token       string `json:"token"`
	CAFile      string `json:"caFile"`
	Etcd        string `json:"etcd"`
	EtcdPID     int    `json:"etcdPid"`
	APIPID      int    `json:"apiserverPid"`
	BinDir      string `json:"binDir"`
	ServiceCIDR string `json:"serviceCIDR"`
}

func (c *Cluster) writeState() error {
	s := State{Dir: c.Dir, Server: c.Server, Kubeconfig: c.Kubeconfig, Token: c.Token, CAFile: c.CAFile,
		Etcd: c.EtcdURL, EtcdPID: c.EtcdPID(), APIPID: c.APIServerPID(), BinDir: c.bin, ServiceCIDR: c.ServiceCIDR}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, "state.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, "state.json"))
}

// ReadState reads dir/state.json.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	return &s, nil
}

// Running reports whether the processes recorded in s are still running.
func (s *State) Running() bool {
	return ours(s.EtcdPID, filepath.Join(s.BinDir, kubetools.Etcd)) &&
		ours(s.APIPID, filepath.Join(s.BinDir, kubetools.APIServer))
}

// StopDir stops the cluster recorded in dir/state.json (started by another
// process, as `go tool mage cluster` does) and removes dir. A dir without a
// state.json is only removed.
func StopDir(dir string) error {
	s, err := ReadState(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var errs []error
	if s != nil {
		for _, p := range []struct {
			pid int
			bin string
		}{{s.APIPID, kubetools.APIServer}, {s.EtcdPID, kubetools.Etcd}} {
			exe := filepath.Join(s.BinDir, p.bin)
			if !ours(p.pid, exe) {
				continue
			}
			syscall.Kill(-p.pid, syscall.SIGTERM)
			deadline := time.Now().Add(10 * time.Second)
			for ours(p.pid, exe) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if ours(p.pid, exe) {
				syscall.Kill(-p.pid, syscall.SIGKILL)
				for ours(p.pid, exe) && time.Now().Before(deadline.Add(5*time.Second)) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if ours(p.pid, exe) {
				errs = append(errs, fmt.Errorf("%s (pid %d) did not stop", p.bin, p.pid))
			}
		}
	}
	errs = append(errs, os.RemoveAll(dir))
	return errors.Join(errs...)
}

// ours reports whether pid is a live (not zombie) process running exe, so a
// recycled pid is never signalled.
func ours(pid int, exe string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	arg0, _, _ := bytes.Cut(cmdline, []byte{0})
	return string(arg0) == exe
}

// proc is one child process and its log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its Wait error, once done
}

func (c *Cluster) spawn(name, binName string, args []string) (*proc, error) {
	logPath := filepath.Join(c.Dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), binName, strings.Join(args, " "))
	cmd := exec.Command(filepath.Join(c.bin, binName), args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// Its own process group, and killed if this process dies.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// start starts cmd from one thread that never exits: Pdeathsig fires when the
// thread that forked the child ends, not the process, and Go may end threads.
func start(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for f := range spawnCh {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnCh <- func() { errc <- cmd.Start() }
	return <-errc
}

var (
	spawnOnce sync.Once
	spawnCh   chan func()
)

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOrDone sleeps for d; it returns an error if the process exits or ctx
// ends first.
func (p *proc) waitOrDone(ctx context.Context, d time.Duration) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v (log: %s)", p.name, p.err, p.logPath)
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w (log: %s)", p.name, ctx.Err(), p.logPath)
	case <-time.After(d):
		return nil
	}
}

// addrInUse reports whether the process exited complaining that its address
// was taken.
func (p *proc) addrInUse() bool {
	if p == nil || !p.exited() {
		return false
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "address already in use") {
			return true
		}
	}
	return false
}

// stop sends SIGTERM to the process group, then SIGKILL after grace (at
// once when grace is 0).
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	if grace > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
	}
}
