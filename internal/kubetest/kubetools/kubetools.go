// Package kubetools builds and finds the real Kubernetes binaries that tests
// use: kube-apiserver, etcd and helm, built from the separate Go module in
// tools/ into .bin/kube/. A build is kept until the tools module's inputs
// (go.mod, go.sum, its own main packages) change: their hash is written to
// .bin/kube/stamp after a successful build.
//
// It depends on nothing but the standard library so Magefile.go can use it
// without compiling client-go into mage.
package kubetools

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Binaries built into Dir.
const (
	APIServer = "kube-apiserver"
	Etcd      = "etcd"
	Helm      = "helm"
)

// Versions the tools module builds (see tools/go.mod); they are also stamped
// into the binaries so they report them.
const (
	KubeVersion = "v1.37.2"
	HelmVersion = "v4.3.1"
)

// packages maps each binary to the package in tools/ that builds it.
var packages = map[string]string{
	APIServer: "k8s.io/kubernetes/cmd/kube-apiserver",
	Etcd:      "./etcd",
	Helm:      "helm.sh/helm/v4/cmd/helm",
}

const rootModule = "module github.com/podwire/podwire\n"

// EnvBinDir names an environment variable that, when set, overrides where
// the binaries are looked for (a folder holding kube-apiserver, etcd, helm).
const EnvBinDir = "PODWIRE_KUBE_BIN"

// RepoRoot finds the root of the podwire repository: the nearest folder at or
// above the working directory whose go.mod is the root module's.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte(rootModule)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetools: not inside the podwire repository (no go.mod of github.com/podwire/podwire above the working directory)")
		}
		dir = parent
	}
}

// Dir is where the binaries are built: root/.bin/kube.
func Dir(root string) string { return filepath.Join(root, ".bin", "kube") }

// Stamp hashes the inputs of the tools module under root/tools: go.mod,
// go.sum and its Go files, plus the build flags. Binaries built from other
// inputs are stale.
func Stamp(root string) (string, error) {
	toolsDir := filepath.Join(root, "tools")
	var files []string
	err := filepath.WalkDir(toolsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if n := d.Name(); n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("kubetools: reading %s: %w", toolsDir, err)
	}
	sort.Strings(files)
	h := sha256.New()
	fmt.Fprintf(h, "flags %q\n", buildFlags())
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(toolsDir, f)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func buildFlags() []string {
	ld := strings.Join([]string{
		"-s", "-w",
		"-X", "k8s.io/component-base/version.gitMajor=1",
		"-X", "k8s.io/component-base/version.gitMinor=37",
		"-X", "k8s.io/component-base/version.gitVersion=" + KubeVersion,
		"-X", "k8s.io/component-base/version.gitTreeState=clean",
		"-X", "helm.sh/helm/v4/internal/version.version=" + HelmVersion,
	}, " ")
	return []string{"-trimpath", "-ldflags=" + ld}
}

// ErrMissing is wrapped by Find's error when the binaries are not built or
// are stale.
var ErrMissing = errors.New("Kubernetes test binaries are missing or stale: run `go tool mage kubeTools` (`go tool mage test` builds them first)")

// Find returns the folder holding current kube-apiserver, etcd and helm
// binaries: $PODWIRE_KUBE_BIN when set (taken as is), else root/.bin/kube
// when its stamp matches the tools module. The error wraps ErrMissing and
// says how to build them.
func Find() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		return d, CheckDir(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrMissing, err)
	}
	dir := Dir(root)
	if err := CheckDir(dir); err != nil {
		return "", err
	}
	if !Current(root) {
		return "", fmt.Errorf("%w: %s was built from another tools/go.sum", ErrMissing, dir)
	}
	return dir, nil
}

// CheckDir reports whether dir holds the three binaries.
func CheckDir(dir string) error {
	var missing []string
	for _, b := range []string{APIServer, Etcd, Helm} {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no %s in %s", ErrMissing, strings.Join(missing, ", "), dir)
	}
	return nil
}

// Current reports whether root/.bin/kube holds binaries built from the
// tools module as it is now.
func Current(root string) bool {
	want, err := Stamp(root)
	if err != nil {
		return false
	}
	have, err := os.ReadFile(filepath.Join(Dir(root), "stamp"))
	return err == nil && strings.TrimSpace(string(have)) == want && CheckDir(Dir(root)) == nil
}

// Build builds the binaries into root/.bin/kube unless they are current.
// It reports whether it built anything. Progress goes to log (may be nil).
func Build(root string, log func(format string, args ...any)) (built bool, err error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	if root, err = filepath.Abs(root); err != nil {
		return false, err
	}
	if Current(root) {
		return false, nil
	}
	stamp, err := Stamp(root)
	if err != nil {
		return false, err
	}
	dir := Dir(root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	// A build that stops half way leaves no stamp, so the next one starts over.
	if err := os.Remove(filepath.Join(dir, "stamp")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	log("building kube-apiserver %s, etcd and helm %s into %s (the first build takes 10-30 minutes on 2 cores)", KubeVersion, HelmVersion, dir)
	args := append([]string{"build"}, buildFlags()...)
	args = append(args, "-o", dir+string(filepath.Separator))
	for _, b := range []string{APIServer, Etcd, Helm} {
		args = append(args, packages[b])
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, "tools")
	// The tools module stands alone: never a workspace, never vendoring.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("building the kube tools (go %s in tools/): %w", strings.Join(args, " "), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stamp"), []byte(stamp+"\n"), 0o644); err != nil {
		return false, err
	}
	return true, nil
}
