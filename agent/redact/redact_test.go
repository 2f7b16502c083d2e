package redact

import (
	"reflect"
	"strings"
	"testing"

	"github.com/podwire/podwire/agent/entry"
)

func hdrs(kv ...string) []entry.Header {
	var hs []entry.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, entry.Header{Name: kv[i], Value: kv[i+1]})
	}
	return hs
}

func TestEntry(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		in, want  entry.Entry
		wantStats Stats
	}{
		{
			name: "default headers",
			in: entry.Entry{
				Request: &entry.Message{Headers: hdrs("host", "a", "authorization", "Bearer abc.def", "cookie", "s=1", "proxy-authorization", "Basic xyz")},
				Response: &entry.Message{
					Headers:  hdrs("set-cookie", "s=2; Path=/", "set-cookie", "t=3", "content-type", "text/plain"),
					Trailers: hdrs("authorization", "x"),
				},
			},
			want: entry.Entry{
				Request: &entry.Message{Headers: hdrs("host", "a", "authorization", "**************", "cookie", "***", "proxy-authorization", "*********")},
				Response: &entry.Message{
					Headers:  hdrs("set-cookie", "***********", "set-cookie", "***", "content-type", "text/plain"),
					Trailers: hdrs("authorization", "*"),
				},
			},
			wantStats: Stats{Headers: 6, Entries: 1},
		},
		{
			name: "extra headers any case",
			cfg:  Config{Headers: []string{"X-Api-Key", " x-token "}},
			in: entry.Entry{Request: &entry.Message{
				Headers:  hdrs("x-api-key", "k1", "x-token", "t", "x-other", "o"),
				Trailers: hdrs("x-api-key", "k2"),
			}},
			want: entry.Entry{Request: &entry.Message{
				Headers:  hdrs("x-api-key", "**", "x-token", "*", "x-other", "o"),
				Trailers: hdrs("x-api-key", "**"),
			}},
			wantStats: Stats{Headers: 3, Entries: 1},
		},
		{
			name: "empty value untouched",
			in:   entry.Entry{Request: &entry.Message{Headers: hdrs("authorization", "")}},
			want: entry.Entry{Request: &entry.Message{Headers: hdrs("authorization", "")}},
		},
		{
			name: "body patterns",
			cfg:  Config{BodyPatterns: []string{`"password":"[^"]*"`, `\b\d{4}-\d{4}-\d{4}-\d{4}\b`}},
			in: entry.Entry{
				Request:  &entry.Message{Body: []byte(`{"user":"a","password":"hunter2"}`)},
				Response: &entry.Message{Body: []byte("card 1234-5678-9012-3456 and 1111-2222-3333-4444 ok")},
			},
			want: entry.Entry{
				Request:  &entry.Message{Body: []byte(`{"user":"a",` + strings.Repeat("*", 20) + `}`)},
				Response: &entry.Message{Body: []byte("card " + strings.Repeat("*", 19) + " and " + strings.Repeat("*", 19) + " ok")},
			},
			wantStats: Stats{BodyMatches: 3, Entries: 1},
		},
		{
			name:      "multi-byte match keeps byte length",
			cfg:       Config{BodyPatterns: []string{`é+`}},
			in:        entry.Entry{Request: &entry.Message{Body: []byte("aééb")}},
			want:      entry.Entry{Request: &entry.Message{Body: []byte("a****b")}},
			wantStats: Stats{BodyMatches: 1, Entries: 1},
		},
		{
			name: "empty matches ignored",
			cfg:  Config{BodyPatterns: []string{`x*`}},
			in:   entry.Entry{Request: &entry.Message{Body: []byte("abc")}},
			want: entry.Entry{Request: &entry.Message{Body: []byte("abc")}},
		},
		{
			name: "disabled",
			cfg:  Config{Disable: true, BodyPatterns: []string{`secret`}},
			in:   entry.Entry{Request: &entry.Message{Headers: hdrs("authorization", "x"), Body: []byte("secret")}},
			want: entry.Entry{Request: &entry.Message{Headers: hdrs("authorization", "x"), Body: []byte("secret")}},
		},
		{
			name: "no messages",
			in:   entry.Entry{Method: "GET"},
			want: entry.Entry{Method: "GET"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e := tc.in
			r.Entry(&e)
			if !reflect.DeepEqual(e.Request, tc.want.Request) {
				t.Errorf("request = %+v, want %+v", e.Request, tc.want.Request)
			}
			if !reflect.DeepEqual(e.Response, tc.want.Response) {
				t.Errorf("response = %+v, want %+v", e.Response, tc.want.Response)
			}
			if got := r.Stats(); got != tc.wantStats {
				t.Errorf("Stats() = %+v, want %+v", got, tc.wantStats)
			}
		})
	}
}

func TestBodyCopiedBeforeChange(t *testing.T) {
	r, err := New(Config{BodyPatterns: []string{`secret`}})
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("my secret")
	e := entry.Entry{Request: &entry.Message{Body: buf}}
	r.Entry(&e)
	if string(buf) != "my secret" {
		t.Errorf("shared buffer changed: %q", buf)
	}
	if string(e.Request.Body) != "my ******" {
		t.Errorf("body = %q", e.Request.Body)
	}
}

func TestBadPattern(t *testing.T) {
	_, err := New(Config{BodyPatterns: []string{`ok`, `a(b`}})
	if err == nil || !strings.Contains(err.Error(), `"a(b"`) {
		t.Fatalf("error = %v, want one naming the pattern", err)
	}
}

func TestNilRedactor(t *testing.T) {
	var r *Redactor
	e := entry.Entry{Request: &entry.Message{Headers: hdrs("authorization", "x")}}
	r.Entry(&e)
	if r.Stats() != (Stats{}) {
		t.Error("nil Redactor has stats")
	}
}
