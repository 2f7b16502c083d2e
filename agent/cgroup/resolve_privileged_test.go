package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResolverFindsNewCgroups: a cgroup made after the resolver opened
// resolves by its id to its path; a removed one is an error.
func TestResolverFindsNewCgroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (open_by_handle_at and making cgroups)")
	}
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	parent, err := os.MkdirTemp(root, "podwire-resolve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(parent)
	child := filepath.Join(parent, "kubepods.slice")
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := ID(child)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Path(id)
	if want := child[len(root):]; err != nil || got != want {
		t.Fatalf("Path(%d) = %q, %v; want %q", id, got, err, want)
	}
	rootID, _ := ID(root)
	if got, err := r.Path(rootID); err != nil || got != "/" {
		t.Errorf("Path(root) = %q, %v; want /", got, err)
	}
	gone := filepath.Join(parent, "gone")
	os.Mkdir(gone, 0o755)
	goneID, _ := ID(gone)
	os.Remove(gone)
	if p, err := r.Path(goneID); err == nil {
		t.Errorf("removed cgroup resolved to %q", p)
	}
	os.Remove(child)
}
