package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func mk(sec float64, path string) *entry.Entry {
	return &entry.Entry{Time: at(sec), Protocol: entry.ProtoHTTP, Method: "GET", Path: path, Status: 200}
}

// query runs q and returns the paths passed to fn.
func query(s *Store, q Query) []string {
	var out []string
	s.Query(q, func(e *entry.Entry) bool {
		out = append(out, e.Path)
		return true
	})
	return out
}

// checkIndex verifies the time index invariants and that it holds exactly
// the stored entries.
func checkIndex(t *testing.T, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var prev *item
	n := 0
	for ci, c := range s.chunks {
		if len(c.items) == 0 || len(c.items) > chunkSize {
			t.Fatalf("chunk %d has %d items", ci, len(c.items))
		}
		for i := range c.items {
			it := &c.items[i]
			if prev != nil && !prev.key.less(it.key) {
				t.Fatalf("index out of order at chunk %d item %d", ci, i)
			}
			prev = it
			n++
		}
	}
	if want := len(s.fifo) - s.head; n != want {
		t.Fatalf("index holds %d items, fifo %d", n, want)
	}
	bytes := int64(indexBytes * (len(s.fifo) - s.head))
	for _, b := range s.blocks {
		bytes += int64(cap(b))
	}
	if bytes != s.bytes {
		t.Fatalf("bytes = %d, blocks and index hold %d", s.bytes, bytes)
	}
	if s.head < len(s.fifo) && s.fifo[s.head].blk != s.base {
		t.Fatalf("oldest entry in block %d, first block held %d", s.fifo[s.head].blk, s.base)
	}
}

func TestIDsAndNode(t *testing.T) {
	s := New(Config{Node: "node-a"})
	seen := map[string]bool{}
	for i := range 100 {
		e := mk(float64(i), "/")
		if i == 5 {
			e.Node = "other"
		}
		s.Add(e)
		if !strings.HasPrefix(e.ID, "node-a-") || seen[e.ID] {
			t.Fatalf("id %q: not prefixed or not unique", e.ID)
		}
		seen[e.ID] = true
		if want := map[bool]string{true: "other", false: "node-a"}[i == 5]; e.Node != want {
			t.Fatalf("Node = %q, want %q", e.Node, want)
		}
		got, ok := s.Get(e.ID)
		if !ok || got.ID != e.ID || got.Node != e.Node || !got.Time.Equal(e.Time) {
			t.Fatalf("Get(%q) = %v, %v", e.ID, got, ok)
		}
	}
	for _, id := range []string{"", "node-a-0", "node-a-101", "node-a-007", "node-a-+7", "node-b-7", "node-a-x", "7"} {
		if _, ok := s.Get(id); ok {
			t.Errorf("Get(%q) found an entry", id)
		}
	}
	if New(Config{}).node != DefaultNode {
		t.Error("empty Node not defaulted")
	}
}

// stored is what e takes in a store once added (with its ID and Node).
func stored(e *entry.Entry) int64 { return int64(len(entry.AppendPacked(nil, e)) + indexBytes) }

func TestBoundAndEviction(t *testing.T) {
	one := stored(&entry.Entry{ID: "n-" + runID() + "-100", Node: "n", Time: at(0), Protocol: entry.ProtoHTTP, Method: "GET", Path: "/p000", Status: 200})
	s := New(Config{Node: "n", MaxBytes: 10 * one})
	var added []*entry.Entry
	for i := range 100 {
		e := mk(float64(i), fmt.Sprintf("/p%03d", i))
		s.Add(e)
		added = append(added, e)
		st := s.Stats()
		if int64(st.Bytes) > 10*one {
			t.Fatalf("after %d adds: %d bytes > MaxBytes %d", i+1, st.Bytes, 10*one)
		}
		checkIndex(t, s)
	}
	st := s.Stats()
	if st.Added != 100 || st.Entries+st.Evicted != 100 || st.Entries == 0 {
		t.Fatalf("Stats = %+v", st)
	}
	var evicted uint64
	for _, e := range added[:st.Evicted] {
		evicted += uint64(stored(e))
	}
	if st.EvictedBytes != evicted {
		t.Errorf("EvictedBytes %d, the evicted entries took %d", st.EvictedBytes, evicted)
	}
	if st.Entries < 5 {
		t.Errorf("%d entries kept in room for 10: blocks waste too much", st.Entries)
	}
	// The oldest were evicted, the newest kept.
	for i, e := range added {
		_, ok := s.Get(e.ID)
		if want := i >= 100-int(st.Entries); ok != want {
			t.Errorf("Get(entry %d) = %v, want %v", i, ok, want)
		}
	}
	if !st.Oldest.Equal(added[100-st.Entries].Time) {
		t.Errorf("Oldest = %v", st.Oldest)
	}
}

func TestEvictionByInsertionNotTime(t *testing.T) {
	one := stored(&entry.Entry{ID: "n-" + runID() + "-1", Node: "n", Time: at(100), Protocol: entry.ProtoHTTP, Method: "GET", Path: "/p0", Status: 200}) // ids stay one digit
	per := int(minBlock / (one - indexBytes))                                                                                                            // entries a block holds
	// Room for two blocks and per entries' index: the entry that opens
	// the second block makes one entry go.
	s := New(Config{Node: "n", MaxBytes: 2*minBlock + int64(per)*indexBytes})
	// "/p0" is added first but has the newest Time: it still goes first.
	s.Add(mk(100, "/p0"))
	var want []string
	for i := 1; i <= per; i++ {
		p := fmt.Sprintf("/p%d", i)
		s.Add(mk(float64(i), p))
		want = append([]string{p}, want...)
	}
	if got := query(s, Query{}); !slices.Equal(got, want) {
		t.Fatalf("after eviction: %v, want %v", got, want)
	}
	if st := s.Stats(); st.Evicted != 1 || !st.Oldest.Equal(at(1)) {
		t.Fatalf("Stats = %+v", st)
	}
	checkIndex(t, s)
}

func TestOversizedEntry(t *testing.T) {
	s := New(Config{Node: "n", MaxBytes: 100})
	e := mk(0, "/big")
	s.Add(e)
	if _, ok := s.Get(e.ID); ok {
		t.Fatal("entry larger than MaxBytes kept")
	}
	if st := s.Stats(); st.Entries != 0 || st.Bytes != 0 || st.Evicted != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestQuery(t *testing.T) {
	s := New(Config{Node: "n"})
	// Arrival order differs from Time order; two entries share a Time.
	for _, e := range []*entry.Entry{
		mk(1, "/1"), mk(3, "/3"), mk(2, "/2"), mk(5, "/5"), mk(4, "/4"),
		mk(0, "/0"), mk(5, "/5b"), mk(6, "/6"), mk(2.5, "/2.5"),
	} {
		s.Add(e)
	}
	status := func(path string) func(*entry.Entry) bool {
		return func(e *entry.Entry) bool { return strings.HasPrefix(e.Path, path) }
	}
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"all newest first", Query{}, []string{"/6", "/5b", "/5", "/4", "/3", "/2.5", "/2", "/1", "/0"}},
		{"limit", Query{Limit: 3}, []string{"/6", "/5b", "/5"}},
		{"to exclusive", Query{To: at(5)}, []string{"/4", "/3", "/2.5", "/2", "/1", "/0"}},
		{"from inclusive", Query{From: at(4)}, []string{"/6", "/5b", "/5", "/4"}},
		{"from to", Query{From: at(2), To: at(4)}, []string{"/3", "/2.5", "/2"}},
		{"from to limit", Query{From: at(2), To: at(4), Limit: 2}, []string{"/3", "/2.5"}},
		{"match", Query{Match: status("/2")}, []string{"/2.5", "/2"}},
		{"match limit", Query{Match: status("/5"), Limit: 1}, []string{"/5b"}},
		{"empty range", Query{From: at(4), To: at(4)}, nil},
		{"before all", Query{To: at(0)}, nil},
		{"after all", Query{From: at(7)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := query(s, tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("fn stops", func(t *testing.T) {
		var got []string
		s.Query(Query{}, func(e *entry.Entry) bool {
			got = append(got, e.Path)
			return len(got) < 2
		})
		if !slices.Equal(got, []string{"/6", "/5b"}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("default limit", func(t *testing.T) {
		s := New(Config{})
		for i := range DefaultLimit + 10 {
			s.Add(mk(float64(i), "/"))
		}
		if n := len(query(s, Query{})); n != DefaultLimit {
			t.Errorf("got %d entries, want %d", n, DefaultLimit)
		}
	})
}

// TestQueryRandom checks the index against a plain sorted model with
// out-of-order times, evictions and queries spanning many chunks and
// batches.
func TestQueryRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	one := int64(mk(0, "/00000").Size() + len("n-00000") + len("n"))
	const keep = 3000
	s := New(Config{Node: "n", MaxBytes: keep * one})
	var model []*entry.Entry // insertion order
	for i := range 20000 {
		sec := float64(i) / 10
		switch rng.IntN(10) {
		case 0:
			sec -= rng.Float64() * 300 // very late: a long request
		case 1, 2, 3:
			sec -= rng.Float64() * 2
		}
		e := mk(sec, fmt.Sprintf("/%05d", i))
		e.Status = int32(rng.IntN(6) * 100)
		s.Add(e)
		model = append(model, e)
		if st := s.Stats(); int64(st.Bytes) > keep*one {
			t.Fatalf("bound broken: %d", st.Bytes)
		}
		if i%997 == 0 {
			checkIndex(t, s)
		}
	}
	checkIndex(t, s)
	st := s.Stats()
	stored := slices.Clone(model[len(model)-int(st.Entries):])
	for _, e := range model[:len(model)-int(st.Entries)] {
		if _, ok := s.Get(e.ID); ok {
			t.Fatal("evicted entry still found")
		}
	}
	// Newest Time first; ties by insertion, last first.
	slices.SortStableFunc(stored, func(a, b *entry.Entry) int { return b.Time.Compare(a.Time) })
	for i := 1; i < len(stored); i++ {
		if stored[i].Time.Equal(stored[i-1].Time) {
			t.Fatal("test expects distinct times")
		}
	}
	for range 200 {
		from := at(rng.Float64() * 2000)
		to := from.Add(time.Duration(rng.Float64() * 500 * float64(time.Second)))
		q := Query{Limit: rng.IntN(1500)}
		if rng.IntN(4) > 0 {
			q.From = from
		}
		if rng.IntN(4) > 0 {
			q.To = to
		}
		if rng.IntN(2) == 0 {
			q.Match = func(e *entry.Entry) bool { return e.Status >= 500 }
		}
		var want []string
		limit := q.Limit
		if limit == 0 {
			limit = DefaultLimit
		}
		for _, e := range stored {
			if (!q.From.IsZero() && e.Time.Before(q.From)) || (!q.To.IsZero() && !e.Time.Before(q.To)) {
				continue
			}
			if q.Match != nil && !q.Match(e) {
				continue
			}
			if len(want) == limit {
				break
			}
			want = append(want, e.Path)
		}
		if got := query(s, q); !slices.Equal(got, want) {
			t.Fatalf("query %+v: got %d entries, want %d", q, len(got), len(want))
		}
	}
}

func TestWatch(t *testing.T) {
	s := New(Config{Node: "n"})
	errs := s.Watch(func(e *entry.Entry) bool { return e.Status >= 500 })
	all := s.Watch(nil)
	defer all.Close()
	if st := s.Stats(); st.Watchers != 2 {
		t.Fatalf("Watchers = %d", st.Watchers)
	}
	for i, status := range []int32{200, 503, 404, 500} {
		e := mk(float64(i), fmt.Sprint(status))
		e.Status = status
		s.Add(e)
	}
	for _, want := range []string{"503", "500"} {
		if e := <-errs.C; e.Path != want || e.ID == "" {
			t.Fatalf("got %s (id %q), want %s", e.Path, e.ID, want)
		}
	}
	if len(all.C) != 4 {
		t.Fatalf("unfiltered watcher has %d entries, want 4", len(all.C))
	}
	errs.Close()
	errs.Close() // twice is fine
	e := mk(9, "599")
	e.Status = 599
	s.Add(e)
	if _, ok := <-errs.C; ok {
		t.Fatal("closed watcher received an entry")
	}
	if st := s.Stats(); st.Watchers != 1 {
		t.Fatalf("Watchers after Close = %d", st.Watchers)
	}
}

func TestSlowWatcherDrops(t *testing.T) {
	s := New(Config{Node: "n", WatchBuffer: 4})
	w := s.Watch(nil)
	defer w.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			s.Add(mk(float64(i), "/"))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Add blocked on a full watcher")
	}
	if got := w.TakeDropped(); got != 6 {
		t.Fatalf("TakeDropped = %d, want 6", got)
	}
	if got := w.TakeDropped(); got != 0 {
		t.Fatalf("second TakeDropped = %d, want 0", got)
	}
	if st := s.Stats(); st.WatchDropped != 6 {
		t.Fatalf("WatchDropped = %d", st.WatchDropped)
	}
	// The first four arrived, in order.
	for i := range 4 {
		if e := <-w.C; !e.Time.Equal(at(float64(i))) {
			t.Fatalf("entry %d has time %v", i, e.Time)
		}
	}
}

func TestConcurrent(t *testing.T) {
	s := New(Config{Node: "n", MaxBytes: 200 * 400})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var last time.Time
				s.Query(Query{Limit: 50}, func(e *entry.Entry) bool {
					if !last.IsZero() && e.Time.After(last) {
						t.Error("query out of order")
					}
					last = e.Time
					_, _ = s.Get(e.ID)
					return true
				})
				s.Stats()
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			w := s.Watch(nil)
			time.Sleep(time.Millisecond)
			w.Close()
		}
	})
	for i := range 20000 {
		s.Add(mk(float64(i)-float64(i%7), "/"))
	}
	close(stop)
	wg.Wait()
	checkIndex(t, s)
}

func TestWatcherBoundedInBytes(t *testing.T) {
	// An entry's size once stored (with its id and node).
	sized := mk(0, "/")
	New(Config{Node: "n"}).Add(sized)
	one := int64(sized.Size())
	s := New(Config{Node: "n", WatchBuffer: 100, WatchBytes: 3 * one})
	w := s.Watch(nil)
	defer w.Close()
	for i := range 5 {
		s.Add(mk(float64(i), "/"))
	}
	// Room in the channel, but only three entries' worth of bytes.
	if got := w.TakeDropped(); got != 2 {
		t.Fatalf("TakeDropped = %d, want 2 (bytes bound)", got)
	}
	// Taking entries frees room for new ones.
	for range 2 {
		w.Received(<-w.C)
	}
	s.Add(mk(5, "/"))
	s.Add(mk(6, "/"))
	s.Add(mk(7, "/"))
	if got := w.TakeDropped(); got != 1 {
		t.Fatalf("after reading two, TakeDropped = %d, want 1", got)
	}
}
