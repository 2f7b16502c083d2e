package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAgentWithoutPrivilegesSaysWhatItNeeds runs the agent as an
// unprivileged user: it must exit with a plain message, not a verifier dump.
func TestAgentWithoutPrivilegesSaysWhatItNeeds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root to switch to an unprivileged user")
	}
	bin := t.TempDir() + "/podwire"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "agent", "--listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("agent ran without privileges:\n%s", out)
	}
	msg := string(out)
	for _, want := range []string{"needs root", "CAP_BPF", "sudo podwire agent"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want code 1", err)
	}
}
