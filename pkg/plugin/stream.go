package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/podwire/podwire/agent/filter"
	"github.com/podwire/podwire/pkg/frames"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Live tail limits.
const (
	// TailRate is the most entries per second one stream sends; beyond it
	// the stream samples and says how many it skipped.
	TailRate = 200
	// tailFlush is how often a stream sends what arrived.
	tailFlush = 250 * time.Millisecond
	// tailBuffer bounds the entries waiting between two flushes; more are
	// counted as skipped.
	tailBuffer = 1024
	// maxTailNotices bounds the agent errors held for the next frame.
	maxTailNotices = 32
	// maxRegistered bounds the long filters remembered for live channels.
	maxRegistered = 1024
	// inlineFilter is the longest encoded filter put in a channel path
	// (channel ids are at most 160 characters).
	inlineFilter = 96
	// watchRetryMax is the longest wait before watching a failed agent
	// again.
	watchRetryMax = 30 * time.Second
)

// tailRegistry maps live channel paths to their queries. Short filters are
// in the path itself; long ones are remembered by hash (at most
// maxRegistered, oldest forgotten first).
type tailRegistry struct {
	mu      sync.Mutex
	byHash  map[string]string
	order   []string
	evicted uint64
}

func newTailRegistry() *tailRegistry {
	return &tailRegistry{byHash: make(map[string]string)}
}

// tailQuery is what one live channel streams.
type tailQuery struct {
	kind   string // queryTraffic or queryLogs
	filter string
}

// path returns the channel path for a live query of kind with expr:
// tail/<kind>/e (no filter), tail/<kind>/f<base64url filter> or
// tail/<kind>/h<hash>.
func (r *tailRegistry) path(kind, expr string) (string, error) {
	f, err := filter.Compile(expr)
	if err != nil {
		return "", &queryError{msg: err.Error()}
	}
	if f.Costly() {
		return "", badQuery("live: this filter is too costly to run on every live entry (it may loop over headers or bodies); turn live off to query it")
	}
	prefix := "tail/" + kind + "/"
	if strings.TrimSpace(expr) == "" {
		return prefix + "e", nil
	}
	if enc := base64.RawURLEncoding.EncodeToString([]byte(expr)); len(enc) <= inlineFilter {
		return prefix + "f" + enc, nil
	}
	sum := sha256.Sum256([]byte(expr))
	h := hex.EncodeToString(sum[:16])
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byHash[h]; !ok {
		if len(r.order) >= maxRegistered {
			delete(r.byHash, r.order[0])
			r.order = r.order[1:]
			r.evicted++
		}
		r.byHash[h] = expr
		r.order = append(r.order, h)
	}
	return prefix + "h" + h, nil
}

// parse reads a channel path made by path.
func (r *tailRegistry) parse(p string) (tailQuery, error) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[0] != "tail" || (parts[1] != queryTraffic && parts[1] != queryLogs) || parts[2] == "" {
		return tailQuery{}, fmt.Errorf("unknown live channel path %q: want tail/traffic/... or tail/logs/...", p)
	}
	q := tailQuery{kind: parts[1]}
	key := parts[2]
	switch key[0] {
	case 'e':
	case 'f':
		b, err := base64.RawURLEncoding.DecodeString(key[1:])
		if err != nil {
			return tailQuery{}, fmt.Errorf("live channel path %q: bad filter encoding: %v", p, err)
		}
		q.filter = string(b)
	case 'h':
		r.mu.Lock()
		expr, ok := r.byHash[key[1:]]
		r.mu.Unlock()
		if !ok {
			return tailQuery{}, fmt.Errorf("live channel %q is not known (the plugin restarted or forgot it): run the query again", p)
		}
		q.filter = expr
	default:
		return tailQuery{}, fmt.Errorf("unknown live channel path %q", p)
	}
	if _, err := filter.Compile(q.filter); err != nil {
		return tailQuery{}, fmt.Errorf("live channel %q: %v", p, err)
	}
	return q, nil
}

// SubscribeStream allows subscribing to the live channels QueryData hands
// out.
func (d *Datasource) SubscribeStream(ctx context.Context, req *backend.SubscribeStreamRequest) (*backend.SubscribeStreamResponse, error) {
	if d.settingsErr != nil {
		return nil, d.settingsErr
	}
	if _, err := d.tails.parse(req.Path); err != nil {
		// The path holds the filter, which may quote header values: not
		// logged.
		backend.Logger.FromContext(ctx).Warn("refused a live subscription to an unknown channel")
		return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusNotFound}, nil
	}
	return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusOK}, nil
}

// PublishStream refuses: live channels are read-only.
func (d *Datasource) PublishStream(context.Context, *backend.PublishStreamRequest) (*backend.PublishStreamResponse, error) {
	return &backend.PublishStreamResponse{Status: backend.PublishStreamStatusPermissionDenied}, nil
}

// RunStream tails every agent (one Watch each) and sends what arrives as
// frames, at most TailRate entries a second, until ctx ends (Grafana
// cancels it when the last subscriber leaves).
func (d *Datasource) RunStream(ctx context.Context, req *backend.RunStreamRequest, sender *backend.StreamSender) error {
	if d.settingsErr != nil {
		return d.settingsErr
	}
	q, err := d.tails.parse(req.Path)
	if err != nil {
		return err
	}
	t := &tail{d: d, q: q, in: make(chan *podwirev1.Entry, tailBuffer), send: sender.SendFrame, now: time.Now}
	backend.Logger.FromContext(ctx).Debug("live tail started", "kind", q.kind)
	err = t.run(ctx)
	backend.Logger.FromContext(ctx).Debug("live tail ended", "kind", q.kind, "err", err)
	return err
}

// tail is one running live stream.
type tail struct {
	d    *Datasource
	q    tailQuery
	in   chan *podwirev1.Entry
	send func(*data.Frame, data.FrameInclude) error
	now  func() time.Time

	overflow     atomic.Uint64 // entries lost because in was full
	agentDropped atomic.Uint64 // entries agents said this watch missed

	mu       sync.Mutex
	pending  notices // agent errors for the next frame
	lostNote uint64  // notices beyond maxTailNotices
}

func (t *tail) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) >= maxTailNotices {
		t.lostNote++
		return
	}
	t.pending.warn(format, args...)
}

func (t *tail) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	watches := map[*agent]context.CancelFunc{}
	reconcile := func() {
		agents, warning, err := t.d.pool.agents(ctx)
		if err != nil {
			t.note("live tail: %v", err)
			return
		}
		if warning != nil {
			t.note("live tail: %v", warning)
		}
		current := make(map[*agent]bool, len(agents))
		for _, a := range agents {
			current[a] = true
			if watches[a] == nil {
				wctx, wcancel := context.WithCancel(ctx)
				watches[a] = wcancel
				wg.Go(func() { t.watch(wctx, a) })
			}
		}
		for a, c := range watches {
			if !current[a] {
				c()
				delete(watches, a)
			}
		}
	}
	reconcile()

	flush := time.NewTicker(tailFlush)
	defer flush.Stop()
	var reresolve <-chan time.Time
	if t.d.s.DNSName != "" {
		r := time.NewTicker(t.d.s.DNSCache)
		defer r.Stop()
		reresolve = r.C
	}
	lim := &limiter{rate: TailRate, tokens: TailRate, last: t.now()}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.d.pool.done:
			// The settings changed: end, and Grafana runs the stream
			// again on the new instance.
			return nil
		case <-reresolve:
			reconcile()
		case <-flush.C:
			if err := t.flush(lim); err != nil {
				return err
			}
		}
	}
}

// limiter is a token bucket of entries.
type limiter struct {
	rate, tokens float64
	last         time.Time
}

// allow returns how many entries may go now.
func (l *limiter) allow(now time.Time) int {
	l.tokens = min(l.rate, l.tokens+l.rate*now.Sub(l.last).Seconds())
	l.last = now
	return int(l.tokens)
}

func (l *limiter) take(n int) { l.tokens -= float64(n) }

// sample keeps n of es spread evenly (es in arrival order).
func sample(es []*podwirev1.Entry, n int) []*podwirev1.Entry {
	if n >= len(es) {
		return es
	}
	if n <= 0 {
		return nil
	}
	out := make([]*podwirev1.Entry, 0, n)
	for i := range n {
		out = append(out, es[i*len(es)/n])
	}
	return out
}

// flush sends the entries that arrived since the last flush, sampled to
// the rate cap, with notices for everything skipped or lost.
func (t *tail) flush(lim *limiter) error {
	var batch []*podwirev1.Entry
drain:
	for {
		select {
		case e := <-t.in:
			batch = append(batch, e)
		default:
			break drain
		}
	}
	allow := lim.allow(t.now())
	sent := sample(batch, allow)
	lim.take(len(sent))
	skipped := uint64(len(batch)-len(sent)) + t.overflow.Swap(0)
	dropped := t.agentDropped.Swap(0)

	t.mu.Lock()
	n := t.pending
	t.pending = nil
	lost := t.lostNote
	t.lostNote = 0
	t.mu.Unlock()
	if skipped > 0 {
		n.warn("live tail: %d entries skipped (sampled): a live stream shows at most %d entries a second; narrow the filter to see them all", skipped, TailRate)
	}
	if dropped > 0 {
		n.warn("live tail: the agents dropped %d entries for this stream (it read too slowly)", dropped)
	}
	if lost > 0 {
		n.warn("live tail: %d more agent errors not shown", lost)
	}
	if len(sent) == 0 && len(n) == 0 {
		return nil
	}
	slices.SortStableFunc(sent, func(a, b *podwirev1.Entry) int {
		return a.GetTime().AsTime().Compare(b.GetTime().AsTime())
	})
	var f *data.Frame
	if t.q.kind == queryLogs {
		f = frames.Logs(sent, t.d.links)
	} else {
		f = frames.Traffic(sent, t.d.links)
	}
	f.AppendNotices(n...)
	return t.send(f, data.IncludeAll)
}

// watch keeps one Watch on agent a until ctx ends, watching again (with
// backoff) after a failure.
func (t *tail) watch(ctx context.Context, a *agent) {
	wait := time.Second
	for {
		got, err := t.watchOnce(ctx, a)
		if ctx.Err() != nil {
			return
		}
		if got {
			wait = time.Second
		}
		if status.Code(err) == codes.InvalidArgument {
			t.note("live tail: %s", describe(a, err, 0))
			return
		}
		t.note("live tail: %s; watching again in %s", describe(a, err, 0), wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, watchRetryMax)
	}
}

// watchOnce reads one Watch stream until it fails; got says whether
// anything arrived.
func (t *tail) watchOnce(ctx context.Context, a *agent) (got bool, err error) {
	stream, err := a.client.Watch(ctx, &podwirev1.WatchRequest{Filter: t.q.filter}, grpc.ForceCodecV2(summaryCodecV2))
	if err != nil {
		return false, err
	}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return got, status.Error(codes.Unavailable, "the agent ended the live stream")
		}
		if err != nil {
			return got, err
		}
		got = true
		if n := r.GetDropped(); n > 0 {
			t.agentDropped.Add(n)
		}
		if e := r.GetEntry(); e != nil {
			a.setNode(e.GetNode())
			select {
			case t.in <- e:
			default:
				t.overflow.Add(1)
			}
		}
	}
}
