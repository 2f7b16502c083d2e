// Package plugintest runs the data source's backend executable the way
// Grafana does (hashicorp/go-plugin with the SDK's handshake, plugin
// protocol version 2) and hands tests the plugin protocol's gRPC clients,
// with helpers to build the plugin context Grafana sends.
//
// Call Build's cleanup from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		plugintest.Cleanup()
//		os.Exit(code)
//	}
package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/podwire/podwire/agent/agenttest"
)

// PluginID is the data source's plugin id (plugin.json).
const PluginID = "podwire-traffic-datasource"

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Build compiles the plugin's main package (./pkg of the module) once per
// test binary and returns the executable's path.
func Build(tb testing.TB) string {
	tb.Helper()
	path, err := BuildExecutable()
	if err != nil {
		tb.Fatalf("building the plugin: %v", err)
	}
	return path
}

// BuildExecutable is Build for callers without a test (a host serving a
// browser): it builds once per process; Cleanup removes the result.
func BuildExecutable() (string, error) {
	buildOnce.Do(func() {
		buildPath, buildErr = build()
	})
	return buildPath, buildErr
}

func build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	buildDir, err = os.MkdirTemp("", "podwire-plugintest-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(buildDir, "gpx_podwire")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version=plugintest", "-o", out, "./pkg")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./pkg: %v\n%s", err, b)
	}
	return out, nil
}

// Cleanup removes the executable Build made.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Main is a TestMain for tests that run real agents' peers and the plugin:
// it lets the test binary serve as a peer (agenttest.PeerMain), runs the
// tests and removes the built plugin.
func Main(m *testing.M) {
	agenttest.PeerMain()
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// moduleRoot is the directory of the go.mod of the module under test.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// Plugin is a running plugin process with its protocol clients.
type Plugin struct {
	Data        pluginv2.DataClient
	Diagnostics pluginv2.DiagnosticsClient
	Resource    pluginv2.ResourceClient
	Stream      pluginv2.StreamClient

	client *goplugin.Client
	logs   *logBuffer
}

// Options change how the plugin is started.
type Options struct {
	// Path is the executable; "" builds it with Build.
	Path string
	// Env is added to the plugin's environment (Grafana passes GF_* here).
	Env []string
	// LogLevel is the plugin's log level ("debug" by default).
	LogLevel string
}

// Start starts the plugin executable as Grafana does and connects to it.
// It is killed when the test ends; its log is in Logs, and printed when
// the test failed.
func Start(tb testing.TB, o Options) *Plugin {
	tb.Helper()
	p, err := Launch(o.withPath(tb))
	if err != nil {
		tb.Fatalf("starting the plugin: %v", err)
	}
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("plugin log:\n%s", tail(p.Logs(), 8000))
		}
	})
	return p
}

func (o Options) withPath(tb testing.TB) Options {
	if o.Path == "" {
		o.Path = Build(tb)
	}
	return o
}

// Launch starts the plugin at o.Path (which must be set) without a test:
// for hosts that serve a browser. Kill stops it.
func Launch(o Options) (*Plugin, error) {
	if o.Path == "" {
		return nil, errors.New("plugintest.Launch: no executable path")
	}
	level := o.LogLevel
	if level == "" {
		level = "debug"
	}
	cmd := exec.Command(o.Path)
	cmd.Env = append(os.Environ(), o.Env...)
	logs := &logBuffer{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{
			grpcplugin.ProtocolVersion: {
				"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
				"resource":    &grpcplugin.ResourceGRPCPlugin{},
				"data":        &grpcplugin.DataGRPCPlugin{},
				"stream":      &grpcplugin.StreamGRPCPlugin{},
			},
		},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     60 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "plugin",
			Output: logs,
			Level:  hclog.LevelFromString(level),
		}),
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin handshake: %w\n%s", err, tail(logs.String(), 4000))
	}
	// Dispensing checks that the plugin serves each service, as Grafana
	// does before using it.
	for _, name := range []string{"diagnostics", "resource", "data", "stream"} {
		if _, err := rpc.Dispense(name); err != nil {
			client.Kill()
			return nil, fmt.Errorf("plugin does not serve %q: %w", name, err)
		}
	}
	gc, ok := rpc.(*goplugin.GRPCClient)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("plugin speaks %T, want gRPC", rpc)
	}
	return &Plugin{
		Data:        pluginv2.NewDataClient(gc.Conn),
		Diagnostics: pluginv2.NewDiagnosticsClient(gc.Conn),
		Resource:    pluginv2.NewResourceClient(gc.Conn),
		Stream:      pluginv2.NewStreamClient(gc.Conn),
		client:      client,
		logs:        logs,
	}, nil
}

// Kill stops the plugin process.
func (p *Plugin) Kill() { p.client.Kill() }

// Exited reports whether the plugin process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// Logs is everything the plugin logged so far.
func (p *Plugin) Logs() string { return p.logs.String() }

// logBuffer is a bounded, synchronized log (the newest 4 MiB).
type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

const maxLog = 4 << 20

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > maxLog {
		l.b = append([]byte(nil), l.b[len(l.b)-maxLog/2:]...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// DataSource describes a configured data source, as Grafana sends it.
type DataSource struct {
	ID   int64
	UID  string
	Name string
	// JSONData is marshalled to the settings' jsonData.
	JSONData any
	// Secure is the decrypted secureJsonData.
	Secure map[string]string
	// Updated changes when the settings change; the SDK makes a new
	// instance when it does.
	Updated time.Time
}

// PluginContext is the plugin context of a request to ds.
func (ds DataSource) PluginContext() backend.PluginContext {
	js, err := json.Marshal(ds.JSONData)
	if err != nil {
		panic(fmt.Sprintf("plugintest: jsonData: %v", err))
	}
	if ds.JSONData == nil {
		js = []byte("{}")
	}
	uid := ds.UID
	if uid == "" {
		uid = "podwire-test"
	}
	name := ds.Name
	if name == "" {
		name = "Podwire"
	}
	id := ds.ID
	if id == 0 {
		id = 1
	}
	updated := ds.Updated
	if updated.IsZero() {
		updated = time.Unix(1700000000, 0)
	}
	return backend.PluginContext{
		OrgID:    1,
		PluginID: PluginID,
		User:     &backend.User{Login: "admin", Name: "admin", Role: "Admin"},
		DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			ID:                      id,
			UID:                     uid,
			Type:                    PluginID,
			Name:                    name,
			JSONData:                js,
			DecryptedSecureJSONData: ds.Secure,
			Updated:                 updated,
		},
		GrafanaConfig: backend.NewGrafanaCfg(map[string]string{}),
	}
}

// Query is one query of a QueryData request.
type Query struct {
	RefID string
	// Model is marshalled to the query's JSON; its queryType is the
	// query's type.
	Model    map[string]any
	From, To time.Time
	Interval time.Duration
	// MaxDataPoints defaults to 1000.
	MaxDataPoints int64
}

// QueryData sends a request with the queries to the plugin and decodes the
// answer's frames.
func (p *Plugin) QueryData(ctx context.Context, pc backend.PluginContext, queries ...Query) (*backend.QueryDataResponse, error) {
	req := &backend.QueryDataRequest{PluginContext: pc, Headers: map[string]string{}}
	for _, q := range queries {
		js, err := json.Marshal(q.Model)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q.RefID, err)
		}
		qt, _ := q.Model["queryType"].(string)
		mdp := q.MaxDataPoints
		if mdp == 0 {
			mdp = 1000
		}
		req.Queries = append(req.Queries, backend.DataQuery{
			RefID: q.RefID, QueryType: qt, JSON: js, MaxDataPoints: mdp,
			Interval: q.Interval, TimeRange: backend.TimeRange{From: q.From, To: q.To},
		})
	}
	resp, err := p.Data.QueryData(ctx, backend.ToProto().QueryDataRequest(req))
	if err != nil {
		return nil, err
	}
	return backend.FromProto().QueryDataResponse(resp)
}

// CheckHealth asks the plugin for the data source's health.
func (p *Plugin) CheckHealth(ctx context.Context, pc backend.PluginContext) (*backend.CheckHealthResult, error) {
	resp, err := p.Diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: backend.ToProto().PluginContext(pc)})
	if err != nil {
		return nil, err
	}
	return backend.FromProto().CheckHealthResponse(resp), nil
}

// Response is a resource call's whole answer.
type Response struct {
	Status  int
	Headers http.Header
	Body    []byte
}

// CallResource calls a resource (path relative to the data source's
// resources, e.g. "fields" or "complete?field=pod") and collects the
// streamed answer.
func (p *Plugin) CallResource(ctx context.Context, pc backend.PluginContext, method, path string, body []byte) (*Response, error) {
	path = strings.TrimPrefix(path, "/")
	rel, _, _ := strings.Cut(path, "?")
	stream, err := p.Resource.CallResource(ctx, &pluginv2.CallResourceRequest{
		PluginContext: backend.ToProto().PluginContext(pc),
		Path:          rel,
		Method:        method,
		Url:           "/api/datasources/uid/" + pc.DataSourceInstanceSettings.UID + "/resources/" + path,
		Headers:       map[string]*pluginv2.StringList{"Content-Type": {Values: []string{"application/json"}}},
		Body:          body,
	})
	if err != nil {
		return nil, err
	}
	out := &Response{Headers: http.Header{}}
	var buf bytes.Buffer
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if r.Code != 0 {
			out.Status = int(r.Code)
		}
		for k, v := range r.Headers {
			out.Headers[k] = append(out.Headers[k], v.Values...)
		}
		buf.Write(r.Body)
	}
	out.Body = buf.Bytes()
	return out, nil
}

// Stream is a running RunStream call.
type Stream struct {
	recv   func() (*pluginv2.StreamPacket, error)
	cancel context.CancelFunc
}

// SubscribeStream asks the plugin whether path (a channel path without
// "ds/<uid>/") may be subscribed to.
func (p *Plugin) SubscribeStream(ctx context.Context, pc backend.PluginContext, path string) (*backend.SubscribeStreamResponse, error) {
	resp, err := p.Stream.SubscribeStream(ctx, &pluginv2.SubscribeStreamRequest{PluginContext: backend.ToProto().PluginContext(pc), Path: path})
	if err != nil {
		return nil, err
	}
	return backend.FromProto().SubscribeStreamResponse(resp), nil
}

// RunStream starts streaming path, as Grafana does for the first
// subscriber; Close ends it as when the last subscriber leaves.
func (p *Plugin) RunStream(ctx context.Context, pc backend.PluginContext, path string) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := p.Stream.RunStream(ctx, &pluginv2.RunStreamRequest{PluginContext: backend.ToProto().PluginContext(pc), Path: path})
	if err != nil {
		cancel()
		return nil, err
	}
	return &Stream{recv: s.Recv, cancel: cancel}, nil
}

// Next returns the next frame the stream sends.
func (s *Stream) Next() (*data.Frame, error) {
	pkt, err := s.recv()
	if err != nil {
		return nil, err
	}
	var f data.Frame
	if err := json.Unmarshal(pkt.Data, &f); err != nil {
		return nil, fmt.Errorf("decoding a stream frame: %w", err)
	}
	return &f, nil
}

// Close ends the stream.
func (s *Stream) Close() { s.cancel() }

// ChannelPath returns the path part of a Grafana Live channel of this data
// source ("ds/<uid>/<path>").
func ChannelPath(channel, uid string) (string, bool) {
	return strings.CutPrefix(channel, "ds/"+uid+"/")
}
