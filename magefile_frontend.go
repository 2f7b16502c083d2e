//go:build mage

package main

import (
	"archive/zip"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"
)

// pluginID is plugin.json's "id": the folder Grafana expects the plugin in.
const pluginID = "podwire-traffic-datasource"

// FrontendDeps installs the frontend's npm packages (npm ci), only when
// node_modules is missing or older than package-lock.json.
func FrontendDeps() error {
	if _, err := exec.LookPath("npm"); err != nil {
		return errors.New("npm not found: install Node.js 20 or later (see .nvmrc) to build the plugin's frontend")
	}
	lock, err := os.Stat("package-lock.json")
	if err != nil {
		return fmt.Errorf("reading package-lock.json: %w", err)
	}
	// npm ci writes node_modules/.package-lock.json last.
	if installed, err := os.Stat(filepath.Join("node_modules", ".package-lock.json")); err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return nil
	}
	return sh.RunV("npm", "ci", "--no-audit", "--no-fund")
}

// BuildFrontend builds the plugin's frontend into dist/ (module.js as AMD, plugin.json, img/, README.md).
func BuildFrontend() error {
	mg.Deps(FrontendDeps)
	return sh.RunV("npm", "run", "--silent", "build")
}

// FrontendCheck typechecks and lints the frontend and runs its unit tests.
func FrontendCheck() error {
	mg.Deps(FrontendDeps)
	for _, script := range []string{"typecheck", "lint", "test"} {
		if err := sh.RunV("npm", "run", "--silent", script); err != nil {
			return fmt.Errorf("npm run %s: %w", script, err)
		}
	}
	return nil
}

// Package builds everything and writes dist-pkg/podwire-traffic-datasource-<version>.zip (Grafana's layout) and its .sha1.
func Package() error {
	mg.SerialDeps(Build)
	var meta struct {
		ID   string `json:"id"`
		Info struct {
			Version string `json:"version"`
		} `json:"info"`
	}
	raw, err := os.ReadFile("plugin.json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return fmt.Errorf("reading plugin.json: %w", err)
	}
	if meta.ID != pluginID || meta.Info.Version == "" {
		return fmt.Errorf("plugin.json: id %q version %q, want id %q and a version", meta.ID, meta.Info.Version, pluginID)
	}
	for _, f := range append([]string{"module.js", "plugin.json", "img/logo.svg"}, pluginExecutables()...) {
		if _, err := os.Stat(filepath.Join("dist", f)); err != nil {
			return fmt.Errorf("dist/ is incomplete: %w", err)
		}
	}
	if err := os.MkdirAll("dist-pkg", 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%s.zip", pluginID, meta.Info.Version)
	out := filepath.Join("dist-pkg", name)
	if err := zipPlugin(out, "dist", pluginID); err != nil {
		return err
	}
	sum, err := sha1File(out)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".sha1", []byte(sum+"  "+name+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s\nsha1 %s\n", out, sum)
	return nil
}

func pluginExecutables() []string {
	var out []string
	for _, arch := range pluginArchs {
		out = append(out, fmt.Sprintf("%s_linux_%s", pluginExecutable, arch))
	}
	return out
}

// zipPlugin writes the files under dir into a zip at out, inside folder top,
// keeping their modes (the backend executables stay executable). Source
// maps are left out.
func zipPlugin(out, dir, top string) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".map") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(filepath.Join(top, rel))
		if d.IsDir() {
			hdr.Name += "/"
			_, err = zw.CreateHeader(hdr)
			return err
		}
		hdr.Method = zip.Deflate
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(w, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("zipping %s: %w", dir, err)
	}
	return zw.Close()
}

func sha1File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
