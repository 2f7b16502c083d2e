package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
)

func TestSecretsNeverReachTheStore(t *testing.T) {
	agenttest.RequireRoot(t)
	cg := agenttest.NewCgroup(t, "", agenttest.RandomName("podwire-test-"))
	goAddr, _ := startHTTPServers(t, cg)
	a := agenttest.StartAgent(t, daemon.Options{
		CgroupRoot:    cg.Path,
		RedactHeaders: []string{"X-Api-Key"},
		RedactBody:    []string{`card=[0-9]+`},
	})
	secrets := map[string]string{
		"authorization": "Bearer s3cr3t-t0ken",
		"cookie":        "session=abc123",
		"x-api-key":     "key-42",
	}
	curlURLs(t, cg, []string{"http://" + goAddr + "/echo?secret=1"},
		"-H", "Authorization: "+secrets["authorization"],
		"-H", "Cookie: "+secrets["cookie"],
		"-H", "X-Api-Key: "+secrets["x-api-key"],
		"-H", "Content-Type: application/x-www-form-urlencoded",
		"--data-binary", "name=ann&card=4111111111111111&qty=2")
	entries := a.WaitEntries(t, "", 1, 30*time.Second)
	e := a.Get(t, entries[0].Id)
	for name, value := range secrets {
		got := e.Request.Headers[name]
		if got != strings.Repeat("*", len(value)) {
			t.Errorf("request header %s stored as %q, want it masked to %d stars", name, got, len(value))
		}
	}
	for _, m := range []string{e.Request.Body, e.Response.Body} {
		if strings.Contains(m, "4111") || m != "name=ann&"+strings.Repeat("*", len("card=4111111111111111"))+"&qty=2" {
			t.Errorf("body stored as %q, want the card number masked", m)
		}
	}
	// Masking keeps everything else: the filter still sees the entry.
	if got := a.Query(t, `"authorization" in request.headers && method == "POST"`, 10, 0); len(got) != 1 {
		t.Errorf("filter on a redacted header found %d entries, want 1", len(got))
	}
}
