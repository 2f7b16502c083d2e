package frames

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func TestTraffic(t *testing.T) {
	es := sampleEntries()
	f := Traffic(es, testLinks)
	if f.Name != "traffic" || f.Rows() != len(es) {
		t.Fatalf("frame %q with %d rows, want traffic with %d", f.Name, f.Rows(), len(es))
	}
	for i, e := range es {
		if got := fieldByName(t, f, "id").At(i); got != e.GetId() {
			t.Errorf("row %d id %v, want %v (order kept)", i, got, e.GetId())
		}
	}
	units := map[string]string{"latency": "ms", "requestBytes": "decbytes", "responseBytes": "decbytes"}
	for _, fd := range f.Fields {
		if fd.Config == nil || fd.Config.DisplayNameFromDS == "" {
			t.Errorf("field %q has no display name", fd.Name)
		}
		if u, ok := units[fd.Name]; ok && fd.Config.Unit != u {
			t.Errorf("field %q unit %q, want %q", fd.Name, fd.Config.Unit, u)
		}
	}
	if got := fieldByName(t, f, "time").At(0).(time.Time); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("time %v", got)
	}
	if got := fieldByName(t, f, "srcAddress").At(0); got != "10.0.1.5:43512" {
		t.Errorf("source address %v", got)
	}
	if got := fieldByName(t, f, "dstWorkload").At(1); got != "cart" {
		t.Errorf("destination workload %v", got)
	}
	if got := *fieldByName(t, f, "responseBytes").At(1).(*int64); got != int64(len("upstream unavailable")) {
		t.Errorf("response bytes %v", got)
	}
	checkEntryLink(t, fieldByName(t, f, "id"))
}

// checkEntryLink checks the field links to the entry query of its value.
func checkEntryLink(t *testing.T, fd *data.Field) {
	t.Helper()
	if fd.Config == nil || len(fd.Config.Links) != 1 {
		t.Fatalf("field %q: links %+v", fd.Name, fd.Config)
	}
	l := fd.Config.Links[0]
	want := map[string]any{"queryType": "entry", "entryId": "${__value.raw}"}
	if l.Internal == nil || l.Internal.DatasourceUID != testLinks.DatasourceUID ||
		l.Internal.DatasourceName != testLinks.DatasourceName || !reflect.DeepEqual(l.Internal.Query, want) {
		t.Errorf("link %+v, internal %+v", l, l.Internal)
	}
}

func TestNilSafety(t *testing.T) {
	// Entries with nothing set, and nil entries, make rows, not panics.
	es := []*podwirev1.Entry{nil, {}, {Id: "a", Protocol: "http"}, {Protocol: "grpc", Response: &podwirev1.Message{}},
		{Protocol: "tcp"}, {Protocol: "dns", Status: 2}, {Protocol: "redis", Failed: true}, {Protocol: "smtp"}}
	if f := Traffic(es, testLinks); f.Rows() != len(es) {
		t.Errorf("traffic rows %d", f.Rows())
	}
	f := Logs(es, testLinks)
	if f.Rows() != len(es) {
		t.Errorf("log rows %d", f.Rows())
	}
	for i := range f.Rows() {
		if !json.Valid(fieldByName(t, f, "labels").At(i).(json.RawMessage)) {
			t.Errorf("row %d labels not JSON", i)
		}
	}
	for _, e := range es {
		Entry(e)
	}
	if fs := Entry(nil); len(fs) != 1 || fs[0].Rows() != 0 {
		t.Errorf("Entry(nil) = %d frames", len(fs))
	}
	Traffic(nil, Links{})
	Logs(nil, Links{})
	if v := Values(nil); v.Rows() != 0 || v.Fields[0].Name != "value" {
		t.Errorf("Values(nil) = %+v", v)
	}
}

func TestLogSeverity(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    *podwirev1.Entry
		want string
	}{
		{"ok", &podwirev1.Entry{Status: 200}, "info"},
		{"failed", &podwirev1.Entry{Status: 503, Failed: true}, "error"},
		{"incomplete", &podwirev1.Entry{Status: 200, Incomplete: true}, "warning"},
		{"failed and incomplete", &podwirev1.Entry{Failed: true, Incomplete: true}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Logs([]*podwirev1.Entry{tc.e}, testLinks)
			if got := fieldByName(t, f, "severity").At(0); got != tc.want {
				t.Errorf("severity %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLogLines(t *testing.T) {
	es := sampleEntries()
	f := Logs(es, testLinks)
	if f.Meta == nil || f.Meta.Type != data.FrameTypeLogLines || f.Name != "logs" {
		t.Fatalf("frame %q meta %+v", f.Name, f.Meta)
	}
	want := []string{
		"GET /api/cart?user=42 -> 200 (12.5 ms) web -> cart",
		"POST /api/cart -> 503 (120 ms) web -> cart",
		"/shop.Pricing/Quote -> UNAVAILABLE (3.25 ms) cart -> pricing",
		"GET cart:42 -> ok (0.42 ms) cart -> redis [incomplete]",
		"A cart.shop.svc.cluster.local -> NXDOMAIN (1.7 ms) web -> coredns",
		"tcp 517 B sent, 4.1 kB received (1500 ms) curl -> 203.0.113.9:443",
	}
	for i, w := range want {
		if got := fieldByName(t, f, "body").At(i); got != w {
			t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
	for _, name := range []string{"timestamp", "body", "severity", "id", "labels"} {
		fieldByName(t, f, name)
	}
	if got := fieldByName(t, f, "labels").Type(); got != data.FieldTypeJSON {
		t.Errorf("labels type %v, want json", got)
	}
	var labels map[string]string
	if err := json.Unmarshal(fieldByName(t, f, "labels").At(1).(json.RawMessage), &labels); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"namespace": "shop", "workload": "cart", "protocol": "http", "method": "POST", "status": "503"}; !reflect.DeepEqual(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	checkEntryLink(t, fieldByName(t, f, "id"))
}

func TestLabelsEscaping(t *testing.T) {
	odd := "a\"b\\c\n\x01<tag>&\u2028é\xff"
	e := &podwirev1.Entry{Protocol: "http", Method: odd, Dst: &podwirev1.Endpoint{Namespace: odd, Workload: "w"}}
	raw := fieldByName(t, Logs([]*podwirev1.Entry{e}, testLinks), "labels").At(0).(json.RawMessage)
	var got map[string]string
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("labels %s: %v", raw, err)
	}
	// encoding/json is the reference: same escaping, same replacement of
	// invalid UTF-8.
	ref, _ := json.Marshal(odd)
	var want string
	_ = json.Unmarshal(ref, &want)
	if got["method"] != want || got["namespace"] != want {
		t.Errorf("labels %q, want %q", got, want)
	}
}
