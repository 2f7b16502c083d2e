package grafanahost

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/podwire/podwire/internal/plugintest"
)

// TestSaveSettings: saving through PUT /api/datasources/uid/<uid> changes
// the settings later requests carry; secure values stay unless reset, and
// GET shows only which are set.
func TestSaveSettings(t *testing.T) {
	h := &Host{DS: plugintest.DataSource{UID: "podwire", JSONData: map[string]any{"agents": []string{"a:1"}}, Secure: map[string]string{"token": "s3cret"}}}
	do := func(method, body string) (int, settings) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/api/datasources/uid/podwire", strings.NewReader(body)))
		var out struct {
			settings
			Datasource *settings `json:"datasource"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: %v: %s", method, err, w.Body)
		}
		if out.Datasource != nil {
			return w.Code, *out.Datasource
		}
		return w.Code, out.settings
	}

	code, s := do(http.MethodGet, "")
	if code != 200 || string(s.JSONData) != `{"agents":["a:1"]}` || !s.SecureJSONFields["token"] || s.UID != "podwire" {
		t.Fatalf("GET: %d %+v", code, s)
	}
	before := h.DataSource().PluginContext().DataSourceInstanceSettings.Updated

	code, s = do(http.MethodPut, `{"jsonData":{"agents":["a:1","b:2"]},"secureJsonFields":{"token":true}}`)
	if code != 200 || string(s.JSONData) != `{"agents":["a:1","b:2"]}` || !s.SecureJSONFields["token"] {
		t.Fatalf("PUT: %d %+v", code, s)
	}
	ds := h.DataSource()
	if ds.Secure["token"] != "s3cret" || !ds.PluginContext().DataSourceInstanceSettings.Updated.After(before) {
		t.Errorf("after saving: token %q, updated %v (before %v)", ds.Secure["token"], ds.PluginContext().DataSourceInstanceSettings.Updated, before)
	}

	// The editor's reset button: the field is no longer configured.
	if code, s = do(http.MethodPut, `{"jsonData":{"agents":["a:1"]},"secureJsonFields":{"token":false},"secureJsonData":{"token":""}}`); code != 200 || s.SecureJSONFields["token"] {
		t.Fatalf("PUT reset: %d %+v", code, s)
	}
	if _, ok := h.DataSource().Secure["token"]; ok {
		t.Error("the reset token is still sent to the plugin")
	}

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/api/datasources/uid/podwire", strings.NewReader(`{"jsonData":`)))
	if w.Code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d %s", w.Code, w.Body)
	}
	if got := string(settingsOf(h.DataSource()).JSONData); got != `{"agents":["a:1"]}` {
		t.Errorf("a bad request changed the settings: %s", got)
	}
}
