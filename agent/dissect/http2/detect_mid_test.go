package http2

import (
	"testing"
)

func TestDetectFrames(t *testing.T) {
	frame := func(typ, flags byte, sid uint32, payload string) string {
		n := len(payload)
		return string([]byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags,
			byte(sid >> 24), byte(sid >> 16), byte(sid >> 8), byte(sid)}) + payload
	}
	headers := frame(frameHeaders, flagEndHeaders|flagEndStream, 7, "\x82\x86\x84\xbe")
	data := frame(frameData, flagEndStream, 7, "hello")
	cases := []struct {
		name string
		b    string
		want Verdict
	}{
		{"HEADERS then DATA", headers + data, Yes},
		{"one frame filling the segment", headers, Yes},
		{"WINDOW_UPDATE on the connection, then PING", frame(frameWindowUpdate, 0, 0, "\x00\x00\x10\x00") + frame(framePing, 0, 0, "12345678"), Yes},
		{"frame header only", headers[:9], NeedMore},
		{"first frame whole, the next cut in its header", headers + data[:4], NeedMore},
		{"first bytes of a header", headers[:5], NeedMore},
		{"HTTP/1 request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", No},
		{"HTTP/1 response", "HTTP/1.1 200 OK\r\n\r\n", No},
		{"Redis", "*1\r\n$4\r\nPING\r\n", No},
		{"TLS record", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", No},
		{"DATA on stream 0", frame(frameData, 0, 0, "x"), No},
		{"SETTINGS on a stream", frame(frameSettings, 0, 1, ""), No},
		{"PING of the wrong length", frame(framePing, 0, 0, "1234"), No},
		{"unknown flags", frame(frameData, 0x40, 1, "x"), No},
		{"unknown type", frame(0x20, 0, 1, "x"), No},
		{"second frame implausible", headers + frame(frameRSTStream, 0, 7, "123"), No},
	}
	for _, tc := range cases {
		if got := DetectFrames([]byte(tc.b)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
