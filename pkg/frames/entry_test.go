package frames

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func frameNamed(t *testing.T, fs data.Frames, name string) *data.Frame {
	t.Helper()
	for _, f := range fs {
		if f.Name == name {
			return f
		}
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	t.Fatalf("no frame %q in %v", name, names)
	return nil
}

// rows returns a two-column frame as "name=value" strings.
func rows(f *data.Frame) []string {
	var out []string
	for i := range f.Rows() {
		out = append(out, f.Fields[0].At(i).(string)+"="+f.Fields[1].At(i).(string))
	}
	return out
}

func TestEntryFrames(t *testing.T) {
	e := sampleEntries()[0]
	fs := Entry(e)
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ", "); got != "Summary, Timings, Request headers, Response headers, Response body" {
		t.Errorf("frames %s", got)
	}
	sum := strings.Join(rows(frameNamed(t, fs, "Summary")), "\n") + "\n"
	for _, want := range []string{
		"id=worker-1-1005", "time=2026-05-04T10:00:05Z", "protocol=http", "http version=1.1",
		"source=pod web-7d9f8-abcde, workload web (Deployment), namespace shop, service web, node worker-1, address 10.0.1.5:43512",
		"method=GET", "path=/api/cart?user=42", "status=200", "failed=false", "latency=12.5 ms",
		"node=worker-1", "incomplete=false", "response body=47 bytes",
	} {
		if !strings.Contains(sum, want+"\n") {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	// Headers in arrival order, repeats kept.
	if got := strings.Join(rows(frameNamed(t, fs, "Response headers")), "; "); got != "content-type=application/json; set-cookie=a=1; set-cookie=b=2" {
		t.Errorf("response headers %s", got)
	}
	body := frameNamed(t, fs, "Response body")
	if body.Rows() != 2 || body.Fields[1].At(1) != `"total":19.9}` {
		t.Errorf("body rows %d: %v", body.Rows(), body.Fields[1].At(body.Rows()-1))
	}
	if body.Meta.Custom.(map[string]any)["contentType"] != "application/json" {
		t.Errorf("body meta %+v", body.Meta.Custom)
	}
	tm := frameNamed(t, fs, "Timings")
	if tm.Rows() != 4 || tm.Fields[0].At(3) != "response end" || tm.Fields[2].At(3).(float64) != 12.5 {
		t.Errorf("timings %d rows, last %v at %v ms", tm.Rows(), tm.Fields[0].At(tm.Rows()-1), tm.Fields[2].At(tm.Rows()-1))
	}
}

func TestEntryBodies(t *testing.T) {
	bin := make([]byte, 40)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	big := strings.Repeat("line of text\n", 20000)
	for _, tc := range []struct {
		name      string
		m         *podwirev1.Message
		rows      int
		firstCell string
		notice    string
	}{
		{"binary as a hex dump", &podwirev1.Message{Body: base64.StdEncoding.EncodeToString(bin), BodyEncoding: "base64", BodyBytes: 40},
			3, "00 07 0e 15 1c 23 2a 31  38 3f 46 4d 54 5b 62 69", ""},
		{"large text kept whole", &podwirev1.Message{Body: big, BodyBytes: int64(len(big))}, 20000, "line of text", ""},
		{"crlf lines", &podwirev1.Message{Body: "a\r\nb\r\n", BodyBytes: 6}, 2, "a", ""},
		{"truncated", &podwirev1.Message{Body: "abc", BodyBytes: 1000, Truncated: true}, 1, "abc", "body truncated by the agent: 3 bytes kept (1000 bytes on the wire)"},
		{"not kept", &podwirev1.Message{BodyBytes: 1000}, 1, "", "body not kept (1000 bytes on the wire)"},
		{"bad base64", &podwirev1.Message{Body: "!!", BodyEncoding: "base64", BodyBytes: 2}, 1, "!!", "decoding body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := Entry(&podwirev1.Entry{Id: "x", Protocol: "http", Request: tc.m})
			f := frameNamed(t, fs, "Request body")
			if f.Rows() != tc.rows {
				t.Fatalf("%d rows, want %d", f.Rows(), tc.rows)
			}
			if got := f.Fields[1].At(0); got != tc.firstCell {
				t.Errorf("first row %q, want %q", got, tc.firstCell)
			}
			var notices []string
			for _, n := range f.Meta.Notices {
				notices = append(notices, n.Text)
			}
			if got := strings.Join(notices, "; "); !strings.HasPrefix(got, tc.notice) || (tc.notice == "") != (got == "") {
				t.Errorf("notices %q, want %q", got, tc.notice)
			}
		})
	}
	// The hex dump's text column shows printable bytes only.
	f := frameNamed(t, Entry(&podwirev1.Entry{Request: &podwirev1.Message{
		Body: base64.StdEncoding.EncodeToString([]byte("GET \x00\xff/")), BodyEncoding: "base64", BodyBytes: 7}}), "Request body")
	if got := f.Fields[2].At(0); got != "GET ../" {
		t.Errorf("hex text %q", got)
	}
}

func TestValues(t *testing.T) {
	in := []string{"shop", "data"}
	f := Values(in)
	in[0] = "changed"
	if f.Name != "values" || len(f.Fields) != 1 || f.Fields[0].Name != "value" || f.Rows() != 2 || f.Fields[0].At(0) != "shop" {
		t.Errorf("values frame %+v", f)
	}
}
