// Package store keeps a bounded, time-indexed history of entries on one node
// and fans new entries out to live watchers.
//
// Entries are kept packed (entry.AppendPacked) in large pointer-free blocks
// filled in insertion order, so the garbage collector has a few blocks to
// mark instead of every string and slice of every entry; reads unpack.
// Entries are evicted oldest-first by insertion, and a block is freed when
// its last entry goes, until the memory held (blocks and index) is within
// the byte bound. Queries walk a time index newest-first; because an entry is
// emitted when its response completes, entries arrive roughly but not exactly
// in order of Time, and the index is kept sorted regardless.
package store

import (
	"bytes"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

// Defaults for Config fields left zero.
const (
	DefaultNode        = "local"
	DefaultMaxBytes    = 256 << 20
	DefaultWatchBuffer = 1024
	// DefaultWatchBytes bounds the entries one watcher's reader has not
	// yet taken, in bytes.
	DefaultWatchBytes = 16 << 20
	DefaultLimit      = 1000
)

const (
	// chunkSize is the capacity of one time-index chunk: an out-of-order
	// insert or an eviction moves at most this many items.
	chunkSize = 512
	// queryBatch is how many entries Query copies per read-lock hold.
	queryBatch = 512
)

// Config configures a Store.
type Config struct {
	// Node prefixes entry ids and fills empty Entry.Node; DefaultNode if "".
	Node string
	// MaxBytes bounds the memory the stored entries take (packed, with
	// their index); DefaultMaxBytes if <= 0.
	MaxBytes int64
	// WatchBuffer is each watcher's channel capacity; DefaultWatchBuffer if
	// <= 0.
	WatchBuffer int
	// WatchBytes bounds the size of the entries waiting for one watcher's
	// reader (beyond it they are dropped and counted); DefaultWatchBytes if
	// <= 0.
	WatchBytes int64
}

// Query selects entries for Store.Query.
type Query struct {
	// From and To bound Time: From <= Time < To. Zero is unbounded.
	From, To time.Time
	// Limit is the most entries passed to fn; DefaultLimit if <= 0.
	Limit int
	// Match selects entries; nil selects all. It runs without the store's
	// lock held.
	Match func(*entry.Entry) bool
}

// Stats are the store's counters.
type Stats struct {
	// Entries is how many entries the store holds now, Bytes the memory
	// they take: the blocks holding them packed, and their index.
	Entries, Bytes uint64
	// Added counts every Add; Evicted and EvictedBytes (packed, with
	// index) what was dropped to keep the bound.
	Added, Evicted, EvictedBytes uint64
	// WatchDropped counts entries not delivered to full watchers.
	WatchDropped uint64
	// Watchers is the number of open watchers.
	Watchers int
	// Oldest is the Time of the oldest stored entry, zero when empty.
	Oldest time.Time
}

// key orders the time index: by Time, then by insertion.
type key struct {
	t   int64 // Entry.Time in Unix nanoseconds, clamped
	seq uint64
}

func (a key) less(b key) bool { return a.t < b.t || a.t == b.t && a.seq < b.seq }

// item is a time-index slot; the entry is found by its sequence number.
type item struct {
	key
}

// chunk is a run of the time index, sorted by key. Chunks in Store.chunks
// are never empty and are ordered: every key of chunk i is less than every
// key of chunk i+1.
type chunk struct {
	items []item
}

// record is an entry in insertion order: where its packed form lies.
type record struct {
	key
	blk uint64 // absolute block number
	off uint32
	n   uint32
}

// indexBytes is what each entry costs beyond its packed form: its record,
// its time-index item, and the slack of the slices holding them.
const indexBytes = 64

// Block sizes: a store's blocks are MaxBytes/blockFraction, within bounds;
// an entry larger than a block gets one of its own.
const (
	blockFraction = 64
	minBlock      = 256
	maxBlock      = 1 << 20
	// maxFree freed blocks are kept for reuse: at steady state each new
	// block replaces an evicted one.
	maxFree = 2
)

// Store is a bounded entry store. It is safe for concurrent use by one
// writer (Add) and many readers.
type Store struct {
	node     string
	prefix   string // node + "-" + run + "-"
	maxBytes int64
	wbuf     int
	wbytes   int64

	mu sync.RWMutex
	// fifo[head:] holds the stored entries in insertion order; their
	// sequence numbers run contiguously up to nextSeq-1.
	fifo    []record
	head    int
	nextSeq uint64
	chunks  []*chunk
	// blocks[i] is block number base+i; the last one is being filled.
	// Freed blocks are reused (fresh memory costs page faults); readers
	// therefore copy what they unpack while holding mu.
	blocks    [][]byte
	base      uint64
	blockSize int
	free      [][]byte
	scratch   []byte
	// bytes is the memory held: block capacities and indexBytes per entry.
	bytes   int64
	added   uint64
	evicted uint64
	evBytes uint64

	// wmu guards watchers and orders deliveries against Close.
	wmu          sync.Mutex
	watchers     []*Watcher
	watchDropped atomic.Uint64
}

// runID tells this store's ids from those of an earlier run on the same
// node: the start time in milliseconds, base 36.
func runID() string {
	return strconv.FormatInt(time.Now().UnixMilli(), 36)
}

// New returns an empty Store.
func New(cfg Config) *Store {
	if cfg.Node == "" {
		cfg.Node = DefaultNode
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = DefaultWatchBuffer
	}
	if cfg.WatchBytes <= 0 {
		cfg.WatchBytes = DefaultWatchBytes
	}
	return &Store{
		node:      cfg.Node,
		prefix:    cfg.Node + "-" + runID() + "-",
		maxBytes:  cfg.MaxBytes,
		blockSize: int(min(max(cfg.MaxBytes/blockFraction, minBlock), maxBlock)),
		wbuf:      cfg.WatchBuffer,
		wbytes:    cfg.WatchBytes,
		nextSeq:   1,
	}
}

// Add stores e, giving it the next id ("<node>-<run>-<sequence>", run
// telling restarts apart) and the store's node when e.Node is empty, evicts
// the oldest entries until the bound holds, and hands e to matching
// watchers without blocking. e must not change after Add; the store keeps
// a packed copy, so e itself is the watchers' alone.
func (s *Store) Add(e *entry.Entry) {
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	e.ID = s.prefix + strconv.FormatUint(seq, 10)
	if e.Node == "" {
		e.Node = s.node
	}
	s.scratch = entry.AppendPacked(s.scratch[:0], e)
	n := len(s.scratch)
	last := len(s.blocks) - 1
	if last < 0 || cap(s.blocks[last])-len(s.blocks[last]) < n {
		var b []byte
		if k := len(s.free); k > 0 && n <= s.blockSize {
			b, s.free = s.free[k-1], s.free[:k-1]
		} else {
			b = make([]byte, 0, max(s.blockSize, n))
		}
		s.blocks = append(s.blocks, b)
		last++
		s.bytes += int64(cap(s.blocks[last]))
	}
	off := len(s.blocks[last])
	s.blocks[last] = append(s.blocks[last], s.scratch...)
	k := key{t: nanos(e.Time), seq: seq}
	s.fifo = append(s.fifo, record{key: k, blk: s.base + uint64(last), off: uint32(off), n: uint32(n)})
	s.insert(item{key: k})
	s.bytes += indexBytes
	s.added++
	for s.bytes > s.maxBytes && s.head < len(s.fifo) {
		s.evictOldest()
	}
	if cap(s.scratch) > 4*s.blockSize {
		s.scratch = nil // one huge entry: don't keep its buffer
	}
	s.mu.Unlock()

	s.fanout(e)
}

// evictOldest drops the first entry in insertion order, and the blocks no
// stored entry lies in any more.
func (s *Store) evictOldest() {
	r := s.fifo[s.head]
	s.fifo[s.head] = record{}
	s.head++
	if s.head == len(s.fifo) {
		s.fifo, s.head = s.fifo[:0], 0
	} else if s.head >= 1024 && s.head*2 >= len(s.fifo) {
		n := copy(s.fifo, s.fifo[s.head:])
		clear(s.fifo[n:])
		s.fifo, s.head = s.fifo[:n], 0
	}
	s.remove(r.key)
	s.bytes -= indexBytes
	s.evicted++
	s.evBytes += uint64(r.n) + indexBytes
	// Blocks before the oldest stored entry's are free; with nothing
	// stored, all are.
	keep := s.base + uint64(len(s.blocks))
	if s.head < len(s.fifo) {
		keep = s.fifo[s.head].blk
	}
	for s.base < keep {
		b := s.blocks[0]
		s.bytes -= int64(cap(b))
		if cap(b) == s.blockSize && len(s.free) < maxFree {
			s.free = append(s.free, b[:0])
		}
		s.blocks[0] = nil
		s.blocks = s.blocks[1:]
		s.base++
	}
	if len(s.blocks) == 0 {
		s.blocks = nil
	}
}

// packed returns the packed form of the stored record r; s.mu must be held
// while it is read, since its block is reused once evicted.
func (s *Store) packed(r *record) []byte {
	b := s.blocks[r.blk-s.base]
	return b[r.off : r.off+r.n : r.off+r.n]
}

// unpack decodes a copy of a packed entry of this store's; the store wrote
// it, so an error is a bug, not bad input.
func unpack(b []byte) *entry.Entry {
	e, err := entry.Unpack(b)
	if err != nil {
		panic("store: " + err.Error())
	}
	return e
}

// insert puts it into the time index. Most entries go to the end of the
// last chunk; a late one moves at most chunkSize items.
func (s *Store) insert(it item) {
	n := len(s.chunks)
	if n == 0 {
		s.chunks = append(s.chunks, newChunk(it))
		return
	}
	ci := n - 1
	if it.key.less(s.chunks[ci].items[0].key) {
		// The first chunk whose first key is greater, minus one.
		ci = max(sort.Search(n, func(i int) bool { return it.key.less(s.chunks[i].items[0].key) })-1, 0)
	}
	c := s.chunks[ci]
	pos := len(c.items)
	if it.key.less(c.items[pos-1].key) {
		pos = sort.Search(len(c.items), func(i int) bool { return it.key.less(c.items[i].key) })
	}
	if len(c.items) < chunkSize {
		c.items = insertAt(c.items, pos, it)
		return
	}
	if ci == n-1 && pos == len(c.items) {
		// In-order arrival: start a new chunk rather than split.
		s.chunks = append(s.chunks, newChunk(it))
		return
	}
	// Split the full chunk in halves and insert into the right one.
	half := chunkSize / 2
	nc := &chunk{items: make([]item, chunkSize-half, chunkSize)}
	copy(nc.items, c.items[half:])
	clear(c.items[half:])
	c.items = c.items[:half]
	s.chunks = append(s.chunks, nil)
	copy(s.chunks[ci+2:], s.chunks[ci+1:])
	s.chunks[ci+1] = nc
	if pos <= half {
		c.items = insertAt(c.items, pos, it)
	} else {
		nc.items = insertAt(nc.items, pos-half, it)
	}
}

func newChunk(it item) *chunk {
	c := &chunk{items: make([]item, 1, chunkSize)}
	c.items[0] = it
	return c
}

func insertAt(items []item, pos int, it item) []item {
	items = append(items, item{})
	copy(items[pos+1:], items[pos:])
	items[pos] = it
	return items
}

// remove takes the item with key k out of the time index.
func (s *Store) remove(k key) {
	ci, ii := s.find(k)
	if ci < 0 {
		return
	}
	c := s.chunks[ci]
	if ii < len(c.items)/2 {
		// Shift the front: evictions take the first item, which then
		// costs nothing. The chunk loses capacity at its front; append
		// reallocates in the rare case it needs it back.
		copy(c.items[1:ii+1], c.items[:ii])
		c.items[0] = item{}
		c.items = c.items[1:]
	} else {
		copy(c.items[ii:], c.items[ii+1:])
		c.items[len(c.items)-1] = item{}
		c.items = c.items[:len(c.items)-1]
	}
	if len(c.items) == 0 {
		copy(s.chunks[ci:], s.chunks[ci+1:])
		s.chunks[len(s.chunks)-1] = nil
		s.chunks = s.chunks[:len(s.chunks)-1]
	}
}

// find returns the position of key k in the time index, or -1, -1.
func (s *Store) find(k key) (int, int) {
	ci, ii := s.seekBefore(key{t: k.t, seq: k.seq + 1})
	if ci < 0 || s.chunks[ci].items[ii].key != k {
		return -1, -1
	}
	return ci, ii
}

// seekBefore returns the position of the greatest key less than k, or -1, -1.
func (s *Store) seekBefore(k key) (int, int) {
	n := len(s.chunks)
	if n == 0 {
		return -1, -1
	}
	var ci int
	switch {
	case s.chunks[0].items[0].key.less(k) && (n == 1 || !s.chunks[1].items[0].key.less(k)):
		ci = 0 // evictions: the oldest chunk
	case s.chunks[n-1].items[0].key.less(k):
		ci = n - 1 // recent entries
	default:
		ci = sort.Search(n, func(i int) bool { return !s.chunks[i].items[0].key.less(k) }) - 1
		if ci < 0 {
			return -1, -1
		}
	}
	items := s.chunks[ci].items
	ii := sort.Search(len(items), func(i int) bool { return !items[i].key.less(k) }) - 1
	return ci, ii
}

// Get returns the entry with the given id while it is stored. It is O(1):
// the id's sequence number locates the entry in insertion order.
func (s *Store) Get(id string) (*entry.Entry, bool) {
	rest, ok := strings.CutPrefix(id, s.prefix)
	if !ok {
		return nil, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return nil, false
	}
	s.mu.RLock()
	count := uint64(len(s.fifo) - s.head)
	first := s.nextSeq - count
	if seq < first || seq >= s.nextSeq {
		s.mu.RUnlock()
		return nil, false
	}
	b := bytes.Clone(s.packed(&s.fifo[s.head+int(seq-first)]))
	s.mu.RUnlock()
	e := unpack(b)
	if e.ID != id {
		return nil, false // "n-007" is not "n-7"
	}
	return e, true
}

// Query calls fn with the entries selected by q, newest Time first (ties:
// last added first), until fn returns false or q.Limit entries were passed.
// It skips to q.To by binary search. Neither q.Match nor fn runs with the
// store locked, so they may be slow; an entry evicted meanwhile may still be
// passed.
func (s *Store) Query(q Query, fn func(*entry.Entry) bool) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	upper, lower := bounds(q.From, q.To)
	var buf [queryBatch][]byte
	sent := 0
	for {
		n, next, more := s.collect(upper, lower, buf[:])
		for _, b := range buf[:n] {
			e := unpack(b)
			if q.Match != nil && !q.Match(e) {
				continue
			}
			if !fn(e) {
				return
			}
			if sent++; sent >= limit {
				return
			}
		}
		if !more {
			return
		}
		upper = next
	}
}

// bounds turns [from, to) (a zero bound is unbounded) into the key below
// which a walk starts and the Time at which it stops.
func bounds(from, to time.Time) (upper key, lower int64) {
	upper = key{t: math.MaxInt64, seq: math.MaxUint64}
	if !to.IsZero() {
		upper = key{t: nanos(to)}
	}
	lower = int64(math.MinInt64)
	if !from.IsZero() {
		lower = nanos(from)
	}
	return upper, lower
}

// collect copies into buf, newest first, the packed entries with keys below
// upper and Time at or after lower, each a copy the caller owns. more tells
// whether older ones may remain; next is where to continue. Unlike
// collectInto (Scan's walk, which reuses one buffer), it gives each batch
// fresh 64 KiB blocks, so the entries Query unpacks may be kept.
func (s *Store) collect(upper key, lower int64, buf [][]byte) (n int, next key, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	first := s.nextSeq - uint64(len(s.fifo)-s.head)
	var data []byte // one allocation for the batch, grown as needed
	ci, ii := s.seekBefore(upper)
	for ci >= 0 {
		items := s.chunks[ci].items
		for ; ii >= 0; ii-- {
			it := items[ii]
			if it.t < lower {
				return n, next, false
			}
			if n == len(buf) {
				return n, next, true
			}
			p := s.packed(&s.fifo[s.head+int(it.seq-first)])
			if cap(data)-len(data) < len(p) {
				data = make([]byte, 0, max(64<<10, 2*len(p)))
			}
			data = append(data, p...)
			buf[n] = data[len(data)-len(p) : len(data) : len(data)]
			next = it.key
			n++
		}
		ci--
		if ci >= 0 {
			ii = len(s.chunks[ci].items) - 1
		}
	}
	return n, next, false
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	st := Stats{
		Entries:      uint64(len(s.fifo) - s.head),
		Bytes:        uint64(s.bytes),
		Added:        s.added,
		Evicted:      s.evicted,
		EvictedBytes: s.evBytes,
	}
	if len(s.chunks) > 0 {
		if t := s.chunks[0].items[0].t; t != math.MinInt64 {
			st.Oldest = time.Unix(0, t)
		}
	}
	s.mu.RUnlock()
	st.WatchDropped = s.watchDropped.Load()
	s.wmu.Lock()
	st.Watchers = len(s.watchers)
	s.wmu.Unlock()
	return st
}

// nanos is t in Unix nanoseconds, clamped to the int64 range (the zero
// Time sorts first).
func nanos(t time.Time) int64 {
	const minSec, maxSec = math.MinInt64/1_000_000_000 + 1, math.MaxInt64/1_000_000_000 - 1
	switch sec := t.Unix(); {
	case sec < minSec:
		return math.MinInt64
	case sec > maxSec:
		return math.MaxInt64
	}
	return t.UnixNano()
}
