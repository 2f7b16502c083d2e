package dns

import (
	"unsafe"

	"github.com/podwire/podwire/agent/entry"
)

// An entry is made in one allocation: the entry, its messages, and the
// text they point to (the path and the bodies) after them. The text is a
// byte array sized so that the whole is a malloc size class, the smallest
// that holds the text; what rounding adds goes to the last body as
// capacity, which the entry's Size counts.

// exchange is an answered entry; request is one without a response,
// with room for its notes ("no response" and one more).
type exchange struct {
	e         entry.Entry
	req, resp entry.Message
}

type request struct {
	e     entry.Entry
	req   entry.Message
	notes [2]string
}

// block is a head (exchange or request) with text after it.
type block[H, T any] struct {
	head H
	text T // a byte array
}

func newBlock[H, T any]() (*H, []byte) {
	b := new(block[H, T])
	return &b.head, unsafe.Slice((*byte)(unsafe.Pointer(&b.text)), unsafe.Sizeof(b.text))
}

// Sizes of the heads, and of the malloc header that objects with pointers
// over 512 bytes start with.
const (
	exchangeSize = int(unsafe.Sizeof(exchange{}))
	requestSize  = int(unsafe.Sizeof(request{}))
	mallocHeader = 8
)

// blockKind makes blocks whose text holds room bytes.
type blockKind[H any] struct {
	room int
	new  func() (*H, []byte)
}

func kind[H, T any]() blockKind[H] {
	var text T
	return blockKind[H]{int(unsafe.Sizeof(text)), newBlock[H, T]}
}

// The kinds by size class (those of Go's allocator from 480 to 4096
// bytes; the header counts above 512), smallest first. Larger text is
// allocated on its own.
var exchangeBlocks = [...]blockKind[exchange]{
	kind[exchange, [576 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [640 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [704 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [768 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [896 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [1024 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [1152 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [1280 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [1408 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [1536 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [1792 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [2048 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [2304 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [2688 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [3072 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [3200 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [3456 - mallocHeader - exchangeSize]byte](),
	kind[exchange, [4096 - mallocHeader - exchangeSize]byte](),
}

var requestBlocks = [...]blockKind[request]{
	kind[request, [480 - requestSize]byte](),
	kind[request, [512 - requestSize]byte](),
	kind[request, [576 - mallocHeader - requestSize]byte](),
	kind[request, [640 - mallocHeader - requestSize]byte](),
	kind[request, [704 - mallocHeader - requestSize]byte](),
	kind[request, [768 - mallocHeader - requestSize]byte](),
	kind[request, [896 - mallocHeader - requestSize]byte](),
	kind[request, [1024 - mallocHeader - requestSize]byte](),
	kind[request, [1152 - mallocHeader - requestSize]byte](),
	kind[request, [1280 - mallocHeader - requestSize]byte](),
	kind[request, [1408 - mallocHeader - requestSize]byte](),
	kind[request, [1536 - mallocHeader - requestSize]byte](),
	kind[request, [1792 - mallocHeader - requestSize]byte](),
	kind[request, [2048 - mallocHeader - requestSize]byte](),
}

// newBlockFor returns a head and at least n bytes of text: in one
// allocation when a kind holds n, else the text on its own.
func newBlockFor[H any](kinds []blockKind[H], n int) (*H, []byte) {
	for _, k := range kinds {
		if n <= k.room {
			return k.new()
		}
	}
	// As append makes it: the capacity is what the allocation holds.
	return new(H), append([]byte(nil), make([]byte, n)...)
}

func newExchange(n int) (*exchange, []byte) { return newBlockFor(exchangeBlocks[:], n) }
func newRequest(n int) (*request, []byte)   { return newBlockFor(requestBlocks[:], n) }
