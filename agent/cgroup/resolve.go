package cgroup

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// fileIDKernfs is the file handle type of kernfs (cgroup v2) nodes: the
// handle is the node's 64-bit id, which is the cgroup id BPF reports.
const fileIDKernfs = 0xfe

// Resolver turns cgroup ids (as bpf_skb_cgroup_id reports them) into paths
// relative to the cgroup v2 mount, asking the kernel for the cgroup by its
// id (open_by_handle_at: CAP_DAC_READ_SEARCH), so a cgroup made a moment
// ago resolves without rescanning the hierarchy. Results are cached, up to
// a bound.
type Resolver struct {
	root  string
	mount *os.File

	mu    sync.Mutex
	cache map[uint64]string
	max   int
}

// DefaultResolverCache bounds the ids a Resolver remembers: a busy node's
// containers, many times over.
const DefaultResolverCache = 16384

// NewResolver opens the cgroup v2 mount at root.
func NewResolver(root string) (*Resolver, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("cgroup resolver: %w", err)
	}
	return &Resolver{root: filepath.Clean(root), mount: f, cache: map[uint64]string{}, max: DefaultResolverCache}, nil
}

// Close releases the mount.
func (r *Resolver) Close() error { return r.mount.Close() }

// Path returns the path of cgroup id relative to the mount ("/" for the
// root, "/kubepods.slice/..." below it). A cgroup removed since is an
// error: ids are never reused, so it stays unresolvable.
func (r *Resolver) Path(id uint64) (string, error) {
	r.mu.Lock()
	p, ok := r.cache[id]
	r.mu.Unlock()
	if ok {
		return p, nil
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(int(r.mount.Fd()), unix.NewFileHandle(fileIDKernfs, b[:]), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("cgroup %d: %w", id, err)
	}
	abs, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	unix.Close(fd)
	if err != nil {
		return "", fmt.Errorf("cgroup %d: %w", id, err)
	}
	// The link reads as seen from this process's cgroup namespace and
	// mount: make it relative to the mount.
	rel := strings.TrimPrefix(abs, r.root)
	if rel == "" || rel[0] != '/' {
		rel = "/" + rel
	}
	r.mu.Lock()
	if len(r.cache) >= r.max {
		clear(r.cache) // rare: start over rather than track recency
	}
	r.cache[id] = rel
	r.mu.Unlock()
	return rel, nil
}

// ID returns the cgroup id of the cgroup directory at path (absolute).
func ID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
