package store

import (
	"time"

	"github.com/podwire/podwire/agent/entry"
)

// scanBatch is how many entries Scan copies per read-lock hold.
const scanBatch = 512

// maxScanBuffer bounds the buffer Scan keeps between batches; a batch of
// bigger entries gets a buffer of its own.
const maxScanBuffer = 4 << 20

// Scan calls fn with every entry whose Time is in [from, to) (a zero bound
// is unbounded), newest Time first, until fn returns false, and returns how
// many entries it passed. It is meant for aggregating many entries:
//
//   - With whole false, entries are decoded by entry.SummaryReader: no
//     notes, headers or bodies. Scanning then allocates nothing per entry.
//   - The entry passed, and every string and slice it holds, is valid only
//     during the call to fn: copy what you keep.
//
// fn runs without the store's lock held; entries are copied out in batches
// under a read lock, so Add waits at most for one batch to be copied.
func (s *Store) Scan(from, to time.Time, whole bool, fn func(*entry.Entry) bool) uint64 {
	upper, lower := bounds(from, to)
	var (
		data  []byte
		spans = make([]span, 0, scanBatch)
		d     entry.SummaryReader
		n     uint64
	)
	for {
		var next key
		var more bool
		data, spans, next, more = s.collectInto(upper, lower, whole, data[:0], spans[:0])
		for _, sp := range spans {
			b := data[sp.off : sp.off+sp.n : sp.off+sp.n]
			var e *entry.Entry
			if whole {
				e = unpack(b)
			} else {
				var err error
				if e, err = d.Read(b); err != nil {
					panic("store: " + err.Error())
				}
			}
			n++
			if !fn(e) {
				return n
			}
		}
		if !more {
			return n
		}
		upper = next
		if cap(data) > maxScanBuffer {
			data = nil
		}
	}
}

// span locates one entry in Scan's buffer.
type span struct{ off, n int }

// collectInto is collect for Scan: it appends up to cap(spans) packed
// entries (or, unless whole, their summaries), newest first, to data and
// their places to spans.
func (s *Store) collectInto(upper key, lower int64, whole bool, data []byte, spans []span) ([]byte, []span, key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var next key
	first := s.nextSeq - uint64(len(s.fifo)-s.head)
	ci, ii := s.seekBefore(upper)
	for ci >= 0 {
		items := s.chunks[ci].items
		for ; ii >= 0; ii-- {
			it := items[ii]
			if it.t < lower {
				return data, spans, next, false
			}
			if len(spans) == cap(spans) {
				return data, spans, next, true
			}
			p := s.packed(&s.fifo[s.head+int(it.seq-first)])
			if !whole {
				p = p[:entry.SummaryLen(p)]
			}
			spans = append(spans, span{off: len(data), n: len(p)})
			data = append(data, p...)
			next = it.key
		}
		ci--
		if ci >= 0 {
			ii = len(s.chunks[ci].items) - 1
		}
	}
	return data, spans, next, false
}
