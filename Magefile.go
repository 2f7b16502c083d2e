//go:build mage

// Build, test and demo tasks for Podwire. Run `go tool mage -l` for the list.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	"github.com/podwire/podwire/internal/kubetest/kubetools"
)

// Default target when none is named.
var Default = Build

// debPackages are the Debian packages that building, generating and testing
// need: the BPF toolchain, protoc, and the real peers tests talk to.
var debPackages = []string{
	"clang", "llvm", "libbpf-dev", "bpftool", "protobuf-compiler",
	"curl", "nginx-light", "wrk", "iproute2", "python3", "procps",
	"redis-server", "redis-tools", "bind9-dnsutils", "bc", "nghttp2-client",
	"chromium",
}

// Deps installs the Debian packages builds and tests need (only those missing).
func Deps() error {
	var missing []string
	for _, p := range debPackages {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing Debian packages %v: install them as root (apt-get install %s)", missing, strings.Join(missing, " "))
	}
	fmt.Println("installing", strings.Join(missing, " "))
	env := map[string]string{"DEBIAN_FRONTEND": "noninteractive"}
	if err := sh.RunWith(env, "apt-get", "update", "-qq"); err != nil {
		return err
	}
	return sh.RunWith(env, "apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
}

// Build builds bin/podwire and the Grafana plugin into dist/ (backend
// executables for linux amd64 and arm64, frontend and plugin.json).
func Build() error {
	if err := sh.RunV("go", "build", "-o", "bin/podwire", "./cmd/podwire"); err != nil {
		return err
	}
	if err := BuildBackend(); err != nil {
		return err
	}
	return BuildFrontend()
}

// pluginExecutable is plugin.json's "executable": Grafana starts
// dist/<executable>_<os>_<arch>.
const pluginExecutable = "gpx_podwire"

// pluginArchs are the platforms the plugin's backend is built for.
var pluginArchs = []string{"amd64", "arm64"}

// BuildBackend builds the plugin's backend executables into dist/.
func BuildBackend() error {
	version, err := sh.Output("git", "describe", "--tags", "--always", "--dirty")
	if err != nil || version == "" {
		version = "dev"
	}
	for _, arch := range pluginArchs {
		out := filepath.Join("dist", fmt.Sprintf("%s_linux_%s", pluginExecutable, arch))
		env := map[string]string{"GOOS": "linux", "GOARCH": arch, "CGO_ENABLED": "0"}
		if err := sh.RunWithV(env, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, "./pkg"); err != nil {
			return err
		}
	}
	return sh.Copy(filepath.Join("dist", "plugin.json"), "plugin.json")
}

// Generate regenerates the BPF objects (bpf2go) and the gRPC code (protoc) in place.
func Generate() error {
	mg.Deps(Deps)
	return generate(".")
}

// Vmlinux rewrites bpf/vmlinux.h from the running kernel's BTF (an input, kept as committed).
func Vmlinux() error {
	mg.Deps(Deps)
	out, err := exec.Command("bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c").Output()
	if err != nil {
		return fmt.Errorf("dumping BTF: %w", err)
	}
	return os.WriteFile("bpf/vmlinux.h", out, 0o644)
}

// generated lists the committed generated files, relative to the root.
var generated = []string{
	"agent/capture/capture_bpfel.go",
	"agent/capture/capture_bpfel.o",
	"proto/podwire/v1/podwire.pb.go",
	"proto/podwire/v1/podwire_grpc.pb.go",
}

// generate writes the generated files under root (a copy of the tree's
// layout: root/agent/capture, root/proto/...).
func generate(root string) error {
	capDir := filepath.Join(root, "agent/capture")
	if err := os.MkdirAll(capDir, 0o755); err != nil {
		return err
	}
	abs, _ := filepath.Abs(capDir)
	// Same command line as the go:generate line in agent/capture/gen.go, run
	// from that folder so the paths recorded in BTF are the same.
	cmd := exec.Command("go", "tool", "bpf2go", "-cc", "clang", "-cflags", "-O2 -g -Wall -Werror",
		"-target", "bpfel", "-type", "podwire_pkt", "-type", "podwire_counter_set", "-output-dir", abs,
		"capture", "../../bpf/capture.c", "--", "-I../../bpf")
	cmd.Dir = "agent/capture"
	cmd.Env = append(os.Environ(), "GOPACKAGE=capture")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bpf2go: %w", err)
	}

	bin, err := filepath.Abs(".bin")
	if err != nil {
		return err
	}
	for _, tool := range []string{"google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc"} {
		if err := sh.Run("go", "build", "-o", filepath.Join(bin, filepath.Base(tool)), tool); err != nil {
			return err
		}
	}
	protoOut := filepath.Join(root, "proto")
	if err := os.MkdirAll(protoOut, 0o755); err != nil {
		return err
	}
	return sh.RunV("protoc",
		"--plugin=protoc-gen-go="+filepath.Join(bin, "protoc-gen-go"),
		"--plugin=protoc-gen-go-grpc="+filepath.Join(bin, "protoc-gen-go-grpc"),
		"-I", "proto",
		"--go_out="+protoOut, "--go_opt=paths=source_relative",
		"--go-grpc_out="+protoOut, "--go-grpc_opt=paths=source_relative",
		"proto/podwire/v1/podwire.proto")
}

// CheckGenerated fails when the committed generated files differ from what Generate writes.
func CheckGenerated() error {
	mg.Deps(Deps)
	tmp, err := os.MkdirTemp("", "podwire-gen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := generate(tmp); err != nil {
		return err
	}
	var stale []string
	for _, f := range generated {
		want, err := os.ReadFile(filepath.Join(tmp, f))
		if err != nil {
			return fmt.Errorf("generated %s: %w", f, err)
		}
		have, err := os.ReadFile(f)
		if err != nil || !bytes.Equal(want, have) {
			stale = append(stale, f)
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("generated files are stale, run `go tool mage generate` and commit: %s", strings.Join(stale, ", "))
	}
	fmt.Println("generated files are current")
	return nil
}

// Vet runs gofmt and go vet.
func Vet() error {
	dirs := []string{"-l"}
	for _, d := range []string{"agent", "cmd", "pkg", "proto", "internal", "deploy", "tools"} {
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, d)
		}
	}
	out, err := sh.Output("gofmt", dirs...)
	if err != nil {
		return err
	}
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasSuffix(l, ".pb.go") && !strings.HasSuffix(l, "_bpfel.go") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("gofmt would change: %s", strings.Join(bad, " "))
	}
	return sh.RunV("go", "vet", "./...")
}

// Test installs what is missing, checks generated code, vets, runs every test (privileged ones as root) and each fuzz target briefly.
func Test() error {
	mg.SerialDeps(Deps, KubeTools, CheckGenerated, Vet)
	if os.Geteuid() != 0 {
		fmt.Println("not root: privileged tests (real eBPF capture) will skip")
	}
	if err := FrontendCheck(); err != nil {
		return err
	}
	if err := sh.RunV("go", "test", "-count=1", "-timeout", "30m", "./..."); err != nil {
		return err
	}
	return Fuzz()
}

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)

// Fuzz runs every fuzz target for FUZZTIME (default 30s) each.
func Fuzz() error {
	fuzztime := os.Getenv("FUZZTIME")
	if fuzztime == "" {
		fuzztime = "30s"
	}
	targets := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range fuzzFunc.FindAllSubmatch(src, -1) {
			dir := "./" + filepath.Dir(path)
			targets[dir] = append(targets[dir], string(m[1]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	dirs := make([]string, 0, len(targets))
	for d := range targets {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	var failed []string
	for _, d := range dirs {
		for _, t := range targets[d] {
			fmt.Printf("fuzzing %s %s for %s\n", d, t, fuzztime)
			if err := sh.RunV("go", "test", "-run=^$", "-fuzz=^"+t+"$", "-fuzztime="+fuzztime, "-parallel="+fmt.Sprint(runtime.NumCPU()), d); err != nil {
				failed = append(failed, d+" "+t)
			}
		}
	}
	if len(failed) > 0 {
		return errors.New("fuzz targets failed: " + strings.Join(failed, ", "))
	}
	return nil
}

// Bench runs the Go benchmarks of the data path (dissectors, reassembly, filter, store).
func Bench() error {
	return sh.RunV("go", "test", "-run=^$", "-bench=.", "-benchmem", "-count=1",
		"./agent/dissect/...", "./agent/tcp", "./agent/filter", "./agent/store")
}

// Demo runs the agent with a small demo workload and shows live traffic (PODWIRE_DEMO_DURATION=30s to stop by itself).
func Demo() error {
	mg.Deps(Build)
	if os.Geteuid() != 0 {
		return errors.New("the demo loads eBPF programs: run it as root")
	}
	args := []string{"demo"}
	if d := os.Getenv("PODWIRE_DEMO_DURATION"); d != "" {
		args = append(args, "--duration", d)
	}
	cmd := exec.Command("bin/podwire", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// BenchLoad measures the agent end to end: wrk against nginx on loopback without and with capture (root; WRK_DURATION, default 10s).
func BenchLoad() error {
	mg.Deps(Deps, Build)
	d := os.Getenv("WRK_DURATION")
	if d == "" {
		d = "10s"
	}
	return sh.RunV("go", "run", "./internal/loadrun", "-duration", d)
}

// BenchRedis runs redis-benchmark -P 16 with and without the agent and counts lost entries (root; REDIS_N requests per test, default 100000).
func BenchRedis() error {
	mg.Deps(Deps, Build)
	n := os.Getenv("REDIS_N")
	if n == "" {
		n = "100000"
	}
	return sh.RunV("internal/loadrun/redis-bench.sh", "bin/podwire", n)
}

// KubeTools builds the real kube-apiserver, etcd and helm that tests use into .bin/kube (from tools/; rebuilt only when tools/go.sum changes).
func KubeTools() error {
	t0 := time.Now()
	built, err := kubetools.Build(".", func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
	if err != nil {
		return err
	}
	if built {
		fmt.Printf("kube tools built in %s\n", time.Since(t0).Round(time.Second))
	}
	return nil
}

// clusterDir holds the state, data, logs and kubeconfig of the cluster that Cluster starts.
const clusterDir = ".bin/cluster"

// Cluster starts a real etcd + kube-apiserver in the background and prints an admin kubeconfig (stop it with clusterDown).
func Cluster() error {
	mg.Deps(KubeTools)
	return sh.RunV("go", "run", "./internal/kubetest/kubecluster", "up", clusterDir)
}

// ClusterDown stops the cluster that Cluster started and removes .bin/cluster.
func ClusterDown() error {
	return sh.RunV("go", "run", "./internal/kubetest/kubecluster", "down", clusterDir)
}
