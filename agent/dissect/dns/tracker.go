package dns

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

// key identifies a query: who asked whom, with which id.
type key struct {
	client, server netip.AddrPort
	id             uint16
}

// pending is a query in the Tracker: waiting for its response (ex set),
// or answered (ex nil) and kept until its timeout so that a duplicate
// response is recognised as one.
type pending struct {
	ex  *exchange
	t   time.Time // query time
	seq uint64    // matches the queue item that owns it
}

type queued struct {
	k   key
	seq uint64
}

// Tracker pairs the DNS datagrams of one agent into entries. Its methods
// may be called from several goroutines; emit is called without the
// Tracker's lock held, from the call that completes an entry.
type Tracker struct {
	mu    sync.Mutex
	p     parser
	emit  func(*entry.Entry)
	stats *Stats
	m     map[key]pending
	// q holds the queries in arrival order, oldest at q[head]; items whose
	// seq no longer matches the map are stale (the query was retried or
	// timed out) and skipped.
	q    []queued
	head int
	seq  uint64
	out  []*exchange // entries to emit once the lock is released (Tick)
}

// NewTracker returns a Tracker; stats may be shared, emit receives every
// entry.
func NewTracker(cfg Config, emit func(*entry.Entry), stats *Stats) *Tracker {
	if stats == nil {
		stats = new(Stats)
	}
	if emit == nil {
		emit = func(*entry.Entry) {}
	}
	cfg = cfg.withDefaults()
	return &Tracker{
		p:     parser{cfg: cfg, stats: stats},
		emit:  emit,
		stats: stats,
		m:     make(map[key]pending, min(cfg.MaxPending, 1024)),
	}
}

// Datagram takes one UDP payload from src to dst: a query, or a response
// when the QR bit is set. payload is not kept.
func (t *Tracker) Datagram(src, dst netip.AddrPort, payload []byte, ts time.Time) {
	h, ok := parseHeader(payload)
	if !ok {
		t.stats.Malformed.Add(1)
		return
	}
	var done [2]*exchange
	t.mu.Lock()
	if h.qr {
		done[0] = t.response(src, dst, payload, &h, ts)
	} else {
		done[0], done[1] = t.query(src, dst, payload, &h, ts)
	}
	t.mu.Unlock()
	for _, ex := range done {
		if ex != nil {
			t.stats.Entries.Add(1)
			t.emit(&ex.e)
		}
	}
}

// query adds a query; it returns the query it evicted, if any.
func (t *Tracker) query(src, dst netip.AddrPort, msg []byte, h *header, ts time.Time) (evicted, _ *exchange) {
	ex, err := t.p.query(msg, h, ts)
	if err != nil {
		t.stats.Malformed.Add(1)
		return nil, nil
	}
	ex.e.Src, ex.e.Dst = entry.EndpointAt(src), entry.EndpointAt(dst)
	k := key{client: src, server: dst, id: h.id}
	if old, ok := t.m[k]; ok && old.ex != nil {
		// Asked again before the answer: the answer goes with the latest.
		t.stats.Retries.Add(1)
		ex.retries = old.ex.retries + 1
	} else if !ok && len(t.m) >= t.p.cfg.MaxPending {
		evicted = t.evictOldest()
	}
	t.seq++
	t.m[k] = pending{ex: ex, t: ts, seq: t.seq}
	t.push(queued{k: k, seq: t.seq})
	return evicted, nil
}

func (t *Tracker) push(it queued) {
	if t.head > 0 && t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	}
	// Stale items (retried queries) can make the queue outgrow the map.
	if len(t.q)-t.head >= 2*t.p.cfg.MaxPending+16 {
		live := t.q[:0]
		for _, it := range t.q[t.head:] {
			if p, ok := t.m[it.k]; ok && p.seq == it.seq {
				live = append(live, it)
			}
		}
		clear(t.q[len(live):])
		t.q, t.head = live, 0
	} else if t.head > 1024 && t.head > len(t.q)/2 {
		n := copy(t.q, t.q[t.head:])
		clear(t.q[n:])
		t.q, t.head = t.q[:n], 0
	}
	t.q = append(t.q, it)
}

// evictOldest drops the oldest query to make room; an unanswered one is
// returned to be emitted as timed out.
func (t *Tracker) evictOldest() *exchange {
	for t.head < len(t.q) {
		it := t.q[t.head]
		t.q[t.head] = queued{}
		t.head++
		p, ok := t.m[it.k]
		if !ok || p.seq != it.seq {
			continue
		}
		delete(t.m, it.k)
		if p.ex != nil {
			return t.timedOut(p.ex)
		}
		return nil
	}
	return nil
}

func (t *Tracker) timedOut(ex *exchange) *exchange {
	t.stats.Timeouts.Add(1)
	ex.e.Failed = true
	ex.e.AddNote("no response")
	retried(ex)
	return ex
}

func retried(ex *exchange) {
	if ex.retries > 0 {
		ex.e.AddNote("retried " + strconv.Itoa(ex.retries) + "x")
	}
}

func (t *Tracker) response(src, dst netip.AddrPort, msg []byte, h *header, ts time.Time) *exchange {
	k := key{client: dst, server: src, id: h.id}
	p, ok := t.m[k]
	switch {
	case !ok:
		t.stats.Orphans.Add(1)
		return nil
	case p.ex == nil:
		t.stats.Duplicates.Add(1)
		return nil
	}
	ex := p.ex
	t.p.answer(ex, msg, h, ts)
	retried(ex)
	p.ex = nil
	t.m[k] = p
	return ex
}

// Tick emits the queries that have waited longer than Timeout at now
// (Response nil, Failed, note "no response") and forgets the answered
// ones, after which a response is an orphan rather than a duplicate.
func (t *Tracker) Tick(now time.Time) {
	t.mu.Lock()
	out := t.out[:0]
	for t.head < len(t.q) {
		it := t.q[t.head]
		p, ok := t.m[it.k]
		if ok && p.seq == it.seq {
			if now.Sub(p.t) < t.p.cfg.Timeout {
				break
			}
			delete(t.m, it.k)
			if p.ex != nil {
				out = append(out, t.timedOut(p.ex))
			}
		}
		t.q[t.head] = queued{}
		t.head++
	}
	if t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	}
	t.out = nil // emit outside the lock; another Tick gets its own slice
	t.mu.Unlock()
	for i, ex := range out {
		t.stats.Entries.Add(1)
		t.emit(&ex.e)
		out[i] = nil
	}
	t.mu.Lock()
	if t.out == nil && cap(out) <= 4096 {
		t.out = out[:0]
	}
	t.mu.Unlock()
}

// Pending returns how many queries are held (waiting or recently
// answered).
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
