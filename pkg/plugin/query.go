package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/tracing"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/filter"
	"github.com/podwire/podwire/pkg/frames"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Query types (docs/plugin.md).
const (
	queryTraffic    = "traffic"
	queryLogs       = "logs"
	queryServiceMap = "serviceMap"
	queryMetrics    = "metrics"
	queryEntry      = "entry"
	queryValues     = "values"
)

// Query limits.
const (
	defaultLimit = 1000
	maxLimit     = 50000
	// maxSteps bounds a metrics query's points per series, as the agents
	// do.
	maxSteps = 11000
	// defaultValuesLimit is how many values a values query lists.
	defaultValuesLimit = 1000
	// maxParallelQueries bounds the queries of one request run at once.
	maxParallelQueries = 8
)

// query is the JSON model of one query.
type query struct {
	QueryType string `json:"queryType"`
	Filter    string `json:"filter"`
	Limit     *int   `json:"limit"`
	GroupBy   string `json:"groupBy"`
	EntryID   string `json:"entryId"`
	Field     string `json:"field"`
	Live      bool   `json:"live"`
	// Metric picks one metric of a metrics query ("" or "all": every one),
	// so an alert rule gets one series per group.
	Metric string `json:"metric"`
}

// metricNames are the metrics a metrics query can pick.
var metricNames = []string{frames.MetricRequests, frames.MetricFailed, frames.MetricP50, frames.MetricP95, frames.MetricP99}

var mapGroups = []string{"workload", "service", "namespace", "pod"}
var metricGroups = append(slices.Clone(mapGroups), "node", "protocol", "method", "path", "status", "none")

// QueryData answers every query of the request; each query's error is its
// own, the others still answer.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelQueries)
	for _, q := range req.Queries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := d.query(ctx, q)
			mu.Lock()
			resp.Responses[q.RefID] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, dq backend.DataQuery) backend.DataResponse {
	var q query
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.ErrDataResponse(backend.StatusBadRequest, "reading the query: "+err.Error())
	}
	if dq.QueryType != "" {
		q.QueryType = dq.QueryType
	}
	if q.QueryType == "" {
		q.QueryType = queryTraffic
	}
	ctx, span := tracing.DefaultTracer().Start(ctx, "podwire.query", trace.WithAttributes(
		attribute.String("podwire.query_type", q.QueryType),
		attribute.String("podwire.ref_id", dq.RefID),
	))
	defer span.End()

	frs, err := d.answer(ctx, dq, q)
	if err != nil {
		var qe *queryError
		if errors.As(err, &qe) {
			return backend.ErrDataResponse(backend.StatusBadRequest, qe.msg)
		}
		span.RecordError(err)
		return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream, err.Error())
	}
	for _, f := range frs {
		f.RefID = dq.RefID
	}
	return backend.DataResponse{Frames: frs}
}

// answer runs one query.
func (d *Datasource) answer(ctx context.Context, dq backend.DataQuery, q query) (data.Frames, error) {
	switch q.QueryType {
	case queryTraffic, queryLogs, queryServiceMap, queryMetrics, queryEntry, queryValues:
	default:
		return nil, badQuery("unknown queryType %q: want one of %s", q.QueryType,
			strings.Join([]string{queryTraffic, queryLogs, queryServiceMap, queryMetrics, queryEntry, queryValues}, ", "))
	}
	if q.QueryType != queryEntry {
		if err := checkFilter(q.Filter); err != nil {
			return nil, err
		}
	}
	agents, warning, err := d.agents(ctx)
	if err != nil {
		return nil, err
	}
	var n notices
	if warning != nil {
		n.warn("%v", warning)
	}
	var frs data.Frames
	switch q.QueryType {
	case queryTraffic, queryLogs:
		frs, err = d.entries(ctx, agents, dq, q, &n)
	case queryServiceMap:
		frs, err = d.serviceMap(ctx, agents, dq, q, &n)
	case queryMetrics:
		frs, err = d.metrics(ctx, agents, dq, q, &n)
	case queryEntry:
		frs, err = d.entry(ctx, agents, q, &n)
	case queryValues:
		frs, err = d.values(ctx, agents, dq, q, &n)
	}
	if err != nil {
		return nil, err
	}
	n.attach(frs)
	return frs, nil
}

// checkFilter compiles the filter here, so a bad one is this query's error
// with its position before any agent is asked.
func checkFilter(expr string) error {
	if _, err := filter.Compile(expr); err != nil {
		return &queryError{msg: err.Error()}
	}
	return nil
}

// timeRange returns the query's range as the agent API's timestamps (unset
// for a zero time).
func timeRange(tr backend.TimeRange) (from, to *timestamppb.Timestamp) {
	if !tr.From.IsZero() {
		from = timestamppb.New(tr.From)
	}
	if !tr.To.IsZero() {
		to = timestamppb.New(tr.To)
	}
	return from, to
}

func (d *Datasource) limit(q query, n *notices) (int, error) {
	if q.Limit == nil || *q.Limit == 0 {
		return defaultLimit, nil
	}
	l := *q.Limit
	if l < 0 {
		return 0, badQuery("limit %d is negative", l)
	}
	if l > maxLimit {
		n.info("limit %d is more than %d: showing at most %d entries", l, maxLimit, maxLimit)
		return maxLimit, nil
	}
	return l, nil
}

// entries answers traffic and logs: every agent's newest entries, merged by
// time with the limit applied after the merge.
func (d *Datasource) entries(ctx context.Context, agents []*agent, dq backend.DataQuery, q query, n *notices) (data.Frames, error) {
	limit, err := d.limit(q, n)
	if err != nil {
		return nil, err
	}
	from, to := timeRange(dq.TimeRange)
	req := &podwirev1.QueryRequest{Filter: q.Filter, From: from, To: to, Limit: int32(limit), OmitHeaders: true}
	lists, more, err := d.mergeQuery(ctx, agents, req, limit, n)
	if err != nil {
		return nil, err
	}
	es := frames.MergeEntries(lists, limit)
	if more {
		n.info("showing the newest %d entries: more match (raise the limit or narrow the filter or time range)", limit)
	}
	var f *data.Frame
	kind := q.QueryType
	if kind == queryLogs {
		f = frames.Logs(es, d.links)
	} else {
		f = frames.Traffic(es, d.links)
	}
	if q.Live {
		if path, err := d.tails.path(kind, q.Filter); err != nil {
			n.warn("%v", err)
		} else {
			if f.Meta == nil {
				f.Meta = &data.FrameMeta{}
			}
			f.Meta.Channel = "ds/" + d.uid + "/" + path
		}
	}
	return data.Frames{f}, nil
}

func checkGroup(groupBy string, allowed []string) (string, error) {
	if groupBy == "" {
		return "workload", nil
	}
	if !slices.Contains(allowed, groupBy) {
		return "", badQuery("groupBy %q: want one of %s", groupBy, strings.Join(allowed, ", "))
	}
	return groupBy, nil
}

// serviceMap answers Node Graph nodes and edges from the agents' merged
// maps.
func (d *Datasource) serviceMap(ctx context.Context, agents []*agent, dq backend.DataQuery, q query, n *notices) (data.Frames, error) {
	groupBy, err := checkGroup(q.GroupBy, mapGroups)
	if err != nil {
		return nil, err
	}
	from, to := timeRange(dq.TimeRange)
	req := &podwirev1.ServiceMapRequest{Filter: q.Filter, From: from, To: to, GroupBy: groupBy}
	var cut truncations
	answers := fanOut(ctx, agents, d.s.Timeout, "ServiceMap", func(ctx context.Context, a *agent) (*podwirev1.ServiceMapResponse, error) {
		return truncatedCall(&cut, a, func(opts ...grpc.CallOption) (*podwirev1.ServiceMapResponse, error) {
			return a.client.ServiceMap(ctx, req, opts...)
		})
	})
	cut.warn(n)
	good, err := collect(answers, d.s.Timeout, "service map", n)
	if err != nil {
		return nil, err
	}
	rs := make([]*podwirev1.ServiceMapResponse, len(good))
	for i, a := range good {
		rs[i] = a.val
		if o := a.val.GetOldest(); o != nil && !dq.TimeRange.From.IsZero() && o.AsTime().After(dq.TimeRange.From) {
			n.info("agent %s holds entries since %s only: the map covers less than the time range", a.agent.name(), o.AsTime().UTC().Format(time.RFC3339))
		}
	}
	nodes, edges := frames.ServiceMap(frames.MergeServiceMap(rs), groupBy, dq.TimeRange.From, dq.TimeRange.To, d.links)
	return data.Frames{nodes, edges}, nil
}

// metricsStep is the query's interval, at least a second, widened so the
// range has at most maxSteps steps.
func metricsStep(interval time.Duration, from, to time.Time) time.Duration {
	step := max(interval, time.Second)
	if span := to.Sub(from); span > 0 {
		if minStep := (span + maxSteps - 1) / maxSteps; step < minStep {
			step = ((minStep + time.Second - 1) / time.Second) * time.Second
		}
	}
	return step
}

// metrics answers time series per group from the agents' merged series.
func (d *Datasource) metrics(ctx context.Context, agents []*agent, dq backend.DataQuery, q query, n *notices) (data.Frames, error) {
	groupBy, err := checkGroup(q.GroupBy, metricGroups)
	if err != nil {
		return nil, err
	}
	tr := dq.TimeRange
	if tr.From.IsZero() || tr.To.IsZero() || !tr.From.Before(tr.To) {
		return nil, badQuery("metrics need a time range with from before to")
	}
	if q.Metric != "" && q.Metric != "all" && !slices.Contains(metricNames, q.Metric) {
		return nil, badQuery("metric %q: want one of all, %s", q.Metric, strings.Join(metricNames, ", "))
	}
	step := metricsStep(dq.Interval, tr.From, tr.To)
	req := &podwirev1.MetricsRequest{
		Filter: q.Filter, From: timestamppb.New(tr.From), To: timestamppb.New(tr.To),
		Step: durationpb.New(step), GroupBy: groupBy,
	}
	var cut truncations
	answers := fanOut(ctx, agents, d.s.Timeout, "Metrics", func(ctx context.Context, a *agent) (*podwirev1.MetricsResponse, error) {
		return truncatedCall(&cut, a, func(opts ...grpc.CallOption) (*podwirev1.MetricsResponse, error) {
			return a.client.Metrics(ctx, req, opts...)
		})
	})
	cut.warn(n)
	good, err := collect(answers, d.s.Timeout, "metrics", n)
	if err != nil {
		return nil, err
	}
	rs := make([]*podwirev1.MetricsResponse, len(good))
	for i, a := range good {
		rs[i] = a.val
	}
	frs := frames.Metrics(frames.MergeMetrics(rs), groupBy, step, tr.From, tr.To)
	if q.Metric != "" && q.Metric != "all" {
		frs = slices.DeleteFunc(frs, func(f *data.Frame) bool {
			return len(f.Fields) < 2 || f.Fields[1].Name != q.Metric
		})
	}
	if len(frs) == 0 {
		// No series: one empty frame keeps the notices and tells Grafana
		// there is no data rather than an error.
		frs = data.Frames{data.NewFrame("", data.NewField("time", nil, []time.Time{}), data.NewField("value", nil, []float64{}))}
	}
	return frs, nil
}

// entry answers one entry by id.
func (d *Datasource) entry(ctx context.Context, agents []*agent, q query, n *notices) (data.Frames, error) {
	id := strings.TrimSpace(q.EntryID)
	if id == "" {
		return nil, badQuery("entry query without entryId")
	}
	e, err := d.getEntry(ctx, agents, id, n)
	if err != nil {
		return nil, err
	}
	return frames.Entry(e), nil
}

// errNotFound is an entry no agent has.
type errNotFound struct{ id string }

func (e *errNotFound) Error() string {
	return fmt.Sprintf("entry %q not found on any agent: unknown, or evicted from its agent's store", e.id)
}

// getEntry asks the agent whose node prefixes the id first, then every
// agent.
func (d *Datasource) getEntry(ctx context.Context, agents []*agent, id string, n *notices) (*podwirev1.Entry, error) {
	get := func(ctx context.Context, a *agent) (*podwirev1.Entry, error) {
		e, err := a.client.GetEntry(ctx, &podwirev1.GetEntryRequest{Id: id})
		if err == nil {
			a.setNode(e.GetNode())
		}
		return e, err
	}
	var owner *agent
	for _, a := range agents {
		if node := a.Node(); node != "" && strings.HasPrefix(id, node+"-") && (owner == nil || len(node) > len(owner.Node())) {
			owner = a
		}
	}
	if owner != nil {
		r := callAgent(ctx, owner, d.s.Timeout, "GetEntry", get)
		if r.err == nil {
			return r.val, nil
		}
		if status.Code(r.err) == codes.InvalidArgument {
			return nil, &queryError{msg: status.Convert(r.err).Message()}
		}
	}
	answers := fanOut(ctx, agents, d.s.Timeout, "GetEntry", get)
	var failures []string
	for _, a := range answers {
		switch {
		case a.err == nil:
			return a.val, nil
		case status.Code(a.err) == codes.NotFound:
		case status.Code(a.err) == codes.InvalidArgument:
			return nil, &queryError{msg: status.Convert(a.err).Message()}
		default:
			failures = append(failures, describe(a.agent, a.err, d.s.Timeout))
		}
	}
	if len(failures) > 0 {
		return nil, fmt.Errorf("entry %q not found on the agents that answered; %s", id, strings.Join(failures, "; "))
	}
	return nil, &errNotFound{id: id}
}

// values answers the distinct values of one field, most frequent first.
func (d *Datasource) values(ctx context.Context, agents []*agent, dq backend.DataQuery, q query, n *notices) (data.Frames, error) {
	field := strings.TrimSpace(q.Field)
	if field == "" {
		return nil, badQuery("values query without field: want namespace, workload, service, pod, protocol or another string field of the filter language")
	}
	limit := defaultValuesLimit
	if q.Limit != nil && *q.Limit > 0 {
		limit = min(*q.Limit, maxLimit)
	}
	from, to := timeRange(dq.TimeRange)
	vs, err := d.fieldValues(ctx, agents, &podwirev1.ValuesRequest{Field: field, Filter: q.Filter, From: from, To: to, Limit: int32(limit)}, n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Value
	}
	return data.Frames{frames.Values(out)}, nil
}

// fieldValues asks every agent for a field's values and adds up their
// counts; most frequent first, at most req.Limit.
func (d *Datasource) fieldValues(ctx context.Context, agents []*agent, req *podwirev1.ValuesRequest, n *notices) ([]*podwirev1.ValueCount, error) {
	var cut truncations
	answers := fanOut(ctx, agents, d.s.Timeout, "Values", func(ctx context.Context, a *agent) (*podwirev1.ValuesResponse, error) {
		return truncatedCall(&cut, a, func(opts ...grpc.CallOption) (*podwirev1.ValuesResponse, error) {
			return a.client.Values(ctx, req, opts...)
		})
	})
	cut.warn(n)
	good, err := collect(answers, d.s.Timeout, "values", n)
	if err != nil {
		return nil, err
	}
	counts := map[string]uint64{}
	for _, a := range good {
		for _, v := range a.val.GetValues() {
			counts[v.GetValue()] += v.GetCount()
		}
	}
	out := make([]*podwirev1.ValueCount, 0, len(counts))
	for v, c := range counts {
		out = append(out, &podwirev1.ValueCount{Value: v, Count: c})
	}
	slices.SortFunc(out, func(a, b *podwirev1.ValueCount) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Value, b.Value)
	})
	if l := int(req.Limit); l > 0 && len(out) > l {
		out = out[:l]
	}
	return out, nil
}
