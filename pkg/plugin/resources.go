package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/podwire/podwire/agent/filter"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// maxResourceBody bounds a resource call's request body.
const maxResourceBody = 1 << 20

// CallResource serves the resources of docs/plugin.md.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	return d.resources.CallResource(ctx, req, sender)
}

func (d *Datasource) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /entries/{id}", d.handleEntry)
	mux.HandleFunc("POST /validate", handleValidate)
	mux.HandleFunc("GET /fields", handleFields)
	mux.HandleFunc("GET /complete", d.handleComplete)
	mux.HandleFunc("GET /tag-keys", handleTagKeys)
	mux.HandleFunc("GET /tag-values", d.handleTagValues)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no resource "+r.Method+" "+r.URL.Path+": see docs/plugin.md for the resources")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// writeError answers {"error": msg} with the status code.
func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]any{"error": msg, "status": code})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// writeQueryError answers a query failure with a status that fits it.
func writeQueryError(w http.ResponseWriter, err error) {
	var qe *queryError
	var nf *errNotFound
	switch {
	case errors.As(err, &qe):
		writeError(w, http.StatusBadRequest, qe.msg)
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, nf.Error())
	default:
		writeError(w, http.StatusBadGateway, err.Error())
	}
}

// handleEntry answers one entry with whole bodies, as the agent API's JSON.
func (d *Datasource) handleEntry(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.PathValue("id"))
	if id == "" {
		writeError(w, http.StatusBadRequest, "entry id is empty")
		return
	}
	agents, _, err := d.agents(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	var n notices
	e, err := d.getEntry(r.Context(), agents, id, &n)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	b, err := protojson.Marshal(e)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the entry: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// validation is POST /validate's answer.
type validation struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Offset *int   `json:"offset,omitempty"`
}

func handleValidate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxResourceBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > maxResourceBody {
		writeError(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return
	}
	var in struct {
		Filter *string `json:"filter"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, `want {"filter": "..."}: `+err.Error())
		return
	}
	if in.Filter == nil {
		writeError(w, http.StatusBadRequest, `want {"filter": "..."}: no filter`)
		return
	}
	_, err = filter.Compile(*in.Filter)
	if err == nil {
		writeJSON(w, http.StatusOK, validation{OK: true})
		return
	}
	v := validation{Error: err.Error()}
	var fe *filter.Error
	if errors.As(err, &fe) {
		v.Error, v.Line, v.Column = fe.Msg, fe.Line, fe.Column
		off := fe.Offset
		v.Offset = &off
	}
	writeJSON(w, http.StatusOK, v)
}

func handleFields(w http.ResponseWriter, _ *http.Request) {
	type field struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Doc     string `json:"doc"`
		Example string `json:"example"`
	}
	var out []field
	for _, f := range filter.Fields() {
		out = append(out, field{f.Name, f.Type, f.Doc, f.Example})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleComplete answers values seen for a field, most frequent first.
func (d *Datasource) handleComplete(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	field := strings.TrimSpace(q.Get("field"))
	if field == "" {
		writeError(w, http.StatusBadRequest, "missing field parameter (for example field=dst.namespace)")
		return
	}
	limit := 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000")
			return
		}
		limit = n
	}
	vs, warnings, err := d.resourceValues(r.Context(), &podwirev1.ValuesRequest{Field: field, Prefix: q.Get("prefix"), Filter: q.Get("filter"), Limit: int32(limit)})
	if err != nil {
		writeQueryError(w, err)
		return
	}
	type value struct {
		Value string `json:"value"`
		Count uint64 `json:"count"`
	}
	out := struct {
		Values   []value  `json:"values"`
		Warnings []string `json:"warnings,omitempty"`
	}{Values: []value{}, Warnings: warnings}
	for _, v := range vs {
		out.Values = append(out.Values, value{v.Value, v.Count})
	}
	writeJSON(w, http.StatusOK, out)
}

// resourceValues is fieldValues for a resource call: the filter checked first,
// warnings as strings.
func (d *Datasource) resourceValues(ctx context.Context, req *podwirev1.ValuesRequest) ([]*podwirev1.ValueCount, []string, error) {
	if err := checkFilter(req.Filter); err != nil {
		return nil, nil, err
	}
	agents, warning, err := d.agents(ctx)
	if err != nil {
		return nil, nil, err
	}
	var n notices
	if warning != nil {
		n.warn("%v", warning)
	}
	vs, err := d.fieldValues(ctx, agents, req, &n)
	if err != nil {
		return nil, nil, err
	}
	var ws []string
	for _, x := range n {
		ws = append(ws, x.Text)
	}
	return vs, ws, nil
}

// tagKeyTypes are the filter types ad-hoc filters can compare with "=".
var tagKeyTypes = map[string]string{"string": "string", "int": "number", "bool": "boolean"}

func handleTagKeys(w http.ResponseWriter, _ *http.Request) {
	type key struct {
		Text string `json:"text"`
		Type string `json:"type"`
	}
	out := []key{}
	for _, f := range filter.Fields() {
		if t, ok := tagKeyTypes[f.Type]; ok {
			out = append(out, key{f.Name, t})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleTagValues answers the values of one key for ad-hoc filters.
func (d *Datasource) handleTagValues(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.URL.Query().Get("key"))
	if key == "" {
		writeError(w, http.StatusBadRequest, "missing key parameter (for example key=dst.namespace)")
		return
	}
	vs, _, err := d.resourceValues(r.Context(), &podwirev1.ValuesRequest{Field: key, Limit: 1000})
	if err != nil {
		writeQueryError(w, err)
		return
	}
	type text struct {
		Text string `json:"text"`
	}
	out := make([]text, 0, len(vs))
	for _, v := range vs {
		out = append(out, text{v.Value})
	}
	writeJSON(w, http.StatusOK, out)
}
