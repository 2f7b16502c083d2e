// Tests of the Helm chart in deploy/podwire: it lints, renders for the value
// sets people use, renders what an agent needs (and only the RBAC it needs),
// and every object it renders is accepted by a real kube-apiserver. They use
// the helm and kube-apiserver that `go tool mage kubeTools` builds into
// .bin/kube, and fail (not skip) without them.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/podwire/podwire/agent/kube"
	"github.com/podwire/podwire/internal/kubetest"
	"github.com/podwire/podwire/internal/kubetest/kubetools"
)

// chartDir is the chart, relative to this package's folder.
const chartDir = "podwire"

// capabilities are what the agent needs when not privileged, and all it gets.
var capabilities = []string{"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE", "DAC_READ_SEARCH"}

// readGrants are the (API group, resource) pairs the agent's informers read
// (agent/kube/watch.go); the ClusterRole grants get, list and watch on them
// and nothing else.
var readGrants = []string{"/pods", "/services", "/nodes", "discovery.k8s.io/endpointslices", "apps/replicasets", "batch/jobs"}

var readVerbs = []string{"get", "list", "watch"}

// valueSet is one way of installing the chart, with what it must render
// beyond what every set renders.
type valueSet struct {
	name    string
	release string
	values  string // values.yaml
	check   func(t *testing.T, r *rendered)
}

var valueSets = []valueSet{
	{
		name:    "defaults",
		release: "podwire",
		check: func(t *testing.T, r *rendered) {
			c := r.agent()
			if r.secret != nil {
				t.Errorf("a Secret %s is rendered without a token", r.secret.Name)
			}
			if e := env(c, "PODWIRE_TOKEN"); e != nil {
				t.Errorf("PODWIRE_TOKEN is set without a token: %+v", e)
			}
			if v := volume(r.ds, "tls"); v != nil {
				t.Errorf("a TLS volume without TLS: %+v", v)
			}
			if want := "ghcr.io/podwire/podwire:" + r.appVersion; c.Image != want {
				t.Errorf("image %s, want %s (the chart's appVersion)", c.Image, want)
			}
			wantArgs := []string{"--listen=0.0.0.0:7700", "--node-name=$(NODE_NAME)", "--store-bytes=268435456",
				"--max-body-bytes=1048576", "--ring-bytes=33554432", "--log-level=info"}
			if !slices.Equal(c.Args, wantArgs) {
				t.Errorf("args %q, want %q", c.Args, wantArgs)
			}
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--capture-namespace") || strings.HasPrefix(a, "--skip-namespace") || strings.HasPrefix(a, "--tls-") {
					t.Errorf("default args hold %s", a)
				}
			}
			if q := c.Resources.Limits.Memory(); q.Cmp(resource.MustParse("512Mi")) != 0 {
				t.Errorf("memory limit %s, want 512Mi", q)
			}
			if r.ds.Spec.Template.Spec.PriorityClassName != "" {
				t.Errorf("priorityClassName %q by default", r.ds.Spec.Template.Spec.PriorityClassName)
			}
		},
	},
	{
		name:    "tls-token-privileged",
		release: "podwire",
		values: `
tls:
  enabled: true
  secretName: podwire-tls
token:
  value: s3cret
securityContext:
  privileged: true
`,
		check: func(t *testing.T, r *rendered) {
			c := r.agent()
			if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
				t.Errorf("securityContext.privileged=true renders %+v", sc)
			}
			v := volume(r.ds, "tls")
			if v == nil || v.Secret == nil || v.Secret.SecretName != "podwire-tls" {
				t.Fatalf("TLS volume %+v, want Secret podwire-tls", v)
			}
			keys := map[string]string{}
			for _, it := range v.Secret.Items {
				keys[it.Key] = it.Path
			}
			m := mount(c, "tls")
			if m == nil || !m.ReadOnly {
				t.Fatalf("TLS mount %+v, want read-only", m)
			}
			for _, f := range []string{"tls.crt", "tls.key"} {
				if keys[f] == "" {
					t.Errorf("TLS volume does not project %s: %+v", f, v.Secret.Items)
				}
			}
			for flag, key := range map[string]string{"tls-cert": "tls.crt", "tls-key": "tls.key"} {
				want := "--" + flag + "=" + filepath.Join(m.MountPath, keys[key])
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %s", c.Args, want)
				}
			}
			if r.secret == nil {
				t.Fatal("token.value renders no Secret")
			}
			ref := tokenRef(t, c)
			if ref.Name != r.secret.Name || string(r.secret.Data[ref.Key]) != "s3cret" {
				t.Errorf("PODWIRE_TOKEN from %s/%s; Secret %s holds %q", ref.Name, ref.Key, r.secret.Name, r.secret.Data)
			}
			if r.ds.Spec.Template.Annotations["checksum/token"] == "" {
				t.Errorf("no checksum/token annotation: changing the token would not restart the agents")
			}
			if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--token") }) {
				t.Errorf("the token is on the command line: %q", c.Args)
			}
		},
	},
	{
		name:    "existing-token",
		release: "podwire",
		values: `
token:
  existingSecret: my-token
  key: agent-token
`,
		check: func(t *testing.T, r *rendered) {
			if r.secret != nil {
				t.Errorf("Secret %s rendered with token.existingSecret", r.secret.Name)
			}
			if ref := tokenRef(t, r.agent()); ref.Name != "my-token" || ref.Key != "agent-token" {
				t.Errorf("PODWIRE_TOKEN from %s/%s, want my-token/agent-token", ref.Name, ref.Key)
			}
		},
	},
	{
		name:    "namespaces",
		release: "podwire",
		values: `
captureNamespaces: [shop, payments]
skipNamespaces: [kube-system]
`,
		check: func(t *testing.T, r *rendered) {
			var got []string
			for _, a := range r.agent().Args {
				if strings.HasPrefix(a, "--capture-namespace") || strings.HasPrefix(a, "--skip-namespace") {
					got = append(got, a)
				}
			}
			want := []string{"--capture-namespace=shop", "--capture-namespace=payments", "--skip-namespace=kube-system"}
			if !slices.Equal(got, want) {
				t.Errorf("namespace args %q, want %q", got, want)
			}
		},
	},
	{
		name:    "tuned",
		release: "pw",
		values: `
image:
  repository: registry.example.com/podwire
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
agent:
  listenHost: "::"
  storeBytes: 1Gi
  maxBodyBytes: 65536
  ringBytes: 64Mi
  maxConns: 20000
  idleTimeout: 5m
  skipPorts: [9090, 9100]
  udpPorts: [53, 5353]
  logLevel: debug
  extraArgs: ["--no-redact=false"]
redact:
  headers: [x-api-key, x-auth]
  bodyPatterns:
    - '"password":\s*"[^"]*"'
    - '\d{13,16}'
    - 'secret=\w+'
resources:
  requests: {cpu: 200m, memory: 1280Mi}
  limits: {cpu: "2", memory: 2Gi}
priorityClassName: system-node-critical
nodeSelector:
  kubernetes.io/os: linux
  podwire.io/capture: "true"
updateStrategy:
  type: RollingUpdate
  rollingUpdate:
    maxUnavailable: 10%
podAnnotations:
  example.com/team: platform
`,
		check: func(t *testing.T, r *rendered) {
			c := r.agent()
			if want := "registry.example.com/podwire@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c.Image != want {
				t.Errorf("image %s, want %s", c.Image, want)
			}
			for _, want := range []string{"--listen=[::]:7700", "--store-bytes=1073741824", "--max-body-bytes=65536",
				"--ring-bytes=67108864", "--max-conns=20000", "--idle-timeout=5m", "--skip-port=9090", "--skip-port=9100",
				"--udp-port=53", "--udp-port=5353", "--log-level=debug", "--no-redact=false"} {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %s", c.Args, want)
				}
			}
			// The agent's flag parser splits string-slice values as CSV:
			// patterns with commas and quotes must come through whole.
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			fs.ParseErrorsAllowlist.UnknownFlags = true
			hdrs := fs.StringSlice("redact-header", nil, "")
			body := fs.StringSlice("redact-body", nil, "")
			if err := fs.Parse(c.Args); err != nil {
				t.Fatalf("parsing args %q as the agent does: %v", c.Args, err)
			}
			if want := []string{"x-api-key", "x-auth"}; !slices.Equal(*hdrs, want) {
				t.Errorf("the agent would read --redact-header %q, want %q", *hdrs, want)
			}
			if want := []string{`"password":\s*"[^"]*"`, `\d{13,16}`, `secret=\w+`}; !slices.Equal(*body, want) {
				t.Errorf("the agent would read --redact-body %q, want %q", *body, want)
			}
			spec := r.ds.Spec.Template.Spec
			if spec.PriorityClassName != "system-node-critical" {
				t.Errorf("priorityClassName %q", spec.PriorityClassName)
			}
			if spec.NodeSelector["podwire.io/capture"] != "true" {
				t.Errorf("nodeSelector %v", spec.NodeSelector)
			}
			if ru := r.ds.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "10%" {
				t.Errorf("rollingUpdate %+v, want maxUnavailable 10%%", ru)
			}
			if r.ds.Spec.Template.Annotations["example.com/team"] != "platform" {
				t.Errorf("pod annotations %v", r.ds.Spec.Template.Annotations)
			}
			if q := c.Resources.Limits.Cpu(); q.Cmp(resource.MustParse("2")) != 0 {
				t.Errorf("cpu limit %s, want 2", q)
			}
			if r.ds.Name != "pw-podwire-agent" {
				t.Errorf("DaemonSet of release pw is %s, want pw-podwire-agent", r.ds.Name)
			}
		},
	},
}

// TestFindHelmMissing: without the binaries, the chart tests fail saying
// how to build them.
func TestFindHelmMissing(t *testing.T) {
	t.Setenv(kubetools.EnvBinDir, t.TempDir())
	_, err := findHelm()
	if err == nil || !strings.Contains(err.Error(), "go tool mage kubeTools") {
		t.Fatalf("findHelm with an empty %s: %v, want an error saying to run `go tool mage kubeTools`", kubetools.EnvBinDir, err)
	}
}

// TestChartLint: helm lint (also --strict) passes with every value set, and
// every set renders.
func TestChartLint(t *testing.T) {
	h := newHelm(t)
	for _, strict := range []bool{false, true} {
		args := []string{"lint", chartDir}
		if strict {
			args = append(args, "--strict")
		}
		out, err := h.run(args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			f := h.valuesFile(t, vs)
			if out, err := h.run("lint", chartDir, "--strict", "-f", f, "--namespace", "podwire"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			out := h.template(t, vs, "podwire")
			if !strings.Contains(out, "kind: DaemonSet") {
				t.Errorf("helm template renders no DaemonSet:\n%s", out)
			}
		})
	}
}

// TestChartRejects: values that cannot work fail to render, saying why,
// and the schema refuses values of the wrong type.
func TestChartRejects(t *testing.T) {
	h := newHelm(t)
	for _, c := range []struct {
		name, values, want string
	}{
		{"store beyond memory limit", "agent: {storeBytes: 1Gi}", "resources.limits.memory"},
		{"store and ring beyond memory limit", "agent: {storeBytes: 480Mi, ringBytes: 64Mi}", "must exceed agent.storeBytes"},
		{"tls without secret", "tls: {enabled: true}", "tls.secretName"},
		{"token twice", "token: {value: a, existingSecret: b}", "not both"},
		{"store not a size", "agent: {storeBytes: true}", "/agent/storeBytes"},
		{"store with a bad unit", "agent: {storeBytes: 256MB}", "/agent/storeBytes"},
		{"namespaces not a list", "captureNamespaces: shop", "/captureNamespaces"},
		{"namespace not a name", "skipNamespaces: [Kube_System]", "/skipNamespaces/0"},
		{"unknown value", "captureNamespace: [shop]", "'captureNamespace' not allowed"},
		{"privileged not a bool", "securityContext: {privileged: \"yes\"}", "/securityContext/privileged"},
		{"log level", "agent: {logLevel: verbose}", "/agent/logLevel"},
		{"port", "agent: {port: 70000}", "/agent/port"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := h.valuesFile(t, valueSet{name: "bad", values: c.values})
			out, err := h.run("template", "podwire", chartDir, "--namespace", "podwire", "-f", f)
			if err == nil {
				t.Fatalf("helm template with %q rendered:\n%s", c.values, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template with %q failed without naming %q: %v", c.values, c.want, err)
			}
		})
	}
}

// TestChartManifests: what users rely on, read from the rendered objects.
func TestChartManifests(t *testing.T) {
	h := newHelm(t)
	known := agentFlags(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			const ns = "monitoring"
			r := parse(t, h.template(t, vs, ns))
			r.appVersion, r.chartVersion = chartVersions(t)
			checkCommon(t, r, vs.release, ns, known)
			if vs.check != nil {
				vs.check(t, r)
			}
		})
	}
}

// TestChartOnAPIServer: every value set's objects pass a server-side dry
// run on a real kube-apiserver (helm's, and a strict server-side apply of
// each object); a real install gives the agent's service account what its
// informers need and nothing more; upgrade and uninstall work.
func TestChartOnAPIServer(t *testing.T) {
	h := newHelm(t)
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(c.Client.Discovery())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	// dryRunApply applies u server-side with dryRun=All and strict field
	// validation: the API server validates and admits it, stores nothing.
	dryRunApply := func(u *unstructured.Unstructured) error {
		m, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		if err != nil {
			return fmt.Errorf("%s: %w", u.GetKind(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		body, err := u.MarshalJSON()
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: "podwire-chart-test", FieldValidation: "Strict", Force: new(true),
			DryRun: []string{metav1.DryRunAll}}
		_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts)
		return err
	}

	for _, vs := range valueSets {
		t.Run("dry-run/"+vs.name, func(t *testing.T) {
			ns := "pw-" + vs.name
			createNamespace(ctx, t, c.Client, ns)
			r := parse(t, h.template(t, vs, ns))
			f := h.valuesFile(t, vs)
			out, err := h.run("install", vs.release, chartDir, "--namespace", ns, "-f", f,
				"--dry-run=server", "--kubeconfig", c.Kubeconfig)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// The notes say how to reach an agent and name the headless Service.
			name := r.ds.Name
			for _, want := range []string{
				"kubectl -n " + ns + " port-forward ds/" + name + " 7700:7700",
				"podwire status --agent 127.0.0.1:7700",
				"podwire tap --agent 127.0.0.1:7700",
				r.svc.Name + "." + ns + ".svc.cluster.local:7700",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("install notes lack %q:\n%s", want, out)
				}
			}
			// helm's server dry run does not send the objects; apply each
			// one with dryRun=All so the API server validates and admits it.
			for _, u := range r.raw {
				if err := dryRunApply(u); err != nil {
					t.Errorf("server-side dry-run apply of %s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
		})
	}

	t.Run("dry-run rejects invalid objects", func(t *testing.T) {
		// The dry run above would catch an invalid object: one the schema
		// lets through (not a valid priority class name) is refused.
		ns := "pw-invalid"
		createNamespace(ctx, t, c.Client, ns)
		r := parse(t, h.template(t, valueSet{name: "invalid", release: "podwire", values: "priorityClassName: Not_A_Name"}, ns))
		err := dryRunApply(r.rawDaemonSet(t))
		if !apierrors.IsInvalid(err) {
			t.Fatalf("dry-run apply of a DaemonSet with an invalid priorityClassName: %v, want Invalid", err)
		}
	})

	t.Run("install", func(t *testing.T) {
		const ns = "podwire"
		createNamespace(ctx, t, c.Client, ns)
		if out, err := h.run("install", "podwire", chartDir, "--namespace", ns, "--kubeconfig", c.Kubeconfig); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		ds, err := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "podwire-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("DaemonSet after install: %v", err)
		}
		svc, err := c.Client.CoreV1().Services(ns).Get(ctx, "podwire-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Service after install: %v", err)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service has ClusterIP %q, want None (headless)", svc.Spec.ClusterIP)
		}
		sa := ds.Spec.Template.Spec.ServiceAccountName
		checkAgentAccess(ctx, t, c, ns, sa)

		// An upgrade to TLS, a token and privileged keeps the release.
		f := h.valuesFile(t, valueSets[1])
		if out, err := h.run("upgrade", "podwire", chartDir, "--namespace", ns, "-f", f, "--kubeconfig", c.Kubeconfig); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		ds, err = c.Client.AppsV1().DaemonSets(ns).Get(ctx, "podwire-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sc := ds.Spec.Template.Spec.Containers[0].SecurityContext; sc.Privileged == nil || !*sc.Privileged {
			t.Errorf("after the upgrade the agent is not privileged: %+v", sc)
		}
		sec, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "podwire-token", metav1.GetOptions{})
		if err != nil || string(sec.Data["token"]) != "s3cret" {
			t.Errorf("token Secret after the upgrade: %v %v", err, sec)
		}

		if out, err := h.run("uninstall", "podwire", "--namespace", ns, "--kubeconfig", c.Kubeconfig); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := c.Client.RbacV1().ClusterRoles().Get(ctx, "podwire-agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole after uninstall: %v, want NotFound", err)
		}
		if _, err := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "podwire-agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("DaemonSet after uninstall: %v, want NotFound", err)
		}
	})
}

// checkAgentAccess: the installed service account can do exactly what the
// agent's informers need, asked of the real RBAC authorizer, and the
// agent's own Kubernetes watcher syncs with its token.
func checkAgentAccess(ctx context.Context, t *testing.T, c *kubetest.Cluster, ns, sa string) {
	user := "system:serviceaccount:" + ns + ":" + sa
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	allowed := func(verb, group, res, sub string) bool {
		var resp *authorizationv1.SubjectAccessReview
		err := kubetest.Retry(ctx, func() (err error) {
			resp, err = c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups,
					ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: res, Subresource: sub}},
			}, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		return resp.Status.Allowed
	}
	// Cluster-wide (no namespace), as the informers list and watch. Bindings
	// reach the authorizer's cache within moments.
	deadline := time.Now().Add(30 * time.Second)
	for !allowed("list", "", "pods", "") {
		if time.Now().After(deadline) {
			t.Fatalf("%s may not list pods after install", user)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resources := append(slices.Clone(readGrants), "/secrets", "/configmaps", "/pods/exec", "/pods/log", "/events",
		"/nodes/proxy", "/services/proxy", "apps/daemonsets", "apps/deployments", "rbac.authorization.k8s.io/clusterroles")
	for _, gr := range resources {
		group, res, _ := strings.Cut(gr, "/")
		res, sub, _ := strings.Cut(res, "/")
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "impersonate"} {
			want := sub == "" && slices.Contains(readGrants, group+"/"+res) && slices.Contains(readVerbs, verb)
			if got := allowed(verb, group, res, sub); got != want {
				t.Errorf("%s may %s %s (group %q, subresource %q): %v, want %v", user, verb, res, group, sub, got, want)
			}
		}
	}

	// The agent's watcher (informers on everything it reads) syncs with the
	// service account's token.
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", user, err)
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = tr.Status.Token
	w, err := kube.Watch(cfg, kube.Config{Node: "node-a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if !w.WaitSynced(60 * time.Second) {
		t.Errorf("the agent's watcher did not sync in 60s with %s's token (forbidden somewhere?)", user)
	}
}

func createNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	err := kubetest.Retry(ctx, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		return err
	})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// checkCommon checks what every value set renders.
func checkCommon(t *testing.T, r *rendered, release, ns string, knownFlags map[string]bool) {
	t.Helper()
	if r.ds == nil || r.sa == nil || r.role == nil || r.binding == nil || r.svc == nil {
		t.Fatalf("want a DaemonSet, ServiceAccount, ClusterRole, ClusterRoleBinding and Service; got %v", r.kinds)
	}

	// Standard labels on everything; namespaced objects in the release's namespace.
	for _, u := range r.raw {
		l := u.GetLabels()
		want := map[string]string{
			"app.kubernetes.io/name":       "podwire",
			"app.kubernetes.io/instance":   release,
			"app.kubernetes.io/version":    r.appVersion,
			"app.kubernetes.io/managed-by": "Helm",
			"helm.sh/chart":                "podwire-" + r.chartVersion,
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s %s: label %s=%q, want %q", u.GetKind(), u.GetName(), k, l[k], v)
			}
		}
		switch u.GetKind() {
		case "ClusterRole", "ClusterRoleBinding":
			if u.GetNamespace() != "" {
				t.Errorf("%s %s has namespace %s", u.GetKind(), u.GetName(), u.GetNamespace())
			}
		default:
			if u.GetNamespace() != ns {
				t.Errorf("%s %s: namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), ns)
			}
		}
	}

	ds, spec := r.ds, &r.ds.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("DaemonSet selector %v does not select its pods %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}
	if !spec.HostPID {
		t.Error("hostPID is false")
	}
	if spec.HostNetwork {
		t.Error("hostNetwork is true")
	}
	if spec.ServiceAccountName != r.sa.Name {
		t.Errorf("pods run as %q, the chart's ServiceAccount is %q", spec.ServiceAccountName, r.sa.Name)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		t.Error("the service account token is not mounted: the agent cannot reach the API server")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("tolerations %+v do not tolerate every taint (operator: Exists)", spec.Tolerations)
	}
	if s := ds.Spec.UpdateStrategy; s.Type != appsv1.RollingUpdateDaemonSetStrategyType || s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable == nil {
		t.Errorf("updateStrategy %+v, want RollingUpdate with maxUnavailable", s)
	}

	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := &spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/podwire", "agent"}) {
		t.Errorf("command %q, want [/podwire agent]", c.Command)
	}
	// Node name from the downward API.
	if e := env(c, "NODE_NAME"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is %+v, want the downward API's spec.nodeName", e)
	}
	if !slices.Contains(c.Args, "--node-name=$(NODE_NAME)") {
		t.Errorf("args %q lack --node-name=$(NODE_NAME)", c.Args)
	}
	// Every rendered flag is one the agent has.
	for _, a := range c.Args {
		name, ok := strings.CutPrefix(a, "--")
		name, _, _ = strings.Cut(name, "=")
		switch {
		case !ok:
			t.Errorf("argument %q is not a flag", a)
		case knownFlags[name]:
		default:
			t.Errorf("--%s is not a flag of `podwire agent`", name)
		}
	}
	listen := argValue(c.Args, "listen")
	_, portStr, _ := strings.Cut(listen[strings.LastIndex(listen, "]")+1:], ":")
	if listen == "" || portStr != "7700" {
		t.Errorf("--listen=%s, want port 7700 on all addresses", listen)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "grpc" || c.Ports[0].ContainerPort != 7700 {
		t.Errorf("ports %+v, want grpc 7700", c.Ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		var port int32
		switch {
		case p == nil:
			t.Errorf("no %s probe", name)
			continue
		case p.GRPC != nil:
			port = p.GRPC.Port
		case p.TCPSocket != nil:
			port = resolvePort(c, p.TCPSocket.Port)
		default:
			t.Errorf("%s probe %+v is neither grpc nor tcpSocket", name, p)
		}
		if port != 7700 {
			t.Errorf("%s probe checks port %d, want 7700", name, port)
		}
	}

	// Memory: the limit holds the store and the ring buffer.
	store, err1 := strconv.ParseInt(argValue(c.Args, "store-bytes"), 10, 64)
	ring, err2 := strconv.ParseInt(argValue(c.Args, "ring-bytes"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Errorf("--store-bytes / --ring-bytes: %v", err)
	}
	lim, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Error("no memory limit")
	} else if lim.Value() <= store+ring {
		t.Errorf("memory limit %s does not exceed store %d + ring %d bytes", lim.String(), store, ring)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		t.Error("no memory request")
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("no CPU request")
	}

	// Security: root with exactly the capabilities needed, or privileged.
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil {
		t.Fatalf("securityContext %+v does not say privileged or not", sc)
	}
	if !*sc.Privileged {
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("capabilities %+v do not drop ALL", sc.Capabilities)
		} else {
			var add []string
			for _, c := range sc.Capabilities.Add {
				add = append(add, string(c))
			}
			sort.Strings(add)
			want := slices.Sorted(slices.Values(capabilities))
			if !slices.Equal(add, want) {
				t.Errorf("capabilities added %q, want exactly %q", add, want)
			}
		}
	}

	// Host mounts: where the agent expects them, from the host's folders.
	for path, want := range map[string]struct {
		host string
		ro   bool
	}{
		"/sys/fs/cgroup":      {"/sys/fs/cgroup", false},
		"/sys/fs/bpf":         {"/sys/fs/bpf", false},
		"/sys/kernel/tracing": {"/sys/kernel/tracing", false},
		"/host/proc":          {"/proc", true},
	} {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path })
		if i < 0 {
			t.Errorf("nothing mounted at %s", path)
			continue
		}
		m := c.VolumeMounts[i]
		v := volume(ds, m.Name)
		if v == nil || v.HostPath == nil || v.HostPath.Path != want.host {
			t.Errorf("%s is mounted from %+v, want hostPath %s", path, v, want.host)
		}
		if want.ro && !m.ReadOnly {
			t.Errorf("%s is mounted read-write", path)
		}
	}

	// RBAC: get, list and watch on the informers' resources, nothing else.
	var grants []string
	for _, rule := range r.role.Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %+v has resourceNames or nonResourceURLs", rule)
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					grants = append(grants, v+" "+g+"/"+res)
				}
			}
		}
	}
	var want []string
	for _, gr := range readGrants {
		for _, v := range readVerbs {
			want = append(want, v+" "+gr)
		}
	}
	sort.Strings(grants)
	sort.Strings(want)
	if !slices.Equal(grants, want) {
		t.Errorf("ClusterRole grants\n  %s\nwant exactly\n  %s", strings.Join(grants, "\n  "), strings.Join(want, "\n  "))
	}
	b := r.binding
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != r.role.Name || b.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("ClusterRoleBinding refers to %+v, want ClusterRole %s", b.RoleRef, r.role.Name)
	}
	if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != r.sa.Name || b.Subjects[0].Namespace != ns {
		t.Errorf("ClusterRoleBinding subjects %+v, want ServiceAccount %s/%s", b.Subjects, ns, r.sa.Name)
	}

	// Headless Service over the ready agents.
	s := r.svc
	if s.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service clusterIP %q, want None", s.Spec.ClusterIP)
	}
	if s.Spec.PublishNotReadyAddresses {
		t.Error("Service publishes agents that are not ready")
	}
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the agents %v", s.Spec.Selector, ds.Spec.Template.Labels)
	}
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "grpc" || s.Spec.Ports[0].Port != 7700 || resolvePort(c, s.Spec.Ports[0].TargetPort) != 7700 {
		t.Errorf("Service ports %+v, want grpc 7700 to the agents' 7700", s.Spec.Ports)
	}
}

// rendered holds the objects of one rendering.
type rendered struct {
	raw                      []*unstructured.Unstructured
	kinds                    []string
	ds                       *appsv1.DaemonSet
	sa                       *corev1.ServiceAccount
	role                     *rbacv1.ClusterRole
	binding                  *rbacv1.ClusterRoleBinding
	svc                      *corev1.Service
	secret                   *corev1.Secret
	appVersion, chartVersion string
}

func (r *rendered) agent() *corev1.Container { return &r.ds.Spec.Template.Spec.Containers[0] }

func (r *rendered) rawDaemonSet(t *testing.T) *unstructured.Unstructured {
	for _, u := range r.raw {
		if u.GetKind() == "DaemonSet" {
			return u
		}
	}
	t.Fatal("no DaemonSet rendered")
	return nil
}

// parse reads helm template's output strictly (unknown or duplicate fields
// are errors) into typed objects.
func parse(t *testing.T, manifests string) *rendered {
	t.Helper()
	codecs := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	dec := codecs.UniversalDeserializer()
	r := &rendered{}
	rd := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	one := func(kind string, have bool) {
		if have {
			t.Errorf("more than one %s rendered", kind)
		}
	}
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading rendered YAML: %v", err)
		}
		js, err := k8syaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			continue // only comments
		}
		obj, gvk, err := dec.Decode(js, nil, nil)
		if err != nil {
			t.Fatalf("decoding a rendered object strictly: %v\n%s", err, doc)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatal(err)
		}
		r.raw = append(r.raw, u)
		r.kinds = append(r.kinds, gvk.Kind+" "+u.GetName())
		switch o := obj.(type) {
		case *appsv1.DaemonSet:
			one(gvk.Kind, r.ds != nil)
			r.ds = o
		case *corev1.ServiceAccount:
			one(gvk.Kind, r.sa != nil)
			r.sa = o
		case *rbacv1.ClusterRole:
			one(gvk.Kind, r.role != nil)
			r.role = o
		case *rbacv1.ClusterRoleBinding:
			one(gvk.Kind, r.binding != nil)
			r.binding = o
		case *corev1.Service:
			one(gvk.Kind, r.svc != nil)
			r.svc = o
		case *corev1.Secret:
			one(gvk.Kind, r.secret != nil)
			r.secret = o
		default:
			t.Errorf("unexpected %s rendered", gvk)
		}
	}
	if r.ds == nil {
		t.Fatalf("no DaemonSet rendered; got %v", r.kinds)
	}
	return r
}

func chartVersions(t *testing.T) (appVersion, version string) {
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := k8syaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	return c.AppVersion, c.Version
}

func env(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func tokenRef(t *testing.T, c *corev1.Container) *corev1.SecretKeySelector {
	t.Helper()
	e := env(c, "PODWIRE_TOKEN")
	if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.Value != "" {
		t.Fatalf("PODWIRE_TOKEN is %+v, want it from a Secret (secretKeyRef)", e)
	}
	return e.ValueFrom.SecretKeyRef
}

func volume(ds *appsv1.DaemonSet, name string) *corev1.Volume {
	for i, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &ds.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func mount(c *corev1.Container, name string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// argValue is the value of the last --name=value in args.
func argValue(args []string, name string) string {
	v := ""
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = s
		}
	}
	return v
}

// resolvePort turns a port number or a container port's name into a number.
func resolvePort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

var flagName = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)`)

// agentFlags builds the podwire binary and reads the flags of `podwire
// agent --help`, so the chart never renders a flag the agent lacks.
func agentFlags(t *testing.T) map[string]bool {
	t.Helper()
	root, err := kubetools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to build podwire for its agent flags: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "podwire")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/podwire")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building podwire: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "agent", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("podwire agent --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range flagName.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	for _, f := range []string{"listen", "node-name", "store-bytes", "ring-bytes", "max-body-bytes", "redact-body", "tls-cert"} {
		if !flags[f] {
			t.Fatalf("podwire agent --help does not list --%s; did its format change?\n%s", f, out)
		}
	}
	return flags
}

// helm runs the helm that `go tool mage kubeTools` builds, with its own
// config, cache and data folders and no ambient kubeconfig.
type helm struct {
	bin  string
	home string
}

// findHelm finds the helm binary; the error says how to build it.
func findHelm() (string, error) {
	dir, err := kubetools.Find()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, kubetools.Helm), nil
}

func newHelm(t *testing.T) *helm {
	t.Helper()
	bin, err := findHelm()
	if err != nil {
		t.Fatalf("the chart tests need helm: %v", err)
	}
	return &helm{bin: bin, home: t.TempDir()}
}

// run runs helm from this package's folder and returns its standard
// output; an error carries its standard error.
func (h *helm) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KUBECONFIG=") && !strings.HasPrefix(e, "HELM_") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env,
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
		"KUBECONFIG="+filepath.Join(h.home, "no-kubeconfig"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes vs's values to a file and returns its path.
func (h *helm) valuesFile(t *testing.T, vs valueSet) string {
	t.Helper()
	f, err := os.CreateTemp(h.home, "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(vs.values); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// template renders vs into namespace ns and returns the manifests.
func (h *helm) template(t *testing.T, vs valueSet, ns string) string {
	t.Helper()
	release := vs.release
	if release == "" {
		release = "podwire"
	}
	out, err := h.run("template", release, chartDir, "--namespace", ns, "-f", h.valuesFile(t, vs))
	if err != nil {
		t.Fatalf("rendering %s: %v", vs.name, err)
	}
	return out
}
