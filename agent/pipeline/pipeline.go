// Package pipeline wires the stages of the data path: capture, reassembly,
// dissection, redaction and the store.
package pipeline

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podwire/podwire/agent/capture"
	"github.com/podwire/podwire/agent/dissect"
	"github.com/podwire/podwire/agent/dissect/dns"
	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/redact"
	"github.com/podwire/podwire/agent/store"
	"github.com/podwire/podwire/agent/tcp"
)

// Config holds every stage's settings.
type Config struct {
	Node    string
	Capture capture.Config
	TCP     tcp.Config
	Dissect dissect.Config
	Redact  redact.Config
	// TickInterval is how often idle connections and overdue holes are
	// checked; default 100ms.
	TickInterval time.Duration
	// Identify names the ends of each new connection; nil leaves
	// entries with addresses only.
	Identify Identifier
	// CaptureNamespaces, when not empty, keeps only traffic whose local
	// socket is in a pod of one of these namespaces; SkipNamespaces drops
	// traffic whose local socket is in a pod of one of these. Both need
	// Identify.
	CaptureNamespaces, SkipNamespaces []string
}

// wanted tells whether traffic of a local socket named who is kept by the
// namespace settings.
func (c *Config) wanted(who *entry.Identity) bool {
	ns := ""
	if who != nil {
		ns = who.Namespace
	}
	if len(c.CaptureNamespaces) > 0 && !slices.Contains(c.CaptureNamespaces, ns) {
		return false
	}
	return ns == "" || !slices.Contains(c.SkipNamespaces, ns)
}

// Identifier names the ends of a connection when it is first seen. The
// identities it returns must not change afterwards: entries keep them.
type Identifier interface {
	// Local names the capturing socket's side, from its cgroup.
	Local(cgroupID uint64, addr netip.AddrPort) *entry.Identity
	// Remote names the peer, from its address.
	Remote(addr netip.AddrPort) *entry.Identity
}

// Pipeline turns captured segments into stored entries. Feed and Tick must
// be called from one goroutine (Run does so).
type Pipeline struct {
	cfg   Config
	st    *store.Store
	red   *redact.Redactor
	dis   *dissect.Dissectors
	asm   *tcp.Assembler
	cap   *capture.Capture
	once  sync.Once
	emits atomic.Uint64
	udp   atomic.Uint64 // datagrams seen
	// dns pairs DNS datagrams; fed and ticked on the capture goroutine.
	dns        *dns.Tracker
	dnsStats   dns.Stats
	udpPartial atomic.Uint64 // datagrams larger than one record, not dissected
	otherNode  atomic.Uint64 // connections left to the server's node's agent
	nsSkipped  atomic.Uint64 // connections and datagrams of namespaces not captured
}

// ignore is the handler of a connection another agent reports.
type ignore struct{}

func (ignore) Data(tcp.Dir, []byte, time.Time) {}
func (ignore) Gap(tcp.Dir, int, time.Time)     {}
func (ignore) End(tcp.EndReason, time.Time)    {}

// New builds the stages after capture; Open attaches the capture itself.
func New(cfg Config, st *store.Store) (*Pipeline, error) {
	red, err := redact.New(cfg.Redact)
	if err != nil {
		return nil, fmt.Errorf("configuring redaction: %w", err)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	p := &Pipeline{cfg: cfg, st: st, red: red}
	p.dis = dissect.New(cfg.Dissect, p.emit)
	factory := p.dis.Factory()
	if id := cfg.Identify; id != nil {
		inner := factory
		factory = func(c *tcp.ConnInfo) tcp.Handler {
			c.LocalWho = id.Local(c.CgroupID, c.Local)
			c.RemoteWho = id.Remote(c.Remote)
			if !p.cfg.wanted(c.LocalWho) {
				p.nsSkipped.Add(1)
				return ignore{}
			}
			if r := c.RemoteWho; c.Role == tcp.RoleClient && r != nil && r.Pod != "" && r.Node != "" && p.cfg.Node != "" && r.Node != p.cfg.Node {
				// A pod here calling a pod on another node: that node's
				// agent reports the exchange from the server's side.
				p.otherNode.Add(1)
				return ignore{}
			}
			return inner(c)
		}
	}
	p.asm = tcp.NewAssembler(cfg.TCP, factory)
	p.dns = dns.NewTracker(cfg.Dissect.DNS, p.emit, &p.dnsStats)
	return p, nil
}

func (p *Pipeline) emit(e *entry.Entry) {
	p.emits.Add(1)
	if e.Node == "" {
		e.Node = p.cfg.Node
	}
	p.red.Entry(e)
	p.st.Add(e)
}

// Feed hands one TCP segment to reassembly, a UDP datagram to the
// datagram dissectors.
func (p *Pipeline) Feed(s *tcp.Segment) {
	if s.UDP {
		p.datagram(s)
		return
	}
	p.asm.Add(s)
}

// Tick expires idle connections, overdue holes and unanswered queries.
func (p *Pipeline) Tick(now time.Time) {
	p.asm.Tick(now)
	p.dns.Tick(now)
}

// Open loads and attaches the eBPF programs.
func (p *Pipeline) Open() error {
	c, err := capture.Open(p.cfg.Capture)
	if err != nil {
		return err
	}
	p.cap = c
	return nil
}

// Run reads captured segments until Close; Open must have succeeded.
func (p *Pipeline) Run() error {
	err := p.cap.Run(p.Feed, p.Tick, p.cfg.TickInterval)
	p.asm.Close(time.Now())
	return err
}

// Close detaches capture; Run returns after flushing open connections.
func (p *Pipeline) Close() error {
	var err error
	p.once.Do(func() {
		if p.cap != nil {
			err = p.cap.Close()
		}
	})
	return err
}

// Capture returns the attached capture, nil before Open.
func (p *Pipeline) Capture() *capture.Capture { return p.cap }

// Counters gathers every stage's counters by name.
func (p *Pipeline) Counters() map[string]uint64 {
	out := map[string]uint64{}
	if p.cap != nil {
		for k, v := range p.cap.Counters() {
			out[k] = v
		}
	}
	ts := p.asm.Stats()
	out["tcp_conns_open"] = ts.Conns
	out["tcp_conns_total"] = ts.ConnsTotal
	out["tcp_segments"] = ts.Segments
	out["tcp_bytes"] = ts.Bytes
	out["tcp_retransmits"] = ts.Retransmits
	out["tcp_overlaps"] = ts.Overlaps
	out["tcp_out_of_order"] = ts.OutOfOrder
	out["tcp_gaps"] = ts.Gaps
	out["tcp_gap_bytes"] = ts.GapBytes
	out["tcp_evicted"] = ts.Evicted
	out["tcp_idle_closed"] = ts.IdleClosed
	out["tcp_buffered_bytes"] = ts.BufferedBytes
	out["tcp_buffer_drops"] = ts.BufferDrops
	out["tcp_duplicate_views"] = ts.DuplicateViews
	ds := p.dis.Stats()
	out["conns_detected"] = ds.Detected.Load()
	out["conns_undetected"] = ds.Undetected.Load()
	out["conn_records"] = ds.ConnRecords.Load()
	out["conns_reported_by_other_node"] = p.otherNode.Load()
	out["skipped_by_namespace"] = p.nsSkipped.Load()
	out["conns_refused"] = ds.Refused.Load()
	out["conns_sniff_over_budget"] = ds.OverBudget.Load()
	out["dissector_panics"] = ds.Panics.Load()
	for k, v := range ds.HTTP1.Snapshot() {
		out["http1_"+k] = v
	}
	out["entries_emitted"] = p.emits.Load()
	out["udp_datagrams"] = p.udp.Load()
	out["udp_partial"] = p.udpPartial.Load()
	for k, v := range p.dnsStats.Snapshot() {
		out["dns_udp_"+k] = v
	}
	for k, v := range ds.HTTP2.Snapshot() {
		out["http2_"+k] = v
	}
	for k, v := range ds.Redis.Snapshot() {
		out["redis_"+k] = v
	}
	for k, v := range ds.DNS.Snapshot() {
		out["dns_tcp_"+k] = v
	}
	return out
}

// datagram dissects one UDP datagram (DNS: the only UDP protocol captured).
func (p *Pipeline) datagram(s *tcp.Segment) {
	p.udp.Add(1)
	if s.Seq != 0 || s.Missing > 0 {
		// A datagram over 16 KiB arrives in chunks; rare for DNS.
		p.udpPartial.Add(1)
		return
	}
	src, dst := s.Local, s.Remote
	var srcWho, dstWho *entry.Identity
	if id := p.cfg.Identify; id != nil {
		srcWho, dstWho = id.Local(s.CgroupID, s.Local), id.Remote(s.Remote)
		if !p.cfg.wanted(srcWho) {
			p.nsSkipped.Add(1)
			return
		}
	}
	if s.Dir == tcp.Ingress {
		src, dst = s.Remote, s.Local
		srcWho, dstWho = dstWho, srcWho
	}
	p.dns.DatagramOf(src, dst, srcWho, dstWho, s.Payload, s.Time)
}
