package plugin

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// summaryCodec decodes the Entry messages of Query and Watch streams
// without their header maps, header lists and trailers: tables, log lines
// and live tails never show them, and decoding them is most of the cost of
// a large answer. Everything else, and every other message, is decoded as
// usual. It keeps gRPC's "proto" name, so the wire is unchanged.
type summaryCodec struct{ proto encoding.CodecV2 }

var summaryCodecV2 = summaryCodec{proto: encoding.GetCodecV2("proto")}

func (c summaryCodec) Name() string { return "proto" }

func (c summaryCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// filterBufs are the buffers an entry is filtered through.
type filterBuf struct{ out, msg []byte }

var filterBufs = sync.Pool{New: func() any { return &filterBuf{out: make([]byte, 0, 4096), msg: make([]byte, 0, 1024)} }}

func (c summaryCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var e *podwirev1.Entry
	switch m := v.(type) {
	case *podwirev1.Entry:
		e = m
	case *podwirev1.WatchResponse:
		return c.unmarshalWatch(data, m)
	default:
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return unmarshalEntry(buf.ReadOnlyData(), e)
}

func (c summaryCodec) unmarshalWatch(data mem.BufferSlice, m *podwirev1.WatchResponse) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	m.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decoding WatchResponse: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("decoding WatchResponse: %w", protowire.ParseError(n))
			}
			m.Entry = &podwirev1.Entry{}
			if err := unmarshalEntry(v, m.Entry); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		if num == 2 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("decoding WatchResponse: %w", protowire.ParseError(n))
			}
			m.Dropped = v
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("decoding WatchResponse: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// Entry fields holding a Message, and Message fields to skip.
const (
	entryRequest  = 12
	entryResponse = 13
	msgHeaders    = 1
	msgHeaderList = 6
	msgTrailers   = 7
)

// unmarshalEntry decodes b into e with the request's and response's
// headers and trailers left out.
func unmarshalEntry(b []byte, e *podwirev1.Entry) error {
	fb := filterBufs.Get().(*filterBuf)
	defer filterBufs.Put(fb)
	out := fb.out[:0]
	defer func() { fb.out = out[:0] }()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decoding Entry: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("decoding Entry: %w", protowire.ParseError(m))
		}
		if (num == entryRequest || num == entryResponse) && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			var err error
			if fb.msg, err = appendMessageWithoutHeaders(fb.msg[:0], v); err != nil {
				return err
			}
			out = protowire.AppendTag(out, num, protowire.BytesType)
			out = protowire.AppendBytes(out, fb.msg)
		} else {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return proto.Unmarshal(out, e)
}

// appendMessageWithoutHeaders appends the fields of a Message other than
// its headers, header list and trailers.
func appendMessageWithoutHeaders(out, b []byte) ([]byte, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("decoding Message: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, fmt.Errorf("decoding Message: %w", protowire.ParseError(m))
		}
		switch num {
		case msgHeaders, msgHeaderList, msgTrailers:
		default:
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return out, nil
}
