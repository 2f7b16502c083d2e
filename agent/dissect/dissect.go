// Package dissect picks the protocol of each connection from its first
// bytes and hands the connection to that protocol's dissector.
package dissect

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/podwire/podwire/agent/dissect/dns"
	"github.com/podwire/podwire/agent/dissect/http1"
	"github.com/podwire/podwire/agent/dissect/http2"
	"github.com/podwire/podwire/agent/dissect/redis"
	"github.com/podwire/podwire/agent/dissect/sniff"
	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// sniffBytes is how many bytes of each direction detection may look at
// before it gives up on a connection: a request line with a long target can
// span segments.
const sniffBytes = 8<<10 + 64

// sniffBudget bounds the bytes all connections still being sniffed may
// hold; a connection that would go beyond it is given up (and counted).
const sniffBudget = 32 << 20

// Config holds the dissectors' settings.
type Config struct {
	HTTP1 http1.Config
	HTTP2 http2.Config
	Redis redis.Config
	DNS   dns.Config
}

// Stats counts connections by outcome.
type Stats struct {
	Detected   atomic.Uint64 // connections handed to a dissector
	Undetected atomic.Uint64 // connections of no known protocol
	OverBudget atomic.Uint64 // connections given up because sniffing held too much
	Panics     atomic.Uint64 // connections dropped because their dissector panicked
	// ConnRecords counts connections of no known protocol reported as one
	// record each (bytes each way, duration); Refused those of them whose
	// SYN was answered by a reset.
	ConnRecords atomic.Uint64
	Refused     atomic.Uint64
	HTTP1       http1.Stats
	HTTP2       http2.Stats
	Redis       redis.Stats
	DNS         dns.Stats // DNS over TCP here; over UDP the pipeline's tracker
}

// Dissectors builds a dissector for each new connection.
type Dissectors struct {
	cfg   Config
	emit  func(*entry.Entry)
	stats *Stats
	held  int64 // bytes held by sniffers; one goroutine feeds them all
}

// New returns the dissectors; emit receives every entry, on the goroutine
// that feeds the assembler.
func New(cfg Config, emit func(*entry.Entry)) *Dissectors {
	return &Dissectors{cfg: cfg, emit: emit, stats: &Stats{}}
}

// protocol is one dissector the sniffer can pick.
type protocol struct {
	name   string
	detect func([]byte) sniff.Verdict
	build  func(d *Dissectors, info *tcp.ConnInfo) tcp.Handler
	// midOnly: tried only on connections picked up mid-stream, whose
	// start (a preface, a greeting) was missed.
	midOnly bool
}

// protocols in the order they are tried: text protocols whose starts can
// look alike first (an HTTP request line also reads as a Redis inline
// command), binary ones last.
var protocols = []protocol{
	{"http1", http1.Detect, func(d *Dissectors, info *tcp.ConnInfo) tcp.Handler {
		cfg := d.cfg.HTTP1
		cfg.Upgrade = func(proto string, req *entry.Entry, reqDir tcp.Dir) tcp.Handler {
			if proto != "h2c" {
				return nil // websocket and the rest: not dissected
			}
			return http2.NewUpgraded(d.cfg.HTTP2, info, d.emit, &d.stats.HTTP2, reqDir, http2.UpgradedFrom(req))
		}
		return http1.New(cfg, info, d.emit, &d.stats.HTTP1)
	}, false},
	{"http2", http2.Detect, func(d *Dissectors, info *tcp.ConnInfo) tcp.Handler {
		return http2.New(d.cfg.HTTP2, info, d.emit, &d.stats.HTTP2)
	}, false},
	{"redis", redis.Detect, func(d *Dissectors, info *tcp.ConnInfo) tcp.Handler {
		return redis.New(d.cfg.Redis, info, d.emit, &d.stats.Redis)
	}, false},
	{"dns", func(b []byte) sniff.Verdict { return dns.Detect(b, true) }, func(d *Dissectors, info *tcp.ConnInfo) tcp.Handler {
		return dns.New(d.cfg.DNS, info, d.emit, &d.stats.DNS)
	}, false},
	// HTTP/2 frames without a preface: a connection opened before capture.
	{"http2", http2.DetectFrames, func(d *Dissectors, info *tcp.ConnInfo) tcp.Handler {
		return http2.New(d.cfg.HTTP2, info, d.emit, &d.stats.HTTP2)
	}, true},
}

// detect picks the protocol of b: the first that says yes, unless one
// tried before it still needs more bytes to say.
func detect(b []byte, mid bool) (*protocol, sniff.Verdict) {
	waiting := false
	for i := range protocols {
		if protocols[i].midOnly && !mid {
			continue
		}
		switch protocols[i].detect(b) {
		case sniff.Yes:
			if waiting {
				return nil, sniff.NeedMore
			}
			return &protocols[i], sniff.Yes
		case sniff.NeedMore:
			waiting = true
		}
	}
	if waiting {
		return nil, sniff.NeedMore
	}
	return nil, sniff.No
}

// Stats returns the live counters.
func (d *Dissectors) Stats() *Stats { return d.stats }

// Factory is the tcp.Factory that sniffs each connection.
func (d *Dissectors) Factory() tcp.Factory {
	return func(c *tcp.ConnInfo) tcp.Handler {
		s := &sniffer{d: d, info: c}
		if c.Role == tcp.RoleUnknown {
			s.retries = midStreamRetries
		}
		return s
	}
}

// sniffer holds a connection's first bytes until a protocol is recognised,
// then replays them to the protocol's handler and steps aside.
type sniffer struct {
	d      *Dissectors
	info   *tcp.ConnInfo
	next   tcp.Handler
	failed bool
	buf    [2][]byte
	ts     [2]time.Time
	order  []tcp.Dir // order in which the directions first sent bytes
	// u follows the connection while no dissector has it, for its
	// connection record.
	u *unknown
	// retries left for a connection picked up mid-stream, whose first
	// bytes may be the middle of a message: each later segment start is
	// another chance to find a message start.
	retries int
}

// midStreamRetries is how many segment starts of a connection picked up
// mid-stream are sniffed before it is given up.
const midStreamRetries = 32

// guard drops the connection when its dissector panicked: a bug hit by
// odd traffic costs that connection, not the agent. Deferred by the calls
// into the dissector.
func (s *sniffer) guard() {
	if r := recover(); r != nil {
		s.d.stats.Panics.Add(1)
		s.next = nil
		s.failed = true
	}
}

func (s *sniffer) Data(dir tcp.Dir, b []byte, t time.Time) {
	defer s.guard()
	if s.next != nil {
		s.next.Data(dir, b, t)
		return
	}
	// Fast path: the first segment decides on its own.
	fresh := len(s.buf[dir]) == 0 && len(s.buf[1-dir]) == 0
	v := sniff.NeedMore
	if fresh && !s.failed {
		var p *protocol
		if p, v = detect(b, s.mid()); v == sniff.Yes {
			s.start(p.build(s.d, s.info))
			s.next.Data(dir, b, t)
			return
		}
	}
	if s.u == nil {
		s.u = new(unknown)
	}
	s.u.see(dir, len(b), b, t)
	if s.failed {
		return
	}
	if len(s.buf[dir]) == 0 {
		s.ts[dir] = t
		if !slices.Contains(s.order, dir) {
			s.order = append(s.order, dir)
		}
	}
	if v == sniff.No {
		s.give()
		return
	}
	room := sniffBytes - len(s.buf[dir])
	if room > len(b) {
		room = len(b)
	}
	if s.d.held+int64(room) > sniffBudget {
		s.d.stats.OverBudget.Add(1)
		s.retries = 0
		s.give()
		return
	}
	s.d.held += int64(room)
	s.buf[dir] = append(s.buf[dir], b[:room]...)
	switch p, v := detect(s.buf[dir], s.mid()); v {
	case sniff.Yes:
		s.start(p.build(s.d, s.info))
		s.replay()
		if room < len(b) {
			s.next.Data(dir, b[room:], t)
		}
	case sniff.No:
		s.give()
	default:
		if len(s.buf[dir]) >= sniffBytes {
			s.give()
		}
	}
}

// mid tells whether the connection was picked up mid-stream.
func (s *sniffer) mid() bool { return s.info.Role == tcp.RoleUnknown }

func (s *sniffer) start(h tcp.Handler) {
	s.d.stats.Detected.Add(1)
	s.next = h
	s.u = nil
}

func (s *sniffer) replay() {
	for _, dir := range s.order {
		if len(s.buf[dir]) > 0 {
			s.next.Data(dir, s.buf[dir], s.ts[dir])
		}
	}
	s.drop()
}

// drop lets go of everything buffered.
func (s *sniffer) drop() {
	s.d.held -= int64(len(s.buf[0]) + len(s.buf[1]))
	s.buf = [2][]byte{}
	s.order = nil
}

func (s *sniffer) give() {
	s.drop()
	if s.retries > 0 {
		s.retries--
		return
	}
	s.d.stats.Undetected.Add(1)
	s.failed = true
}

func (s *sniffer) Gap(dir tcp.Dir, n int, t time.Time) {
	defer s.guard()
	if s.next != nil {
		s.next.Gap(dir, n, t)
		return
	}
	if s.u == nil {
		s.u = new(unknown)
	}
	s.u.see(dir, n, nil, t)
	// A gap before detection: what was buffered in that direction no
	// longer leads to the next bytes; start over from them.
	if len(s.buf[dir]) > 0 {
		s.d.held -= int64(len(s.buf[dir]))
		s.buf[dir] = s.buf[dir][:0]
	}
}

func (s *sniffer) End(reason tcp.EndReason, t time.Time) {
	defer s.guard()
	if s.next != nil {
		s.next.End(reason, t)
		return
	}
	// Bytes came but no protocol was ever decided: undetected too.
	if !s.failed && (len(s.buf[0]) > 0 || len(s.buf[1]) > 0) {
		s.d.stats.Undetected.Add(1)
	}
	s.drop()
	u := s.u
	if u == nil {
		u = &unknown{}
	}
	if e, ok := u.record(s.info, reason, t); ok {
		if e.Failed {
			s.d.stats.Refused.Add(1)
		}
		s.d.stats.ConnRecords.Add(1)
		s.d.emit(e)
	}
	s.u = nil
}
