package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/internal/grafanahost"
	"github.com/podwire/podwire/internal/plugintest"
)

func TestMain(m *testing.M) { plugintest.Main(m) }

// chromium is Debian's browser (`go tool mage deps` installs it).
const chromium = "/usr/bin/chromium"

// bigBody is the size of the JSON body whose rendering is measured.
const bigBody = 5 << 20

// e2eResult is the RESULT line of src/harness/e2e.mjs.
type e2eResult struct {
	FilterError string   `json:"filterError"`
	Completion  []string `json:"completion"`
	// CompletionCounts are the counts completion showed beside each value.
	CompletionCounts map[string]int `json:"completionCounts"`
	Entry            string         `json:"entry"`
	Health           string         `json:"health"`
	BigBodyBytes     int            `json:"bigBodyBytes"`
	BigOpenMs        int64          `json:"bigOpenMs"`
	BigTabSwitchMs   int64          `json:"bigTabSwitchMs"`
	BigRenderMs      []int64        `json:"bigRenderMs"`
}

// TestEditorsInBrowser drives the real query editor, config editor and
// entry viewer in chromium against the real plugin backend and two real
// agents capturing real traffic (see src/harness/e2e.mjs for the steps).
// Screenshots go to $PODWIRE_SCREENSHOTS, or to a new folder named in the
// log.
func TestEditorsInBrowser(t *testing.T) {
	agenttest.RequireRoot(t)
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s: %v (install Debian's chromium: `go tool mage deps`)", chromium, err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("node_modules has no playwright-core: run `go tool mage frontendDeps` (npm ci) first: %v", err)
	}

	// The harness builds while the cluster, agents and traffic start.
	built := make(chan error, 1)
	go func() { built <- buildHarness(root) }()

	env := Start(t, Options{BigBytes: bigBody})
	p := plugintest.Start(t, plugintest.Options{})
	host := &grafanahost.Host{Plugin: p, DS: env.DataSource(), Static: http.FileServer(http.Dir(filepath.Join(root, ".build", "harness")))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: host, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	if err := <-built; err != nil {
		t.Fatal(err)
	}

	shots := os.Getenv("PODWIRE_SCREENSHOTS")
	if shots == "" {
		if shots, err = os.MkdirTemp("", "podwire-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "src/harness/e2e.mjs")
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"PODWIRE_HARNESS_URL=http://"+ln.Addr().String()+"/?uid="+DataSourceUID,
		"PODWIRE_SCREENSHOTS="+shots,
		"PODWIRE_AGENTS="+strings.Join(env.Agents(), ","),
		"PODWIRE_BIG_ENTRY="+env.BigEntryID,
		"PODWIRE_CHROMIUM="+chromium,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("e2e.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); see its output above and the screenshots in %s", err, shots)
	}
	res, err := parseResult(out)
	if err != nil {
		t.Fatal(err)
	}

	// What the browser did reached the backend: the settings saved through
	// the config editor are the host's now, and the entry it opened is one
	// node-a's agent captured.
	saved, _ := host.DataSource().JSONData.(map[string]any)
	if got := fmt.Sprint(saved["agents"]); got != fmt.Sprint(env.Agents()) {
		t.Errorf("saved agents %s, want %v", got, env.Agents())
	}
	if e := env.A.Agent.Get(t, res.Entry); e.GetPath() != "/api/cart/items" {
		t.Errorf("the browser opened entry %s of path %q", res.Entry, e.GetPath())
	}
	if !slices.Contains(res.Completion, "shop") {
		t.Errorf("completion offered %v", res.Completion)
	}
	// The count beside a namespace is how many stored entries go there.
	for _, ns := range []string{"shop", "shipping"} {
		f := fmt.Sprintf("dst.namespace == %q", ns)
		es := append(env.A.Agent.Query(t, f, 100000, 0), env.B.Agent.Query(t, f, 100000, 0)...)
		n := len(es)
		var paths []string
		for _, e := range es {
			paths = append(paths, e.GetSrc().GetPod()+" "+e.GetMethod()+" "+e.GetPath())
		}
		t.Logf("%d entries with %s: %s", n, f, strings.Join(paths, ", "))
		if got := res.CompletionCounts[ns]; got != n {
			t.Errorf("completion showed %s with count %d; the agents hold %d entries with %s", ns, got, n, f)
		}
	}
	if res.BigBodyBytes != env.BigBytes || len(res.BigRenderMs) == 0 {
		t.Errorf("the big entry's body in the browser: %d bytes, want %d; render times %v", res.BigBodyBytes, env.BigBytes, res.BigRenderMs)
	}
	t.Logf("entry viewer, %d-byte JSON body: opened (fetch through plugin and agent, then render) in %d ms; rendered alone in %v ms; tab switch and back %d ms",
		res.BigBodyBytes, res.BigOpenMs, res.BigRenderMs, res.BigTabSwitchMs)
}

// buildHarness builds src/harness into .build/harness.
func buildHarness(root string) error {
	cmd := exec.Command("npm", "run", "--silent", "build:harness")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm run build:harness: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, ".build", "harness", "index.html")); err != nil {
		return fmt.Errorf("npm run build:harness wrote no page: %v\n%s", err, out)
	}
	return nil
}

func parseResult(out []byte) (*e2eResult, error) {
	var line string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			line = s
		}
	}
	if line == "" {
		return nil, errors.New("e2e.mjs printed no RESULT line")
	}
	var r e2eResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return nil, fmt.Errorf("e2e.mjs RESULT %s: %w", line, err)
	}
	return &r, nil
}
