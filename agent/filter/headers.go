package filter

import (
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/podwire/podwire/agent/entry"
)

// headers is the CEL value of request.headers and response.headers: a
// map(string, string) read straight from the message's header list, so no
// map is built unless the whole map is needed (iteration, equality).
//
// Unlike a plain CEL map, indexing a missing name yields "" instead of an
// error, so `request.headers["x-debug"] == "1"` is simply false on entries
// without the header. Presence tests (`"x" in request.headers`,
// `has(request.headers.x)`) still tell a missing header from an empty one.
// For that reason headers deliberately does not implement traits.Mapper:
// the interpreter would then report a missing key as an error.
type headers struct {
	m *entry.Message // nil when the entry has no such message
}

var (
	_ traits.Container   = headers{}
	_ traits.Indexer     = headers{}
	_ traits.FieldTester = headers{}
	_ traits.Iterable    = headers{}
	_ traits.Sizer       = headers{}
)

// lookup returns the value of name joined as entry.Message.HeaderMap does.
func (h headers) lookup(name string) (string, bool) {
	if h.m == nil {
		return "", false
	}
	val, found := "", false
	for _, hd := range h.m.Headers {
		if hd.Name != name {
			continue
		}
		if !found {
			val, found = hd.Value, true
			continue
		}
		sep := ", "
		if name == "set-cookie" {
			sep = "\n"
		}
		val += sep + hd.Value
	}
	return val, found
}

func (h headers) key(v ref.Val) (string, ref.Val) {
	s, ok := v.(types.String)
	if !ok {
		return "", types.MaybeNoSuchOverloadErr(v)
	}
	return string(s), nil
}

// Get implements traits.Indexer; a missing header is "".
func (h headers) Get(index ref.Val) ref.Val {
	k, err := h.key(index)
	if err != nil {
		return err
	}
	v, _ := h.lookup(k)
	return types.String(v)
}

// Contains implements traits.Container: the `in` operator.
func (h headers) Contains(value ref.Val) ref.Val {
	k, err := h.key(value)
	if err != nil {
		return err
	}
	_, ok := h.lookup(k)
	return types.Bool(ok)
}

// IsSet implements traits.FieldTester: has(request.headers.name).
func (h headers) IsSet(field ref.Val) ref.Val { return h.Contains(field) }

// Size implements traits.Sizer: the number of distinct header names.
func (h headers) Size() ref.Val {
	if h.m == nil {
		return types.IntZero
	}
	n := 0
	for i, hd := range h.m.Headers {
		seen := false
		for _, prev := range h.m.Headers[:i] {
			if prev.Name == hd.Name {
				seen = true
				break
			}
		}
		if !seen {
			n++
		}
	}
	return types.Int(n)
}

// toMap builds the full CEL map.
func (h headers) toMap() traits.Mapper {
	m := h.m.HeaderMap()
	if m == nil {
		m = map[string]string{}
	}
	return types.NewStringStringMap(types.DefaultTypeAdapter, m)
}

// Iterator implements traits.Iterable over the header names.
func (h headers) Iterator() traits.Iterator { return h.toMap().Iterator() }

// ConvertToNative implements ref.Val.
func (h headers) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return h.toMap().ConvertToNative(typeDesc)
}

// ConvertToType implements ref.Val.
func (h headers) ConvertToType(typeVal ref.Type) ref.Val {
	return h.toMap().ConvertToType(typeVal)
}

// Equal implements ref.Val.
func (h headers) Equal(other ref.Val) ref.Val { return h.toMap().Equal(other) }

// Type implements ref.Val.
func (h headers) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (h headers) Value() any {
	m := h.m.HeaderMap()
	if m == nil {
		m = map[string]string{}
	}
	return m
}
