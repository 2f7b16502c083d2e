package dns

import (
	"runtime"
	"testing"
)

// TestBlockSizes checks that each kind of block is allocated in the size
// class it was made for, the header included: nothing spills into the next
// class, and the text rooms grow with the classes.
func TestBlockSizes(t *testing.T) {
	check := func(name string, head, n int, room func(int) int, alloc func(int)) {
		prev := -1
		for i := range n {
			r := room(i)
			if r <= prev {
				t.Errorf("%s %d: room %d after %d", name, i, r, prev)
			}
			prev = r
			size := head + r
			if size > 512 {
				size += mallocHeader
			}
			const runs = 1000
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for range runs {
				alloc(i)
			}
			runtime.ReadMemStats(&m1)
			// Other goroutines may allocate a little meanwhile; the next
			// class would be 64 bytes or more above.
			if got := int((m1.TotalAlloc - m0.TotalAlloc) / runs); got < size || got >= size+32 {
				t.Errorf("%s with %d bytes of text: %d bytes allocated, want the class of %d", name, r, got, size)
			}
		}
	}
	keep := make([]any, 0, 1)
	check("exchange", exchangeSize, len(exchangeBlocks), func(i int) int { return exchangeBlocks[i].room }, func(i int) {
		h, text := exchangeBlocks[i].new()
		if len(text) != exchangeBlocks[i].room {
			t.Fatalf("text %d, want %d", len(text), exchangeBlocks[i].room)
		}
		keep = append(keep[:0], h)
	})
	check("request", requestSize, len(requestBlocks), func(i int) int { return requestBlocks[i].room }, func(i int) {
		h, _ := requestBlocks[i].new()
		keep = append(keep[:0], h)
	})
}
