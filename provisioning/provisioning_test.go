package provisioning_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/internal/browsertest"
	"github.com/podwire/podwire/internal/plugintest"
)

func TestMain(m *testing.M) { plugintest.Main(m) }

// pluginJSON is the repository's plugin.json.
type pluginJSON struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Executable string `json:"executable"`
}

func readPlugin(t *testing.T) pluginJSON {
	t.Helper()
	var p pluginJSON
	readJSON(t, "../plugin.json", &p)
	return p
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// dsFile is provisioning/datasources/podwire.yaml.
type dsFile struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name           string            `json:"name"`
		Type           string            `json:"type"`
		UID            string            `json:"uid"`
		Access         string            `json:"access"`
		IsDefault      bool              `json:"isDefault"`
		Editable       bool              `json:"editable"`
		JSONData       map[string]any    `json:"jsonData"`
		SecureJSONData map[string]string `json:"secureJsonData"`
	} `json:"datasources"`
}

const dsPath = "datasources/podwire.yaml"

// readDataSource reads the provisioned data source with Grafana's
// environment variables expanded by env, as Grafana does before parsing.
func readDataSource(t *testing.T, env func(string) string) dsFile {
	t.Helper()
	raw, err := os.ReadFile(dsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f dsFile
	if err := yaml.UnmarshalStrict([]byte(os.Expand(string(raw), env)), &f); err != nil {
		t.Fatalf("%s: %v", dsPath, err)
	}
	if len(f.Datasources) != 1 {
		t.Fatalf("%s provisions %d data sources, want 1", dsPath, len(f.Datasources))
	}
	return f
}

// dashboard is the part of a dashboard JSON the tests read.
type dashboard struct {
	file  string
	UID   string `json:"uid"`
	Title string `json:"title"`
	Time  struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Datasource *dsRef         `json:"datasource"`
	Query      map[string]any `json:"query"`
	Multi      bool           `json:"multi"`
	IncludeAll bool           `json:"includeAll"`
	AllValue   string         `json:"allValue"`
	Sort       int            `json:"sort"`
}

type panel struct {
	Title      string           `json:"title"`
	Type       string           `json:"type"`
	Datasource *dsRef           `json:"datasource"`
	Targets    []map[string]any `json:"targets"`
	Panels     []panel          `json:"panels"`
}

func readDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in provisioning/dashboards: %v", err)
	}
	var out []dashboard
	for _, f := range files {
		var d dashboard
		readJSON(t, f, &d)
		d.file = f
		// Panels inside collapsed rows are queried too.
		var flat []panel
		var walk func(ps []panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if len(p.Targets) > 0 {
					flat = append(flat, p)
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		d.Panels = flat
		out = append(out, d)
	}
	return out
}

// TestProvisioningMatchesPlugin: the provisioned data source is of the
// plugin's type with the uid every dashboard panel and variable refers to.
func TestProvisioningMatchesPlugin(t *testing.T) {
	p := readPlugin(t)
	f := readDataSource(t, func(string) string { return "" })
	ds := f.Datasources[0]
	if ds.Type != p.ID || p.Type != "datasource" {
		t.Errorf("%s: type %q; plugin.json: id %q type %q", dsPath, ds.Type, p.ID, p.Type)
	}
	if ds.UID != browsertest.DataSourceUID {
		t.Errorf("%s: uid %q, want %q", dsPath, ds.UID, browsertest.DataSourceUID)
	}
	check := func(where string, ref *dsRef) {
		if ref == nil || ref.UID != ds.UID || ref.Type != ds.Type {
			t.Errorf("%s: data source %+v, want {Type:%s UID:%s}", where, ref, ds.Type, ds.UID)
		}
	}
	for _, d := range readDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type == "query" || v.Type == "adhoc" {
				check(fmt.Sprintf("%s variable %s", d.file, v.Name), v.Datasource)
			}
		}
		for _, pn := range d.Panels {
			check(fmt.Sprintf("%s panel %q", d.file, pn.Title), pn.Datasource)
			for _, tg := range pn.Targets {
				raw, _ := json.Marshal(tg["datasource"])
				var ref dsRef
				json.Unmarshal(raw, &ref)
				check(fmt.Sprintf("%s panel %q query %v", d.file, pn.Title, tg["refId"]), &ref)
			}
		}
	}

	// The dashboards provider reads the folder docker-compose.yaml mounts.
	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	b, err := os.ReadFile("dashboards/dashboards.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != "/etc/grafana/provisioning/dashboards" {
		t.Errorf("dashboards.yaml providers %+v, want one file provider of /etc/grafana/provisioning/dashboards", prov.Providers)
	}
}

// compose is the part of docker-compose.yaml the test reads.
type compose struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Build       any               `json:"build"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
	} `json:"services"`
}

// TestComposeMounts: what docker-compose.yaml mounts into Grafana exists in
// the repository (dist/ once `go tool mage build` ran), where Grafana looks
// for it, and Grafana's environment has every variable the provisioned data
// source reads.
func TestComposeMounts(t *testing.T) {
	p := readPlugin(t)
	var c compose
	b, err := os.ReadFile("../docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	g, ok := c.Services["grafana"]
	if !ok {
		t.Fatal("docker-compose.yaml has no grafana service")
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, "../package.json", &pkg)
	if want := "grafana/grafana:" + pkg.Dependencies["@grafana/data"]; g.Image != want {
		t.Errorf("grafana image %q, want %q (the @grafana/* version the frontend is built against)", g.Image, want)
	}
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("volume %q is not host:container", v)
			continue
		}
		mounts[parts[1]] = parts[0]
		src := filepath.Join("..", parts[0])
		if parts[0] == "./dist" {
			// dist/ is the build's output: present once `go tool mage build`
			// ran, and then it must hold what Grafana loads.
			if _, err := os.Stat(src); os.IsNotExist(err) {
				t.Logf("dist/ is not built here (`go tool mage build` writes it)")
				continue
			}
			var built pluginJSON
			readJSON(t, filepath.Join(src, "plugin.json"), &built)
			if built.ID != p.ID {
				t.Errorf("dist/plugin.json id %q, want %q", built.ID, p.ID)
			}
			for _, f := range []string{"module.js", built.Executable + "_linux_amd64"} {
				if _, err := os.Stat(filepath.Join(src, f)); err != nil {
					t.Errorf("dist/ has no %s: %v", f, err)
				}
			}
			continue
		}
		if strings.HasPrefix(parts[0], ".") {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("volume %q: %v", v, err)
			}
		}
	}
	if src := mounts["/var/lib/grafana/plugins/"+p.ID]; src != "./dist" {
		t.Errorf("Grafana's plugins/%s comes from %q, want ./dist", p.ID, src)
	}
	if src := mounts["/etc/grafana/provisioning"]; src != "./provisioning" {
		t.Errorf("Grafana's provisioning comes from %q, want ./provisioning", src)
	}
	for _, d := range []string{"datasources", "dashboards"} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("provisioning/%s: %v", d, err)
		}
	}
	if !strings.Contains(g.Environment["GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"], p.ID) {
		t.Errorf("GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS %q does not allow %s", g.Environment["GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"], p.ID)
	}
	raw, err := os.ReadFile(dsPath)
	if err != nil {
		t.Fatal(err)
	}
	os.Expand(string(raw), func(name string) string {
		if _, ok := g.Environment[name]; !ok {
			t.Errorf("%s reads $%s, which the grafana service does not set", dsPath, name)
		}
		return ""
	})
	// The agent service is built from the repository's Dockerfile.
	if a, ok := c.Services["agent"]; !ok || a.Build == nil {
		t.Error("docker-compose.yaml has no agent service built from the repository")
	} else if _, err := os.Stat("../Dockerfile"); err != nil {
		t.Error(err)
	}
}

// TestDashboardsQueryRealAgents runs every dashboard's variable queries and
// then every panel's query through the real plugin backend, with the data
// source as provisioned (PODWIRE_AGENTS naming two capturing agents), and
// requires frames with rows and no error or warning for each. Variables
// take the first value (sorted as the dashboard sorts them); those with an
// All option run once with All and once with the first value.
func TestDashboardsQueryRealAgents(t *testing.T) {
	agenttest.RequireRoot(t)
	env := browsertest.Start(t, browsertest.Options{})
	f := readDataSource(t, func(name string) string {
		switch name {
		case "PODWIRE_AGENTS":
			return strings.Join(env.Agents(), ",")
		case "PODWIRE_TOKEN":
			return ""
		}
		t.Fatalf("%s reads $%s", dsPath, name)
		return ""
	})
	prov := f.Datasources[0]
	secure := map[string]string{}
	for k, v := range prov.SecureJSONData {
		if v != "" { // Grafana keeps no empty secure values.
			secure[k] = v
		}
	}
	ds := plugintest.DataSource{UID: prov.UID, Name: prov.Name, JSONData: prov.JSONData, Secure: secure}
	p := plugintest.Start(t, plugintest.Options{})
	pc := ds.PluginContext()
	now := time.Now()

	for _, d := range readDashboards(t) {
		t.Run(d.Title, func(t *testing.T) {
			from, to := timeRange(t, d, now)
			for _, vars := range variants(t, p, pc, d, from, to) {
				for _, pn := range d.Panels {
					for _, tg := range pn.Targets {
						name := fmt.Sprintf("%s/%v %v", pn.Title, tg["refId"], vars)
						model := map[string]any{}
						for k, v := range tg {
							model[k] = v
						}
						filter, _ := tg["filter"].(string)
						model["filter"] = expand(t, filter, vars)
						frs := run(t, p, pc, name, model, from, to)
						if live, _ := tg["live"].(bool); live {
							checkLive(t, p, pc, name, frs)
						}
					}
				}
			}
		})
	}
}

// choice is one variable's selected value; all means the All option.
type choice struct {
	value string
	all   bool
}

func (c choice) String() string {
	if c.all {
		return "All"
	}
	return c.value
}

// variants runs the dashboard's variable queries in order and returns the
// selections to run the panels with.
func variants(t *testing.T, p *plugintest.Plugin, pc backend.PluginContext, d dashboard, from, to time.Time) []map[string]choice {
	t.Helper()
	first := map[string]choice{}
	withAll := map[string]choice{}
	hasAll := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "query":
		case "adhoc":
			continue // no ad-hoc filters set
		default:
			t.Fatalf("variable %s: type %q the test does not know", v.Name, v.Type)
		}
		model := map[string]any{}
		for k, x := range v.Query {
			model[k] = x
		}
		if qt, _ := model["queryType"].(string); qt != "values" {
			t.Fatalf("variable %s: queryType %q, want values", v.Name, qt)
		}
		filter, _ := model["filter"].(string)
		model["filter"] = expand(t, filter, first)
		frs := run(t, p, pc, "variable "+v.Name, model, from, to)
		var values []string
		for _, fr := range frs {
			if fd, i := fr.FieldByName("value"); i >= 0 {
				for j := 0; j < fd.Len(); j++ {
					if s, ok := fd.ConcreteAt(j); ok && fmt.Sprint(s) != "" {
						values = append(values, fmt.Sprint(s))
					}
				}
			}
		}
		if len(values) == 0 {
			t.Fatalf("variable %s (%v) has no values", v.Name, model)
		}
		if v.Sort == 1 || v.Sort == 5 { // alphabetical, ascending
			sort.Strings(values)
		}
		t.Logf("variable %s: %v", v.Name, values)
		first[v.Name] = choice{value: values[0]}
		withAll[v.Name] = first[v.Name]
		if v.IncludeAll {
			hasAll = true
			withAll[v.Name] = choice{all: true}
		}
	}
	if hasAll {
		return []map[string]choice{withAll, first}
	}
	return []map[string]choice{first}
}

// cmpVar matches `operand == $var`, `operand != ${var}` (the forms the
// frontend's interpolateFilter rewrites for All).
var cmpVar = regexp.MustCompile(`([A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*)(==|!=)(\s*)\$(?:\{(\w+)\}|(\w+))`)

// varRef matches a variable reference outside a comparison.
var varRef = regexp.MustCompile(`\$(?:\{(\w+)\}|(\w+))`)

// expand expands variables in a filter as the frontend does for one value
// (a CEL string literal) and for All (`x == $v` is true, `x != $v` false).
func expand(t *testing.T, filter string, vars map[string]choice) string {
	t.Helper()
	lookup := func(name string) choice {
		c, ok := vars[name]
		if !ok {
			t.Fatalf("filter %q: no variable %s", filter, name)
		}
		return c
	}
	out := cmpVar.ReplaceAllStringFunc(filter, func(m string) string {
		g := cmpVar.FindStringSubmatch(m)
		c := lookup(g[4] + g[5])
		if c.all {
			return map[string]string{"==": "true", "!=": "false"}[g[2]]
		}
		return g[1] + g[2] + g[3] + celString(c.value)
	})
	out = varRef.ReplaceAllStringFunc(out, func(m string) string {
		g := varRef.FindStringSubmatch(m)
		c := lookup(g[1] + g[2])
		if c.all {
			t.Fatalf("filter %q uses $%s with All outside a comparison", filter, g[1]+g[2])
		}
		return celString(c.value)
	})
	return out
}

func celString(s string) string {
	b, _ := json.Marshal(s) // JSON's escapes are valid in CEL strings
	return string(b)
}

// timeRange is the dashboard's default range ("now-15m" to "now").
func timeRange(t *testing.T, d dashboard, now time.Time) (time.Time, time.Time) {
	t.Helper()
	rel := func(s string) time.Time {
		if s == "now" {
			return now
		}
		rest, ok := strings.CutPrefix(s, "now-")
		dur, err := time.ParseDuration(rest)
		if !ok || err != nil {
			t.Fatalf("%s: time %q the test does not know", d.file, s)
		}
		return now.Add(-dur)
	}
	return rel(d.Time.From), rel(d.Time.To).Add(time.Minute)
}

// run sends one query as a panel would and requires frames with rows, no
// error, and no warning (an agent that did not answer).
func run(t *testing.T, p *plugintest.Plugin, pc backend.PluginContext, name string, model map[string]any, from, to time.Time) data.Frames {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	refID, _ := model["refId"].(string)
	if refID == "" {
		refID = "A"
	}
	interval := max(time.Second, to.Sub(from)/1000).Truncate(time.Second)
	resp, err := p.QueryData(ctx, pc, plugintest.Query{RefID: refID, Model: model, From: from, To: to, Interval: interval, MaxDataPoints: 1000})
	if err != nil {
		t.Fatalf("%s: QueryData: %v", name, err)
	}
	r, ok := resp.Responses[refID]
	if !ok {
		t.Fatalf("%s: no response", name)
	}
	if r.Error != nil {
		t.Errorf("%s (filter %q): %v", name, model["filter"], r.Error)
		return nil
	}
	rows := 0
	for _, fr := range r.Frames {
		if n, err := fr.RowLen(); err == nil {
			rows += n
		}
		if fr.Meta == nil {
			continue
		}
		for _, n := range fr.Meta.Notices {
			if n.Severity == data.NoticeSeverityWarning || n.Severity == data.NoticeSeverityError {
				t.Errorf("%s: %s notice: %s", name, n.Severity, n.Text)
			}
		}
	}
	if len(r.Frames) == 0 || rows == 0 {
		t.Errorf("%s (filter %q): %d frames with %d rows, want some", name, model["filter"], len(r.Frames), rows)
	}
	t.Logf("%s: %d frames, %d rows", name, len(r.Frames), rows)
	return r.Frames
}

// checkLive requires a live panel's answer to name a channel the plugin
// lets Grafana subscribe to.
func checkLive(t *testing.T, p *plugintest.Plugin, pc backend.PluginContext, name string, frs data.Frames) {
	t.Helper()
	var channels []string
	for _, fr := range frs {
		if fr.Meta != nil && fr.Meta.Channel != "" {
			channels = append(channels, fr.Meta.Channel)
		}
	}
	if len(channels) == 0 {
		t.Errorf("%s: live, but no frame names a channel", name)
		return
	}
	for _, ch := range slices.Compact(channels) {
		path, ok := plugintest.ChannelPath(ch, pc.DataSourceInstanceSettings.UID)
		if !ok {
			t.Errorf("%s: channel %q is not this data source's", name, ch)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := p.SubscribeStream(ctx, pc, path)
		cancel()
		if err != nil || res.Status != backend.SubscribeStreamStatusOK {
			t.Errorf("%s: subscribing to %s: %v %+v", name, ch, err, res)
		}
	}
}

// TestExpand: variables expand as the frontend's interpolateFilter does
// for one value and for All.
func TestExpand(t *testing.T) {
	vars := map[string]choice{"namespace": {value: `o"neil`}, "workload": {all: true}}
	for _, tc := range []struct{ name, in, want string }{
		{"one value", `dst.namespace == $namespace`, `dst.namespace == "o\"neil"`},
		{"braces", `dst.namespace != ${namespace}`, `dst.namespace != "o\"neil"`},
		{"all equal", `http && dst.workload == $workload`, `http && true`},
		{"all not equal", `dst.workload != $workload || grpc`, `false || grpc`},
		{"both", `dst.namespace == $namespace && dst.workload == $workload`, `dst.namespace == "o\"neil" && true`},
		{"no variables", `status >= 500`, `status >= 500`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := expand(t, tc.in, vars); got != tc.want {
				t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
