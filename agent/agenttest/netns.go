package agenttest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Host is a network namespace made for a test: a simulated host or pod
// with one veth interface and an address in 198.18.0.0/15.
type Host struct {
	Netns string
	IP    string
}

// NewHostPair makes two network namespaces joined by a veth pair, with
// addresses 198.18.<n>.1 and 198.18.<n>.2 and no route out; removed at
// cleanup.
func NewHostPair(t testing.TB, subnet int) (*Host, *Host) {
	t.Helper()
	id := RandomName("")[:6]
	a := &Host{Netns: "pwa" + id, IP: ipIn(subnet, 1)}
	b := &Host{Netns: "pwb" + id, IP: ipIn(subnet, 2)}
	ifA, ifB := "pwa"+id, "pwb"+id
	steps := [][]string{
		{"netns", "add", a.Netns},
		{"netns", "add", b.Netns},
		{"link", "add", ifA, "type", "veth", "peer", "name", ifB},
		{"link", "set", ifA, "netns", a.Netns},
		{"link", "set", ifB, "netns", b.Netns},
		{"-n", a.Netns, "addr", "add", a.IP + "/30", "dev", ifA},
		{"-n", b.Netns, "addr", "add", b.IP + "/30", "dev", ifB},
		{"-n", a.Netns, "link", "set", ifA, "up"},
		{"-n", b.Netns, "link", "set", ifB, "up"},
		{"-n", a.Netns, "link", "set", "lo", "up"},
		{"-n", b.Netns, "link", "set", "lo", "up"},
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", a.Netns).Run()
		exec.Command("ip", "netns", "del", b.Netns).Run()
	})
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return a, b
}

func ipIn(subnet, host int) string {
	return "198.18." + itoa(subnet) + "." + itoa(host)
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// InHost is a command run in the cgroup and inside the host's namespace.
func (c *Cgroup) InHost(h *Host, name string, args ...string) *exec.Cmd {
	return c.Command("ip", append([]string{"netns", "exec", h.Netns, name}, args...)...)
}

// PeerInHost is Peer run inside the host's namespace.
func (c *Cgroup) PeerInHost(h *Host, role string) *exec.Cmd {
	cmd := c.InHost(h, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+role)
	return cmd
}
