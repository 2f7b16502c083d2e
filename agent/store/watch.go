package store

import (
	"slices"
	"sync/atomic"

	"github.com/podwire/podwire/agent/entry"
)

// Watcher receives entries as they are added.
type Watcher struct {
	// C delivers matching entries in the order they were added. It is
	// closed by Close.
	C <-chan *entry.Entry

	ch      chan *entry.Entry
	match   func(*entry.Entry) bool
	dropped atomic.Uint64
	// queued is the size of the entries sent on ch and not yet Received:
	// a slow reader holds on to no more than the store's WatchBytes.
	queued atomic.Int64
	s      *Store
	closed bool // guarded by s.wmu
}

// Watch returns a Watcher for the entries added from now on for which match
// returns true (nil matches all). match runs on Add's goroutine, so it must
// be fast. When C is full an entry is dropped for this watcher and counted;
// Add never blocks on a watcher. The Watcher must be closed.
func (s *Store) Watch(match func(*entry.Entry) bool) *Watcher {
	ch := make(chan *entry.Entry, s.wbuf)
	w := &Watcher{C: ch, ch: ch, match: match, s: s}
	s.wmu.Lock()
	s.watchers = append(s.watchers, w)
	s.wmu.Unlock()
	return w
}

// fanout offers e to every matching watcher without blocking.
func (s *Store) fanout(e *entry.Entry) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, w := range s.watchers {
		if w.match != nil && !w.match(e) {
			continue
		}
		size := int64(e.Size())
		if w.queued.Load()+size > s.wbytes {
			w.dropped.Add(1)
			s.watchDropped.Add(1)
			continue
		}
		select {
		case w.ch <- e:
			w.queued.Add(size)
		default:
			w.dropped.Add(1)
			s.watchDropped.Add(1)
		}
	}
}

// Received tells the store that the reader is done with e, an entry from C:
// it no longer counts against the watcher's byte bound.
func (w *Watcher) Received(e *entry.Entry) { w.queued.Add(-int64(e.Size())) }

// TakeDropped returns how many entries were dropped for w since the last
// call, and resets the count.
func (w *Watcher) TakeDropped() uint64 { return w.dropped.Swap(0) }

// Close stops delivery and closes C; entries already in C can still be
// read. Close may be called more than once.
func (w *Watcher) Close() {
	s := w.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if i := slices.Index(s.watchers, w); i >= 0 {
		s.watchers = slices.Delete(s.watchers, i, i+1)
	}
	close(w.ch)
}
