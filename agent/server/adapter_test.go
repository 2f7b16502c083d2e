package server

import (
	"encoding/base64"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

func TestToProtoBody(t *testing.T) {
	binary := []byte{0x00, 0xff, 0x10, 0x80, 'a', 'b'}
	tests := []struct {
		name          string
		body          []byte
		truncated     bool
		maxBody       int
		wantBody      string
		wantEncoding  string
		wantTruncated bool
	}{
		{name: "whole text", body: []byte("hello"), maxBody: -1, wantBody: "hello"},
		{name: "limit above size", body: []byte("hello"), maxBody: 10, wantBody: "hello"},
		{name: "limit equals size", body: []byte("hello"), maxBody: 5, wantBody: "hello"},
		{name: "cut", body: []byte("hello"), maxBody: 3, wantBody: "hel", wantTruncated: true},
		{name: "cut keeps truncated", body: []byte("hello"), truncated: true, maxBody: -1, wantBody: "hello", wantTruncated: true},
		{name: "no body keeps flags", body: []byte("hello"), truncated: true, maxBody: 0, wantTruncated: true},
		{name: "no body not truncated", body: []byte("hello"), maxBody: 0},
		// "é" is two bytes: a cut inside it backs up to the character start.
		{name: "cut on rune boundary", body: []byte("aé"), maxBody: 2, wantBody: "a", wantTruncated: true},
		{name: "binary", body: binary, maxBody: -1, wantBody: base64.StdEncoding.EncodeToString(binary), wantEncoding: "base64"},
		{name: "binary cut", body: binary, maxBody: 2, wantBody: base64.StdEncoding.EncodeToString(binary[:2]), wantEncoding: "base64", wantTruncated: true},
		{name: "empty", body: nil, maxBody: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &entry.Entry{Request: &entry.Message{Body: tc.body, BodyBytes: 1234, Truncated: tc.truncated}}
			m := ToProto(e, tc.maxBody).GetRequest()
			if m.GetBody() != tc.wantBody || m.GetBodyEncoding() != tc.wantEncoding || m.GetTruncated() != tc.wantTruncated {
				t.Errorf("body %q encoding %q truncated %v, want %q %q %v",
					m.GetBody(), m.GetBodyEncoding(), m.GetTruncated(), tc.wantBody, tc.wantEncoding, tc.wantTruncated)
			}
			if m.GetBodyBytes() != 1234 {
				t.Errorf("body_bytes = %d, want 1234", m.GetBodyBytes())
			}
		})
	}
}

func sampleEntry() *entry.Entry {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	return &entry.Entry{
		ID:          "node-a-7",
		Time:        t0,
		Protocol:    entry.ProtoHTTP,
		HTTPVersion: "1.1",
		Src:         entry.Endpoint{IP: netip.MustParseAddr("10.0.0.1"), Port: 43210, Who: &entry.Identity{Pod: "web-1", Namespace: "shop", Workload: "web", WorkloadKind: "Deployment", Node: "node-a"}},
		Dst:         entry.Endpoint{IP: netip.MustParseAddr("fd00::7"), Port: 8080, Who: &entry.Identity{Service: "cart", Process: "cartd"}},
		Method:      "POST",
		Path:        "/api/cart?x=1",
		Status:      503,
		Failed:      true,
		Latency:     12345678 * time.Nanosecond,
		Request: &entry.Message{
			Headers: []entry.Header{
				{Name: "accept", Value: "a"}, {Name: "accept", Value: "b"},
				{Name: "set-cookie", Value: "x=1"}, {Name: "set-cookie", Value: "y=2"},
			},
			Trailers:  []entry.Header{{Name: "grpc-status", Value: "0"}},
			Body:      []byte(`{"a":1}`),
			BodyBytes: 7,
			Start:     t0,
			End:       t0.Add(time.Millisecond),
		},
		Incomplete: true,
		Notes:      []string{"gap in response body"},
		ConnID:     99,
		Node:       "node-a",
	}
}

func TestToProtoFields(t *testing.T) {
	p := ToProto(sampleEntry(), -1)
	if got := p.GetLatencyMs(); got != 12.345678 {
		t.Errorf("latency_ms = %v, want 12.345678", got)
	}
	if got := p.GetTime().AsTime(); !got.Equal(sampleEntry().Time) {
		t.Errorf("time = %v", got)
	}
	if p.GetResponse() != nil {
		t.Errorf("response = %v, want nil", p.GetResponse())
	}
	h := p.GetRequest().GetHeaders()
	if h["accept"] != "a, b" || h["set-cookie"] != "x=1\ny=2" {
		t.Errorf("headers = %q", h)
	}
	if n := len(p.GetRequest().GetHeaderList()); n != 4 {
		t.Errorf("header_list has %d headers, want 4", n)
	}
	if p.GetRequest().GetTrailers()["grpc-status"] != "0" {
		t.Errorf("trailers = %v", p.GetRequest().GetTrailers())
	}
	if p.GetSrc().GetIp() != "10.0.0.1" || p.GetDst().GetIp() != "fd00::7" || p.GetDst().GetPort() != 8080 {
		t.Errorf("endpoints = %v -> %v", p.GetSrc(), p.GetDst())
	}
	if p.GetRequest().GetStart() == nil || p.GetRequest().GetEnd() == nil {
		t.Errorf("message times missing")
	}
	if (&entry.Entry{}).ID != "" || ToProto(&entry.Entry{}, -1).GetTime() != nil {
		t.Errorf("zero time should be unset")
	}
}

func TestRoundTrip(t *testing.T) {
	want := sampleEntry()
	want.Response = &entry.Message{Body: []byte{0, 1, 2, 0xfe}, BodyBytes: 4}
	got := FromProto(ToProto(want, -1))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestFromProtoHeaderMap(t *testing.T) {
	p := ToProto(sampleEntry(), -1)
	p.Request.HeaderList = nil
	m := FromProto(p).Request
	var names []string
	for _, h := range m.Headers {
		names = append(names, h.Name+"="+h.Value)
	}
	if got := strings.Join(names, ";"); got != "accept=a, b;set-cookie=x=1\ny=2" {
		t.Errorf("headers = %q", got)
	}
}
