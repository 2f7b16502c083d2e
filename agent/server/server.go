// Package server serves the agent's store over the podwire.v1.Agent gRPC API.
package server

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/filter"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Query limits: a request without a limit gets DefaultLimit entries, and
// none gets more than MaxLimit.
const (
	DefaultLimit = 1000
	// MaxWatchers is how many Watch streams one agent serves at once.
	MaxWatchers = 64
	MaxLimit    = 100000
)

var errShuttingDown = status.Error(codes.Unavailable, "agent is shutting down")

// droppedCheck is how often an idle Watch looks for entries its watcher
// dropped, so a marker is not held back until the next matching entry.
const droppedCheck = 500 * time.Millisecond

// Config describes the agent the server speaks for.
type Config struct {
	// Node and Version fill StatusResponse when Status leaves them empty.
	Node, Version string
	// Status returns the agent's own status (capture state, programs,
	// capture counters); the server adds the store's counters. May be nil.
	Status func() *podwirev1.StatusResponse
	// Token, when set, is the bearer token every call must carry. The
	// server checks it itself as well, so it holds even on a grpc.Server
	// built without ServerOptions.
	Token string
}

// Server implements podwirev1.AgentServer over a store.
type Server struct {
	podwirev1.UnimplementedAgentServer

	st      *store.Store
	cfg     Config
	auth    *authenticator
	started time.Time

	closeOnce sync.Once
	closed    chan struct{}
	watchers  atomic.Int64
	// aggSlots holds a token per running aggregation (MaxAggregations).
	aggSlots chan struct{}
	// truncated counts entries aggregations left out at their bounds.
	truncated atomic.Uint64
}

var _ podwirev1.AgentServer = (*Server)(nil)

// New returns a server that answers from st.
func New(st *store.Store, cfg Config) *Server {
	s := &Server{st: st, cfg: cfg, started: time.Now(), closed: make(chan struct{}),
		aggSlots: make(chan struct{}, MaxAggregations)}
	if cfg.Token != "" {
		s.auth = &authenticator{token: []byte(cfg.Token)}
	}
	return s
}

// Close ends every Watch stream with Unavailable ("agent is shutting
// down"), so that grpc.Server.GracefulStop, which waits for streams, can
// return. Calls made after Close still work; Watch ends at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Register registers the Agent service on g.
func (s *Server) Register(g *grpc.Server) {
	podwirev1.RegisterAgentServer(g, s)
}

// Watch streams entries matching the filter as they are added to the store.
// Response headers are sent once the watcher is in place, so a client that
// has them knows it will see every later entry (or a dropped marker).
func (s *Server) Watch(req *podwirev1.WatchRequest, stream grpc.ServerStreamingServer[podwirev1.WatchResponse]) error {
	if err := s.auth.check(stream.Context()); err != nil {
		return err
	}
	f, err := compileFilter(req.GetFilter())
	if err != nil {
		return err
	}
	// A live filter runs on the capture path for every entry: one that
	// needs its cost counted would slow capture for everyone.
	if f.Costly() {
		return status.Errorf(codes.InvalidArgument, "filter is too costly to run on every live entry (it may loop over headers or bodies); use it with Query instead")
	}
	if n := s.watchers.Add(1); n > MaxWatchers {
		s.watchers.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "this agent already serves %d live watches", MaxWatchers)
	}
	defer s.watchers.Add(-1)
	maxBody := int(req.GetMaxBodyBytes())
	w := s.st.Watch(matcher(f))
	defer w.Close()
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	ctx := stream.Context()
	tick := time.NewTicker(droppedCheck)
	defer tick.Stop()
	sendDropped := func() error {
		if n := w.TakeDropped(); n > 0 {
			return stream.Send(&podwirev1.WatchResponse{Dropped: n})
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return errShuttingDown
		case <-tick.C:
			if err := sendDropped(); err != nil {
				return err
			}
		case e, ok := <-w.C:
			if !ok {
				if err := sendDropped(); err != nil {
					return err
				}
				return errShuttingDown
			}
			pe := ToProto(e, maxBody)
			w.Received(e)
			if err := sendDropped(); err != nil {
				return err
			}
			if err := stream.Send(&podwirev1.WatchResponse{Entry: pe}); err != nil {
				return err
			}
		}
	}
}

// Query streams stored entries that match, newest first.
func (s *Server) Query(req *podwirev1.QueryRequest, stream grpc.ServerStreamingServer[podwirev1.Entry]) error {
	if err := s.auth.check(stream.Context()); err != nil {
		return err
	}
	f, err := compileFilter(req.GetFilter())
	if err != nil {
		return err
	}
	q := store.Query{Limit: limit(req.GetLimit()), Match: matcher(f)}
	if req.GetFrom() != nil {
		q.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		q.To = req.GetTo().AsTime()
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return status.Errorf(codes.InvalidArgument, "empty time range: from %s is not before to %s",
			q.From.Format(time.RFC3339Nano), q.To.Format(time.RFC3339Nano))
	}
	ctx := stream.Context()
	maxBody := int(req.GetMaxBodyBytes())
	var sendErr error
	// The store calls back without its lock held, so a slow client stalls
	// only this query.
	s.st.Query(q, func(e *entry.Entry) bool {
		if sendErr = stream.Send(toProto(e, maxBody, !req.GetOmitHeaders())); sendErr != nil {
			return false
		}
		return ctx.Err() == nil
	})
	if sendErr != nil {
		return sendErr
	}
	return ctx.Err()
}

// GetEntry returns one entry with its whole bodies.
func (s *Server) GetEntry(ctx context.Context, req *podwirev1.GetEntryRequest) (*podwirev1.Entry, error) {
	if err := s.auth.check(ctx); err != nil {
		return nil, err
	}
	id := req.GetId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "entry id is empty")
	}
	e, ok := s.st.Get(id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "entry %q not found on node %q: unknown, or evicted from the store", id, s.node())
	}
	return ToProto(e, -1), nil
}

// Status returns Config.Status merged with the store's counters.
func (s *Server) Status(ctx context.Context, _ *podwirev1.StatusRequest) (*podwirev1.StatusResponse, error) {
	if err := s.auth.check(ctx); err != nil {
		return nil, err
	}
	resp := &podwirev1.StatusResponse{}
	if s.cfg.Status != nil {
		if r := s.cfg.Status(); r != nil {
			resp = proto.Clone(r).(*podwirev1.StatusResponse)
		}
	}
	if resp.Node == "" {
		resp.Node = s.cfg.Node
	}
	if resp.Version == "" {
		resp.Version = s.cfg.Version
	}
	if resp.Started == nil {
		resp.Started = timestamppb.New(s.started)
	}
	if resp.Uptime == nil {
		resp.Uptime = durationpb.New(time.Since(resp.Started.AsTime()).Truncate(time.Millisecond))
	}
	if resp.Counters == nil {
		resp.Counters = make(map[string]uint64)
	}
	for name, v := range StoreCounters(s.st.Stats()) {
		resp.Counters[name] = v
	}
	resp.Counters["aggregate_truncated_entries"] = s.truncated.Load()
	return resp, nil
}

// StoreCounters names the store's statistics as Status counters.
func StoreCounters(st store.Stats) map[string]uint64 {
	c := map[string]uint64{
		"entries":             st.Entries,
		"store_bytes":         st.Bytes,
		"store_added":         st.Added,
		"store_evictions":     st.Evicted,
		"store_evicted_bytes": st.EvictedBytes,
		"watch_dropped":       st.WatchDropped,
		"watchers":            uint64(st.Watchers),
	}
	if !st.Oldest.IsZero() {
		if age := time.Since(st.Oldest); age > 0 {
			c["store_oldest_age_seconds"] = uint64(age / time.Second)
		}
	}
	return c
}

func (s *Server) node() string {
	if s.cfg.Node != "" {
		return s.cfg.Node
	}
	if s.cfg.Status != nil {
		if r := s.cfg.Status(); r != nil {
			return r.GetNode()
		}
	}
	return ""
}

// matcher is f's Match, or nil (match all, cheaper) for an empty filter.
func matcher(f *filter.Filter) func(*entry.Entry) bool {
	if f.MatchesAll() {
		return nil
	}
	return f.Match
}

func limit(n int32) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return int(n)
}

// compileFilter compiles expr, turning a bad filter into InvalidArgument
// whose message is the filter error: "filter:LINE:COLUMN: message", the
// expression's line and a caret under the column.
func compileFilter(expr string) (*filter.Filter, error) {
	f, err := filter.Compile(expr)
	if err == nil {
		return f, nil
	}
	var fe *filter.Error
	if !errors.As(err, &fe) {
		return nil, status.Errorf(codes.InvalidArgument, "filter: %v", err)
	}
	return nil, status.Error(codes.InvalidArgument, fe.Error())
}

// ServerOptions returns the options for a gRPC server that serves TLS when
// tlsCfg is not nil and requires "authorization: Bearer <token>" on every
// call when token is not empty.
func ServerOptions(token string, tlsCfg *tls.Config) []grpc.ServerOption {
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	if token != "" {
		a := &authenticator{token: []byte(token)}
		opts = append(opts,
			grpc.ChainUnaryInterceptor(a.unary),
			grpc.ChainStreamInterceptor(a.stream),
		)
	}
	return opts
}

type authenticator struct {
	token []byte
}

// check verifies the bearer token in ctx; a nil authenticator accepts all.
func (a *authenticator) check(ctx context.Context) error {
	if a == nil {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "missing bearer token (authorization metadata)")
	}
	const prefix = "bearer "
	v := vals[0]
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return status.Error(codes.Unauthenticated, "authorization is not a bearer token")
	}
	got := []byte(strings.TrimSpace(v[len(prefix):]))
	if subtle.ConstantTimeCompare(got, a.token) != 1 {
		return status.Error(codes.Unauthenticated, "invalid bearer token")
	}
	return nil
}

func (a *authenticator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := a.check(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}
