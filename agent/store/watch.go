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
	s       *Store
	closed  bool // guarded by s.wmu
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
		select {
		case w.ch <- e:
		default:
			w.dropped.Add(1)
			s.watchDropped.Add(1)
		}
	}
}

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
