// Package cgroup finds the cgroup v2 hierarchy and makes and removes the
// cgroups that scope capture (tests, the demo, load runs).
package cgroup

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Root finds the cgroup v2 mount point in /proc/mounts, preferring
// /sys/fs/cgroup, then /sys/fs/cgroup/unified; with none it mounts one at
// /run/podwire/cgroup2.
func Root() (string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "", fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			found = append(found, fields[1])
		}
	}
	for _, want := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		for _, m := range found {
			if m == want {
				return m, nil
			}
		}
	}
	if len(found) > 0 {
		return found[0], nil
	}
	dir := "/run/podwire/cgroup2"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating cgroup2 mount point: %w", err)
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", 0, ""); err != nil {
		return "", fmt.Errorf("mounting cgroup2 at %s: %w", dir, err)
	}
	return dir, nil
}

// Remove kills every process left in the cgroup at path and its children
// and removes them, children first. It gives up after about a second.
func Remove(path string) {
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if e.IsDir() {
			Remove(filepath.Join(path, e.Name()))
		}
	}
	for i := 0; i < 50; i++ {
		_ = os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0)
		if err := os.Remove(path); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
