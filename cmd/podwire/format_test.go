package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

var fmtTime = time.Date(2026, 3, 1, 14, 5, 9, 123456789, time.UTC)

func protoEntry(mod func(e *podwirev1.Entry)) *podwirev1.Entry {
	e := &podwirev1.Entry{
		Id:        "node-a-42",
		Time:      timestamppb.New(fmtTime),
		Protocol:  "http",
		Src:       &podwirev1.Endpoint{Ip: "10.0.0.1", Port: 40000, Namespace: "shop", Workload: "web"},
		Dst:       &podwirev1.Endpoint{Ip: "10.0.0.2", Port: 8080},
		Method:    "GET",
		Path:      "/api/cart",
		Status:    200,
		LatencyMs: 12.345,
		Request:   &podwirev1.Message{BodyBytes: 0},
		Response:  &podwirev1.Message{BodyBytes: 3500},
	}
	if mod != nil {
		mod(e)
	}
	return e
}

func TestTableRow(t *testing.T) {
	tests := []struct {
		name  string
		e     *podwirev1.Entry
		color bool
		want  string
	}{
		{
			name: "plain",
			e:    protoEntry(nil),
			want: "14:05:09.123 http  shop/web                 10.0.0.2:8080            GET     /api/cart                                           200  12.3ms       0B/3.4K node-a-42\n",
		},
		{
			name: "failed in colour",
			e: protoEntry(func(e *podwirev1.Entry) {
				e.Status, e.Failed = 503, true
			}),
			color: true,
			want:  "14:05:09.123 http  shop/web                 10.0.0.2:8080            GET     /api/cart                                        \x1b[31m   503\x1b[0m  12.3ms       0B/3.4K node-a-42\n",
		},
		{
			name: "failed without colour",
			e: protoEntry(func(e *podwirev1.Entry) {
				e.Status, e.Failed = 503, true
			}),
			want: "14:05:09.123 http  shop/web                 10.0.0.2:8080            GET     /api/cart                                           503  12.3ms       0B/3.4K node-a-42\n",
		},
		{
			name: "long path and endpoint cut, no response",
			e: protoEntry(func(e *podwirev1.Entry) {
				e.Path = "/" + strings.Repeat("abcdefghij", 10)
				e.Dst = &podwirev1.Endpoint{Namespace: "a-very-long-namespace", Pod: "and-a-long-pod-name"}
				e.Response, e.Status, e.LatencyMs = nil, 0, 0
			}),
			want: "14:05:09.123 http  shop/web                 a-very-long-namespace/a… GET     /abcdefghijabcdefghijabcdefghijabcdefghijabcdef…      -       -          0B/- node-a-42\n",
		},
		{
			name: "grpc method is not repeated",
			e: protoEntry(func(e *podwirev1.Entry) {
				e.Protocol, e.Method, e.Path, e.Status = "grpc", "/shop.Cart/Get", "/shop.Cart/Get", 14
			}),
			want: "14:05:09.123 grpc  shop/web                 10.0.0.2:8080            -       /shop.Cart/Get                                       14  12.3ms       0B/3.4K node-a-42\n",
		},
		{
			name: "control characters replaced",
			e: protoEntry(func(e *podwirev1.Entry) {
				e.Path = "/x\x1b[2J"
				e.Src = &podwirev1.Endpoint{Ip: "fd00::1", Port: 53}
			}),
			want: "14:05:09.123 http  [fd00::1]:53             10.0.0.2:8080            GET     /x\uFFFD[2J                                              200  12.3ms       0B/3.4K node-a-42\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tbl := streamTable(0, time.UTC, tc.color)
			if err := tbl.writeRow(&b, tc.e); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestTableFitsTerminal(t *testing.T) {
	e := protoEntry(func(e *podwirev1.Entry) { e.Path = "/" + strings.Repeat("x", 300) })
	for _, width := range []int{80, 120, 200} {
		var b bytes.Buffer
		tbl := streamTable(width, time.UTC, false)
		tbl.writeHeader(&b)
		tbl.writeRow(&b, e)
		for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if n := len([]rune(line)); n > width && width >= 120 {
				t.Errorf("width %d: line of %d columns: %q", width, n, line)
			}
		}
	}
}

func TestFitTable(t *testing.T) {
	entries := []*podwirev1.Entry{
		protoEntry(nil),
		protoEntry(func(e *podwirev1.Entry) { e.Path = "/a/much/longer/path"; e.Id = "node-b-1" }),
	}
	var b bytes.Buffer
	tbl := fitTable(entries, 0, time.UTC, false, false)
	tbl.writeHeader(&b)
	for _, e := range entries {
		tbl.writeRow(&b, e)
	}
	want := "" +
		"TIME         PROTO SRC      DST           METHOD PATH                STATUS LATENCY    SIZE ID\n" +
		"14:05:09.123 http  shop/web 10.0.0.2:8080 GET    /api/cart              200  12.3ms 0B/3.4K node-a-42\n" +
		"14:05:09.123 http  shop/web 10.0.0.2:8080 GET    /a/much/longer/path    200  12.3ms 0B/3.4K node-b-1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	tbl = fitTable(entries, 0, time.UTC, false, true)
	tbl.writeHeader(&b)
	tbl.writeRow(&b, entries[0])
	want = "" +
		"TIME                    NODE PROTO SRC      SRC-ADDR       DST           DST-ADDR      METHOD PATH                STATUS LATENCY REQ RESP FLAGS ID\n" +
		"2026-03-01 14:05:09.123 -    http  shop/web 10.0.0.1:40000 10.0.0.2:8080 10.0.0.2:8080 GET    /api/cart              200  12.3ms  0B 3.4K -     node-a-42\n"
	if b.String() != want {
		t.Errorf("wide: got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFormatNumbers(t *testing.T) {
	for _, tc := range []struct {
		ms   float64
		want string
	}{{0.123, "0.12ms"}, {9.999, "10.00ms"}, {12.34, "12.3ms"}, {250.4, "250ms"}, {12345, "12.3s"}} {
		if got := formatMs(tc.ms); got != tc.want {
			t.Errorf("formatMs(%v) = %q, want %q", tc.ms, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {3500, "3.4K"}, {5 << 20, "5.0M"}, {3 << 30, "3.0G"}} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestWriteBody(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		binary      bool
		want        string
	}{
		{"json", "application/json; charset=utf-8", `{"a":[1,2],"b":{"c":"d"}}`,
			false, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {\n    \"c\": \"d\"\n  }\n}\n"},
		{"json suffix", "application/problem+json", `{"title":"x"}`, false, "{\n  \"title\": \"x\"\n}\n"},
		{"json sniffed", "", ` [1, 2] `, false, "[\n  1,\n  2\n]\n"},
		{"cut json as text", "application/json", `{"a":[1,2`, false, "{\"a\":[1,2\n"},
		{"form", "application/x-www-form-urlencoded", "user=ann+lee&tags=a%2Cb&empty=&flag",
			false, "user = ann lee\ntags = a,b\nempty = \nflag = \n"},
		{"text", "text/html", "<p>hi</p>\r\n<p>there</p>", false, "<p>hi</p>\n<p>there</p>\n"},
		{"c1 control replaced", "text/plain", "csi\u009b2J\n", false, "csi\uFFFD2J\n"},
		{"c0 control is binary", "text/plain", "bell\x07\n", false,
			"00000000: 6265 6c6c 070a                           bell..\n"},
		{"binary by encoding", "text/plain", "AB", true,
			"00000000: 4142                                     AB\n"},
		{"binary by bytes", "", "\x00\x01hello\xff", false,
			"00000000: 0001 6865 6c6c 6fff                      ..hello.\n"},
		{"grpc", "application/grpc", "\x00\x00\x00\x00\x02\x08\x01", false,
			"00000000: 0000 0000 0208 01                        .......\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeBody(&errWriter{w: &b}, []byte(tc.body), tc.contentType, tc.binary)
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestHexDump(t *testing.T) {
	data := make([]byte, 40)
	for i := range data {
		data[i] = byte(0x30 + i)
	}
	// As `xxd` prints it.
	want := "" +
		"00000000: 3031 3233 3435 3637 3839 3a3b 3c3d 3e3f  0123456789:;<=>?\n" +
		"00000010: 4041 4243 4445 4647 4849 4a4b 4c4d 4e4f  @ABCDEFGHIJKLMNO\n" +
		"00000020: 5051 5253 5455 5657                      PQRSTUVW\n"
	var b bytes.Buffer
	writeHexDump(&errWriter{w: &b}, data, hexDumpLimit)
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	writeHexDump(&errWriter{w: &b}, make([]byte, hexDumpLimit+100), hexDumpLimit)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != hexDumpLimit/16+1 || lines[len(lines)-1] != "... 100 more bytes" {
		t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	if !strings.HasPrefix(lines[len(lines)-2], "00000ff0: ") {
		t.Errorf("last dump line %q", lines[len(lines)-2])
	}
}

func TestEntryText(t *testing.T) {
	e := protoEntry(func(e *podwirev1.Entry) {
		e.HttpVersion = "2"
		e.Request = &podwirev1.Message{
			HeaderList: []*podwirev1.Header{{Name: "content-type", Value: "application/x-www-form-urlencoded"}},
			Headers:    map[string]string{"content-type": "application/x-www-form-urlencoded"},
			Body:       "a=1&b=two",
			BodyBytes:  9,
		}
		e.Response = &podwirev1.Message{
			Headers:   map[string]string{"content-type": "application/json", "set-cookie": "x=1\ny=2"},
			Body:      `{"ok":true`,
			BodyBytes: 5000,
			Truncated: true,
			Trailers:  map[string]string{"x-checksum": "abc"},
		}
		e.Notes = []string{"upgrade: websocket"}
	})
	var b bytes.Buffer
	if err := writeEntryText(&b, e, time.UTC, false); err != nil {
		t.Fatal(err)
	}
	want := `GET /api/cart -> 200 OK
  id         node-a-42
  time       2026-03-01 14:05:09.123456 UTC
  protocol   http HTTP/2
  src        10.0.0.1:40000 (namespace shop, workload web)
  dst        10.0.0.2:8080
  latency    12.3ms
  note       upgrade: websocket

Request
GET /api/cart HTTP/2
content-type: application/x-www-form-urlencoded

a = 1
b = two

Response
HTTP/2 200 OK
content-type: application/json
set-cookie: x=1
set-cookie: y=2

{"ok":true
[body truncated: 10 bytes kept, 5000 bytes on the wire]

trailers:
x-checksum: abc
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestEntryTextProtocols(t *testing.T) {
	tests := []struct {
		name string
		mod  func(e *podwirev1.Entry)
		want []string
	}{
		{"grpc", func(e *podwirev1.Entry) {
			e.Protocol, e.Method, e.Path, e.Status, e.Failed = "grpc", "/shop.Cart/Get", "/shop.Cart/Get", 14, true
		}, []string{"/shop.Cart/Get -> 14 Unavailable  FAILED\n", "\ngRPC /shop.Cart/Get\n", "\ngrpc-status 14 Unavailable\n"}},
		{"dns", func(e *podwirev1.Entry) {
			e.Protocol, e.Method, e.Path, e.Status = "dns", "A", "cart.shop.svc.cluster.local", 3
		}, []string{"A cart.shop.svc.cluster.local -> 3 NXDOMAIN\n", "\nrcode 3 NXDOMAIN\n"}},
		{"redis", func(e *podwirev1.Entry) {
			e.Protocol, e.Method, e.Path, e.Status = "redis", "GET", "session:1", 0
		}, []string{"GET session:1 -> 0 OK\n", "\nGET session:1\n", "\nstatus 0 OK\n"}},
		{"no response", func(e *podwirev1.Entry) {
			e.Response, e.Status, e.LatencyMs, e.Incomplete = nil, 0, 0, true
		}, []string{"GET /api/cart -> (no response)\n", "(no response seen)\n", "incomplete yes"}},
		{"body not kept", func(e *podwirev1.Entry) {
			e.Response.Body = ""
		}, []string{"[body of 3500 bytes not kept]\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeEntryText(&b, protoEntry(tc.mod), time.UTC, false); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "15m", want: now.Add(-15 * time.Minute)},
		{in: "2h30m", want: now.Add(-150 * time.Minute)},
		{in: "1d", want: now.Add(-24 * time.Hour)},
		{in: "2026-03-01T10:00:00Z", want: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
		{in: "2026-03-01T10:00:00+02:00", want: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)},
		{in: "2026-03-01 10:00:00", want: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
		{in: "yesterday", err: true},
	}
	for _, tc := range tests {
		got, err := parseWhen(tc.in, now, time.UTC)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:7700: connect: connection refused"`),
			"cannot reach agent a:1: dial tcp 127.0.0.1:7700: connect: connection refused"},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), "agent a:1: no answer within 5s (--timeout)"},
		{status.Error(codes.Unauthenticated, "invalid bearer token"), "agent a:1 refused the call: invalid bearer token (check --token or PODWIRE_TOKEN)"},
		{status.Error(codes.Internal, "boom"), "agent a:1: boom"},
		{errors.New("plain"), "agent a:1: plain"},
	}
	for _, tc := range tests {
		if got := describe("a:1", tc.err, 5*time.Second); got != tc.want {
			t.Errorf("describe(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestAgentList(t *testing.T) {
	env := map[string]string{}
	c := newCLI(nil, nil, func(k string) string { return env[k] })
	tests := []struct {
		flags []string
		env   string
		want  string
	}{
		{want: "127.0.0.1:7700"},
		{env: "a:1, b:2,,", want: "a:1 b:2"},
		{flags: []string{"x:9", "y"}, env: "a:1", want: "x:9 y:7700"},
		{flags: []string{"x:9", "x:9", "::1", "[fd00::1]:5"}, want: "x:9 [::1]:7700 [fd00::1]:5"},
	}
	for _, tc := range tests {
		env["PODWIRE_AGENT"] = tc.env
		got := strings.Join(c.agentList(&clientFlags{agents: tc.flags}), " ")
		if got != tc.want {
			t.Errorf("agents %q env %q: got %q, want %q", tc.flags, tc.env, got, tc.want)
		}
	}
}

func TestStatusText(t *testing.T) {
	s := &podwirev1.StatusResponse{
		Node: "node-a", Version: "v1", Kernel: "6.8", Capture: "running", CgroupRoot: "/sys/fs/cgroup",
		Programs: []*podwirev1.Program{{Name: "podwire_b", Type: "tracepoint", Attach: "syscalls/sys_enter_read"}, {Name: "podwire_a", Type: "cgroup_skb", Attach: "/"}},
		Counters: map[string]uint64{"packets": 123456, "drops": 7},
		Started:  timestamppb.New(fmtTime),
	}
	var b bytes.Buffer
	if err := writeStatusText(&b, "10.0.0.1:7700", s, time.UTC); err != nil {
		t.Fatal(err)
	}
	want := `agent        10.0.0.1:7700
node         node-a
version      v1
kernel       6.8
capture      running
cgroup root  /sys/fs/cgroup
started      2026-03-01 14:05:09 UTC
programs (2)
  podwire_a  cgroup_skb  /
  podwire_b  tracepoint  syscalls/sys_enter_read
counters
  drops         7
  packets  123456
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
