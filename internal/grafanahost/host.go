// Package grafanahost answers the part of Grafana's HTTP API a data source
// plugin's frontend calls — /api/ds/query, the data source's resources and
// health — by forwarding to the real plugin backend over the plugin
// protocol, as Grafana's server does. Browser tests serve the frontend from
// it; Grafana itself is not available here.
package grafanahost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/podwire/podwire/internal/plugintest"
)

// maxRequestBytes bounds a request body the host reads (Grafana's own
// limit for /api/ds/query is configurable; this one fits any test).
const maxRequestBytes = 16 << 20

// Host is an http.Handler for one data source of one plugin.
type Host struct {
	Plugin *plugintest.Plugin
	// DS is the data source as first configured; saving settings through
	// PUT /api/datasources/uid/<uid> replaces it for later requests (its
	// UID stays).
	DS plugintest.DataSource
	// Static serves everything outside /api/ (the harness page and its
	// bundle); nil answers 404.
	Static http.Handler

	mu    sync.Mutex
	saved *plugintest.DataSource
}

// DataSource is the data source as currently saved.
func (h *Host) DataSource() plugintest.DataSource {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.saved != nil {
		return *h.saved
	}
	return h.DS
}

func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	uid := h.uid()
	switch {
	case r.URL.Path == "/api/datasources/uid/"+uid && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, settingsOf(h.DataSource()))
	case r.URL.Path == "/api/datasources/uid/"+uid && r.Method == http.MethodPut:
		h.save(w, r)
	case r.URL.Path == "/api/ds/query" && r.Method == http.MethodPost:
		h.query(w, r)
	case r.URL.Path == "/api/datasources/uid/"+uid+"/health":
		h.health(w, r)
	case strings.HasPrefix(r.URL.Path, "/api/datasources/uid/"+uid+"/resources/"):
		h.resource(w, r, strings.TrimPrefix(r.URL.Path, "/api/datasources/uid/"+uid+"/resources/"))
	case strings.HasPrefix(r.URL.Path, "/api/"):
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "not found: " + r.URL.Path})
	case h.Static != nil:
		h.Static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *Host) uid() string {
	return h.DataSource().PluginContext().DataSourceInstanceSettings.UID
}

// pluginContext is the plugin context Grafana sends with a request to the
// data source as saved.
func (h *Host) pluginContext() backend.PluginContext {
	return h.DataSource().PluginContext()
}

// settings is the data source as Grafana's API shows it to the config
// editor: secure values only as the names of those that are set.
type settings struct {
	ID               int64           `json:"id"`
	UID              string          `json:"uid"`
	OrgID            int64           `json:"orgId"`
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	TypeName         string          `json:"typeName"`
	Access           string          `json:"access"`
	URL              string          `json:"url"`
	IsDefault        bool            `json:"isDefault"`
	JSONData         json.RawMessage `json:"jsonData"`
	SecureJSONFields map[string]bool `json:"secureJsonFields"`
	ReadOnly         bool            `json:"readOnly"`
	Version          int64           `json:"version"`
}

func settingsOf(ds plugintest.DataSource) settings {
	is := ds.PluginContext().DataSourceInstanceSettings
	fields := map[string]bool{}
	for k, v := range ds.Secure {
		if v != "" {
			fields[k] = true
		}
	}
	return settings{ID: is.ID, UID: is.UID, OrgID: 1, Name: is.Name, Type: is.Type, TypeName: "Podwire", Access: "proxy",
		JSONData: is.JSONData, SecureJSONFields: fields, Version: is.Updated.Unix()}
}

// saveRequest is the body of PUT /api/datasources/uid/<uid>: the settings
// with the secure values the user typed (those not sent stay as they were,
// as in Grafana).
type saveRequest struct {
	Name             string            `json:"name"`
	JSONData         json.RawMessage   `json:"jsonData"`
	SecureJSONData   map[string]string `json:"secureJsonData"`
	SecureJSONFields map[string]bool   `json:"secureJsonFields"`
}

func (h *Host) save(w http.ResponseWriter, r *http.Request) {
	var req saveRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request: " + err.Error()})
		return
	}
	var jd map[string]any
	if len(req.JSONData) > 0 && string(req.JSONData) != "null" {
		if err := json.Unmarshal(req.JSONData, &jd); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "jsonData: " + err.Error()})
			return
		}
	}
	h.mu.Lock()
	cur := h.DS
	if h.saved != nil {
		cur = *h.saved
	}
	next := cur
	next.JSONData = jd
	next.Secure = map[string]string{}
	for k, v := range cur.Secure {
		// A field the editor reset (secureJsonFields[k] false) is gone
		// unless a new value comes with it.
		if keep, listed := req.SecureJSONFields[k]; !listed || keep {
			next.Secure[k] = v
		}
	}
	for k, v := range req.SecureJSONData {
		if v != "" {
			next.Secure[k] = v
		} else if !req.SecureJSONFields[k] {
			delete(next.Secure, k)
		}
	}
	if req.Name != "" {
		next.Name = req.Name
	}
	// A new version: the SDK makes a new instance for changed settings.
	next.Updated = time.Now()
	if !next.Updated.After(cur.Updated) {
		next.Updated = cur.Updated.Add(time.Second)
	}
	h.saved = &next
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"message": "Datasource updated", "datasource": settingsOf(next)})
}

// queryRequest is the body of Grafana's POST /api/ds/query.
type queryRequest struct {
	Queries []json.RawMessage `json:"queries"`
	From    string            `json:"from"`
	To      string            `json:"to"`
}

// queryHeader is the part of one query Grafana itself reads.
type queryHeader struct {
	RefID         string `json:"refId"`
	QueryType     string `json:"queryType"`
	IntervalMs    int64  `json:"intervalMs"`
	MaxDataPoints int64  `json:"maxDataPoints"`
	Datasource    struct {
		UID string `json:"uid"`
	} `json:"datasource"`
}

func (h *Host) query(w http.ResponseWriter, r *http.Request) {
	var req queryRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request: " + err.Error()})
		return
	}
	from, err := epochMillis(req.From, time.Now().Add(-time.Hour))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "from: " + err.Error()})
		return
	}
	to, err := epochMillis(req.To, time.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "to: " + err.Error()})
		return
	}
	pc := h.pluginContext()
	dr := &backend.QueryDataRequest{PluginContext: pc, Headers: map[string]string{}}
	for _, raw := range req.Queries {
		var q queryHeader
		if err := json.Unmarshal(raw, &q); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "query: " + err.Error()})
			return
		}
		if q.Datasource.UID != "" && q.Datasource.UID != pc.DataSourceInstanceSettings.UID {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "data source not found: " + q.Datasource.UID})
			return
		}
		interval := time.Duration(q.IntervalMs) * time.Millisecond
		if interval <= 0 {
			interval = time.Second
		}
		mdp := q.MaxDataPoints
		if mdp <= 0 {
			mdp = 100
		}
		dr.Queries = append(dr.Queries, backend.DataQuery{
			RefID: q.RefID, QueryType: q.QueryType, JSON: raw, Interval: interval, MaxDataPoints: mdp,
			TimeRange: backend.TimeRange{From: from, To: to},
		})
	}
	resp, err := h.Plugin.Data.QueryData(r.Context(), backend.ToProto().QueryDataRequest(dr))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "plugin: " + err.Error()})
		return
	}
	qdr, err := backend.FromProto().QueryDataResponse(resp)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "plugin answer: " + err.Error()})
		return
	}
	body, err := qdr.MarshalJSON()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "encoding frames: " + err.Error()})
		return
	}
	status := http.StatusOK
	for _, res := range qdr.Responses {
		if res.Error != nil {
			// Grafana answers a request with failed queries as
			// multi-status; the frontend reads each query's error.
			status = http.StatusMultiStatus
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// epochMillis parses Grafana's time range bounds: milliseconds since the
// epoch as a string.
func epochMillis(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("want milliseconds since the epoch, got %q", s)
	}
	return time.UnixMilli(ms), nil
}

func (h *Host) health(w http.ResponseWriter, r *http.Request) {
	res, err := h.Plugin.CheckHealth(r.Context(), h.pluginContext())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "plugin: " + err.Error()})
		return
	}
	out := map[string]any{"status": res.Status.String(), "message": res.Message}
	if len(res.JSONDetails) > 0 {
		out["details"] = json.RawMessage(res.JSONDetails)
	}
	status := http.StatusOK
	if res.Status != backend.HealthStatusOk {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, out)
}

func (h *Host) resource(w http.ResponseWriter, r *http.Request, path string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res, err := h.Plugin.CallResource(ctx, h.pluginContext(), r.Method, path, body)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"message": "plugin: " + err.Error()})
		return
	}
	for k, vs := range res.Headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	status := res.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.Copy(w, bytes.NewReader(res.Body))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
