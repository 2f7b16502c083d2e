package dns

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

// key identifies a query: who asked whom, with which id. It has no
// padding, so that the map hashes and compares it as one block of memory
// (netip.AddrPort has padding after the port).
type key struct {
	client, server netip.Addr
	cport, sport   uint16
	id             uint32
}

func makeKey(client, server netip.AddrPort, id uint16) key {
	return key{client: client.Addr(), server: server.Addr(), cport: client.Port(), sport: server.Port(), id: uint32(id)}
}

// slot is a query in the Tracker: waiting for its response (q set), or
// answered (q nil) and kept until its timeout so that a duplicate
// response is recognised as one. A free slot has seq 0.
type slot struct {
	k   key
	q   *pending
	t   time.Time // query time
	seq uint64    // matches the queue item that owns it
}

// queued is a query in arrival order: the slot it was put in, and the
// slot's seq then, which no longer matches once the query was retried,
// timed out or evicted.
type queued struct {
	slot int32
	seq  uint64
}

// Tracker pairs the DNS datagrams of one agent into entries. Its methods
// may be called from several goroutines; emit is called without the
// Tracker's lock held, from the call that completes an entry.
type Tracker struct {
	mu    sync.Mutex
	p     parser
	emit  func(*entry.Entry)
	stats *Stats
	// m finds the slot of a query; slots holds them (at most MaxPending
	// in use), free the unused ones.
	m     map[key]int32
	slots []slot
	free  []int32
	spare spares // for the next queries
	// q holds the queries in arrival order, oldest at q[head]; items whose
	// seq no longer matches their slot are stale and skipped.
	q    []queued
	head int
	seq  uint64
	out  []*entry.Entry // entries to emit once the lock is released (Tick)
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
		m:     make(map[key]int32, min(cfg.MaxPending, 1024)),
	}
}

// Datagram takes one UDP payload from src to dst: a query, or a response
// when the QR bit is set. payload is not kept.
func (t *Tracker) Datagram(src, dst netip.AddrPort, payload []byte, ts time.Time) {
	t.DatagramOf(src, dst, nil, nil, payload, ts)
}

// DatagramOf is Datagram with the identities of the two ends (nil when
// unknown); a query's entry keeps those of the query.
func (t *Tracker) DatagramOf(src, dst netip.AddrPort, srcWho, dstWho *entry.Identity, payload []byte, ts time.Time) {
	h, ok := parseHeader(payload)
	if !ok {
		t.stats.Malformed.Add(1)
		return
	}
	var done *entry.Entry
	t.mu.Lock()
	if h.qr {
		done = t.response(src, dst, payload, &h, ts)
	} else {
		done = t.query(src, dst, srcWho, dstWho, payload, &h, ts)
	}
	t.mu.Unlock()
	if done != nil {
		t.stats.Entries.Add(1)
		t.emit(done)
	}
}

// query adds a query; it returns the entry of the query it evicted, if
// any.
func (t *Tracker) query(src, dst netip.AddrPort, srcWho, dstWho *entry.Identity, msg []byte, h *header, ts time.Time) (evicted *entry.Entry) {
	q := t.newPending()
	if err := t.p.query(q, msg, h, ts); err != nil {
		t.stats.Malformed.Add(1)
		t.release(q)
		return nil
	}
	q.src, q.dst = entry.EndpointWith(src, srcWho), entry.EndpointWith(dst, dstWho)
	k := makeKey(src, dst, h.id)
	i, ok := t.m[k]
	if ok {
		if old := t.slots[i].q; old != nil {
			// Asked again before the answer: the answer goes with the latest.
			t.stats.Retries.Add(1)
			q.retries = old.retries + 1
			t.release(old)
		}
	} else {
		if len(t.m) >= t.p.cfg.MaxPending {
			evicted = t.evictOldest()
		}
		i = t.newSlot()
		t.slots[i].k = k
		t.m[k] = i
	}
	t.seq++
	s := &t.slots[i]
	s.q, s.t, s.seq = q, ts, t.seq
	t.push(queued{slot: i, seq: t.seq})
	return evicted
}

func (t *Tracker) newPending() *pending { return t.spare.get() }

// release keeps q for a next query, up to as many as are usually waiting
// at once.
func (t *Tracker) release(q *pending) { t.spare.put(q, 256) }

// spares are pending records kept for reuse.
type spares []*pending

func (s *spares) get() *pending {
	if n := len(*s); n > 0 {
		q := (*s)[n-1]
		*s = (*s)[:n-1]
		return q
	}
	return new(pending)
}

// put keeps q, reset, when fewer than max are kept.
func (s *spares) put(q *pending, max int) {
	if len(*s) < max {
		q.reset()
		*s = append(*s, q)
	}
}

func (t *Tracker) newSlot() int32 {
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return i
	}
	t.slots = append(t.slots, slot{})
	return int32(len(t.slots) - 1)
}

// drop forgets the query in slot i and returns it if it was still
// waiting.
func (t *Tracker) drop(i int32) *pending {
	s := &t.slots[i]
	q := s.q
	delete(t.m, s.k)
	*s = slot{}
	t.free = append(t.free, i)
	return q
}

// live says whether a queue item still stands for its slot's query.
func (t *Tracker) live(it queued) bool {
	return t.slots[it.slot].seq == it.seq
}

func (t *Tracker) push(it queued) {
	if t.head > 0 && t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	}
	// Stale items (retried queries) can make the queue outgrow the map.
	if len(t.q)-t.head >= 2*t.p.cfg.MaxPending+16 {
		live := t.q[:0]
		for _, it := range t.q[t.head:] {
			if t.live(it) {
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
func (t *Tracker) evictOldest() *entry.Entry {
	for t.head < len(t.q) {
		it := t.q[t.head]
		t.q[t.head] = queued{}
		t.head++
		if !t.live(it) {
			continue
		}
		if q := t.drop(it.slot); q != nil {
			return t.timedOut(q)
		}
		return nil
	}
	return nil
}

// timedOut returns the entry of q, unanswered, and releases q.
func (t *Tracker) timedOut(q *pending) *entry.Entry {
	t.stats.Timeouts.Add(1)
	e := t.p.unanswered(q)
	e.Failed = true
	e.AddNote("no response")
	retried(e, q.retries)
	t.release(q)
	return e
}

func retried(e *entry.Entry, n int) {
	if n > 0 {
		e.AddNote("retried " + strconv.Itoa(n) + "x")
	}
}

func (t *Tracker) response(src, dst netip.AddrPort, msg []byte, h *header, ts time.Time) *entry.Entry {
	i, ok := t.m[makeKey(dst, src, h.id)]
	if !ok {
		t.stats.Orphans.Add(1)
		return nil
	}
	s := &t.slots[i]
	q := s.q
	if q == nil {
		t.stats.Duplicates.Add(1)
		return nil
	}
	s.q = nil
	e := t.p.answer(q, msg, h, ts)
	retried(e, q.retries)
	t.release(q)
	return e
}

// Tick emits the queries that have waited longer than Timeout at now
// (Response nil, Failed, note "no response") and forgets the answered
// ones, after which a response is an orphan rather than a duplicate.
func (t *Tracker) Tick(now time.Time) {
	t.mu.Lock()
	out := t.out[:0]
	for t.head < len(t.q) {
		it := t.q[t.head]
		if t.live(it) {
			if now.Sub(t.slots[it.slot].t) < t.p.cfg.Timeout {
				break
			}
			if q := t.drop(it.slot); q != nil {
				out = append(out, t.timedOut(q))
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
	for i, e := range out {
		t.stats.Entries.Add(1)
		t.emit(e)
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
