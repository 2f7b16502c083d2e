package tcp

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxConns          = 65536
	DefaultMaxBufferedPerDir = 256 << 10
	DefaultMaxBufferedTotal  = 64 << 20
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultReorderWindow     = 500 * time.Millisecond
)

const (
	// pieceCost is charged to the buffer bounds for every held piece on top
	// of its bytes, so that many tiny out-of-order segments stay bounded too.
	pieceCost = 64
	// linger is how long the 4-tuple of a connection that ended with FIN or
	// RST stays known, so that its late ACKs and retransmits are dropped
	// instead of starting a new connection.
	linger = 10 * time.Second
	// maxMissing caps Segment.Missing; larger values are capture bugs.
	maxMissing = 1 << 24
)

// Config bounds an Assembler. Zero fields take the defaults.
type Config struct {
	// MaxConns is the number of connections tracked at once; beyond it the
	// least recently active one ends with EndEvicted.
	MaxConns int
	// MaxBufferedPerDir bounds the out-of-order bytes held for one direction
	// (plus 64 bytes of bookkeeping per held piece). When it is exceeded the
	// oldest hole becomes a gap and the bytes after it are delivered.
	MaxBufferedPerDir int
	// MaxBufferedTotal bounds the same over all connections.
	MaxBufferedTotal int64
	// IdleTimeout ends connections that saw no segment for this long.
	IdleTimeout time.Duration
	// ReorderWindow is how long (in segment time) a hole waits for its bytes
	// before it becomes a gap.
	ReorderWindow time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxBufferedPerDir <= 0 {
		c.MaxBufferedPerDir = DefaultMaxBufferedPerDir
	}
	if c.MaxBufferedTotal <= 0 {
		c.MaxBufferedTotal = DefaultMaxBufferedTotal
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ReorderWindow <= 0 {
		c.ReorderWindow = DefaultReorderWindow
	}
	return c
}

// Stats are the Assembler's counters. Conns and BufferedBytes are current
// values, the others totals since start.
type Stats struct {
	Conns      uint64 // connections tracked now
	ConnsTotal uint64 // connections ever tracked
	Segments   uint64 // segments handed to Add
	Bytes      uint64 // payload bytes handed to Add
	Delivered  uint64 // bytes handed to handlers with Data
	// Retransmits counts segments that carried no new byte; Overlaps those
	// that carried some new and some already seen; DupBytes the bytes
	// dropped by both.
	Retransmits uint64
	Overlaps    uint64
	DupBytes    uint64
	OutOfOrder  uint64 // segments held because a hole came before them
	Gaps        uint64 // Gap calls
	GapBytes    uint64 // bytes declared lost by Gap calls
	Evicted     uint64 // connections ended by MaxConns
	IdleClosed  uint64 // connections ended by IdleTimeout
	// BufferedBytes is what is held now, bookkeeping included.
	BufferedBytes uint64
	// BufferDrops counts holes turned into gaps because a buffer bound was hit.
	BufferDrops uint64
	// DuplicateViews counts segments from the mirrored view of a
	// conversation (the socket at the other end, on this host), merged into
	// the view that owns it with their direction flipped: capture sends each
	// packet up once, at the sender's egress, and bytes that still arrive
	// twice are trimmed like retransmits.
	DuplicateViews uint64
	// Late counts segments of a connection that already ended with FIN or RST.
	Late uint64
	// Ignored counts segments that start nothing (a pure ACK, FIN or RST of
	// an unknown connection, or a bad direction).
	Ignored uint64
	// Reused counts connections ended because a new SYN reused their 4-tuple.
	Reused uint64
}

type counters struct {
	conns, connsTotal, segments, bytes, delivered          atomic.Uint64
	retransmits, overlaps, dupBytes, outOfOrder            atomic.Uint64
	gaps, gapBytes, evicted, idleClosed, buffered          atomic.Uint64
	bufferDrops, duplicateViews, late, ignored, reusedConn atomic.Uint64
}

// tupleKey is a 4-tuple with the lower address first, so that both views
// of one conversation share it.
type tupleKey struct{ a, b netip.AddrPort }

func unmap(p netip.AddrPort) netip.AddrPort {
	if p.Addr().Is4In6() {
		return netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	}
	return p
}

func makeKey(local, remote netip.AddrPort) tupleKey {
	l, r := unmap(local), unmap(remote)
	if l.Compare(r) <= 0 {
		return tupleKey{l, r}
	}
	return tupleKey{r, l}
}

// piece is a held range of one direction: bytes, or a range lost in capture
// when data is nil.
type piece struct {
	seq  uint32
	n    int
	data []byte
	t    time.Time
}

func (p *piece) cost() int { return pieceCost + len(p.data) }

// stream is the reassembly state of one direction.
type stream struct {
	started bool // next is valid
	synSeen bool
	finSeen bool
	done    bool // every byte up to the FIN is delivered
	isn     uint32
	next    uint32 // sequence number of the next byte to deliver
	fin     uint32 // sequence number of the FIN
	held    []piece
	cost    int // bytes and bookkeeping of held
}

type conn struct {
	info    ConnInfo
	key     tupleKey
	h       Handler
	aliases []uint64 // other cookies that map to this conn in byCookie
	last    time.Time
	prev    *conn // LRU neighbour, more recent
	next    *conn // LRU neighbour, less recent
	dirs    [2]stream
	holding bool // in Assembler.holding
}

type tomb struct {
	key tupleKey
	t   time.Time
}

// Assembler turns captured segments into ordered byte streams, one handler
// per connection. Add, Tick and Close must be called from one goroutine;
// Stats may be called from any.
type Assembler struct {
	cfg     Config
	factory Factory

	byCookie map[uint64]*conn
	byTuple  map[tupleKey]*conn
	holding  map[*conn]struct{} // conns with held pieces
	head     *conn              // most recently active
	tail     *conn              // least recently active
	nextID   uint64
	buffered int64
	parts    []piece // scratch for hold

	tombs    map[tupleKey]time.Time
	tombQ    []tomb
	tombHead int

	st counters
}

// NewAssembler returns an Assembler that builds a handler with f for every
// new connection. f may be nil to track connections without handlers.
func NewAssembler(cfg Config, f Factory) *Assembler {
	return &Assembler{
		cfg:      cfg.withDefaults(),
		factory:  f,
		byCookie: make(map[uint64]*conn),
		byTuple:  make(map[tupleKey]*conn),
		holding:  make(map[*conn]struct{}),
		tombs:    make(map[tupleKey]time.Time),
	}
}

// Stats returns the counters; it is safe to call concurrently with Add.
func (a *Assembler) Stats() Stats {
	s := &a.st
	return Stats{
		Conns:          s.conns.Load(),
		ConnsTotal:     s.connsTotal.Load(),
		Segments:       s.segments.Load(),
		Bytes:          s.bytes.Load(),
		Delivered:      s.delivered.Load(),
		Retransmits:    s.retransmits.Load(),
		Overlaps:       s.overlaps.Load(),
		DupBytes:       s.dupBytes.Load(),
		OutOfOrder:     s.outOfOrder.Load(),
		Gaps:           s.gaps.Load(),
		GapBytes:       s.gapBytes.Load(),
		Evicted:        s.evicted.Load(),
		IdleClosed:     s.idleClosed.Load(),
		BufferedBytes:  s.buffered.Load(),
		BufferDrops:    s.bufferDrops.Load(),
		DuplicateViews: s.duplicateViews.Load(),
		Late:           s.late.Load(),
		Ignored:        s.ignored.Load(),
		Reused:         s.reusedConn.Load(),
	}
}

// Add hands over one segment. s and its Payload are not used after Add
// returns.
func (a *Assembler) Add(s *Segment) {
	a.st.segments.Add(1)
	a.st.bytes.Add(uint64(len(s.Payload)))
	if s.Dir > Ingress {
		a.st.ignored.Add(1)
		return
	}
	c := a.byCookie[s.Cookie]
	if c == nil || !c.sameTuple(s) {
		if c = a.lookup(s); c == nil {
			return
		}
	}
	if unmap(c.info.Local) != unmap(s.Local) {
		// The socket at the other end: its egress is the owner's ingress.
		a.st.duplicateViews.Add(1)
		m := *s
		m.Dir = 1 - s.Dir
		m.Local, m.Remote = s.Remote, s.Local
		s = &m
	}
	if s.Flags&FlagSYN != 0 {
		if st := &c.dirs[s.Dir]; st.synSeen && st.isn != s.Seq {
			// A new connection on the 4-tuple: the old one ended unseen.
			a.st.reusedConn.Add(1)
			a.end(c, EndIdle, s.Time)
			if c = a.lookup(s); c == nil {
				return
			}
		}
	}
	a.touch(c, s.Time)
	a.segment(c, s)
}

// lookup finds the connection of a segment whose cookie is not (or no
// longer) the fast way to it, or starts one.
func (a *Assembler) lookup(s *Segment) *conn {
	key := makeKey(s.Local, s.Remote)
	if o := a.byTuple[key]; o != nil {
		// The same end through another socket (the listener that saw the
		// handshake, then the accepted socket), or the mirrored view from
		// the socket at the other end: both feed the one connection.
		a.alias(o, s.Cookie)
		return o
	}
	syn := s.Flags&FlagSYN != 0
	if _, ok := a.tombs[key]; ok {
		if !syn {
			a.st.late.Add(1)
			return nil
		}
		delete(a.tombs, key)
	}
	if !syn && len(s.Payload) == 0 && s.Missing <= 0 {
		a.st.ignored.Add(1)
		return nil
	}
	return a.newConn(s, key)
}

// sameTuple reports whether s belongs to c's 4-tuple, from either end.
func (c *conn) sameTuple(s *Segment) bool {
	return c.info.Local == s.Local && c.info.Remote == s.Remote ||
		c.info.Local == s.Remote && c.info.Remote == s.Local
}

func (a *Assembler) alias(c *conn, cookie uint64) {
	a.byCookie[cookie] = c
	if cookie == c.info.Cookie {
		return
	}
	for _, x := range c.aliases {
		if x == cookie {
			return
		}
	}
	c.aliases = append(c.aliases, cookie)
}

func (a *Assembler) newConn(s *Segment, key tupleKey) *conn {
	for len(a.byTuple) >= a.cfg.MaxConns && a.tail != nil {
		a.st.evicted.Add(1)
		a.end(a.tail, EndEvicted, s.Time)
	}
	a.nextID++
	c := &conn{
		info: ConnInfo{
			ID:        a.nextID,
			Cookie:    s.Cookie,
			CgroupID:  s.CgroupID,
			Local:     s.Local,
			Remote:    s.Remote,
			Role:      roleOf(s),
			FirstSeen: s.Time,
		},
		key:  key,
		last: s.Time,
	}
	a.byTuple[key] = c
	a.byCookie[s.Cookie] = c
	a.pushFront(c)
	a.st.conns.Add(1)
	a.st.connsTotal.Add(1)
	if a.factory != nil {
		c.h = a.factory(&c.info)
	}
	return c
}

// roleOf tells the role of the local socket from a SYN or SYN-ACK.
func roleOf(s *Segment) Role {
	if s.Flags&FlagSYN == 0 {
		return RoleUnknown
	}
	client := s.Dir == Egress
	if s.Flags&FlagACK != 0 {
		client = !client
	}
	if client {
		return RoleClient
	}
	return RoleServer
}

// segment applies one segment to its connection.
func (a *Assembler) segment(c *conn, s *Segment) {
	d := s.Dir
	st := &c.dirs[d]
	seq := s.Seq
	n := len(s.Payload)
	missing := min(max(s.Missing, 0), maxMissing)
	fin := s.Flags&FlagFIN != 0
	if s.Flags&FlagSYN != 0 {
		if s.Flags&FlagACK != 0 {
			c.info.SynAck = true
		}
		if !st.synSeen {
			st.synSeen = true
			st.isn = s.Seq
			if c.info.Role == RoleUnknown {
				c.info.Role = roleOf(s)
			}
		}
		seq++
		if !st.started {
			st.started = true
			st.next = seq
		}
	}
	if !st.started && (n > 0 || missing > 0 || fin) {
		st.started = true
		st.next = seq
	}
	if c.h != nil && !st.done {
		var fresh, dup int
		if n > 0 {
			f, du := a.accept(c, d, seq, n, s.Payload, s.Time)
			fresh, dup = fresh+f, dup+du
		}
		if missing > 0 {
			f, du := a.accept(c, d, seq+uint32(n), missing, nil, s.Time)
			fresh, dup = fresh+f, dup+du
		}
		if dup > 0 {
			a.st.dupBytes.Add(uint64(dup))
			if fresh == 0 {
				a.st.retransmits.Add(1)
			} else {
				a.st.overlaps.Add(1)
			}
		}
	}
	if fin {
		a.finish(c, d, seq+uint32(n+missing), s.Time)
	}
	if s.Flags&FlagRST != 0 {
		a.end(c, EndRST, s.Time)
		return
	}
	if c.dirs[0].done && c.dirs[1].done {
		a.end(c, EndFIN, s.Time)
		return
	}
	if c.holding {
		a.expire(c, s.Time)
	}
}

// diff is a-b in serial-number arithmetic.
func diff(a, b uint32) int64 { return int64(int32(a - b)) }

// accept takes the range [seq, seq+n) of one direction, with its bytes in
// data or lost (data nil). It returns how many of its bytes were new and
// how many were seen before.
func (a *Assembler) accept(c *conn, d Dir, seq uint32, n int, data []byte, t time.Time) (fresh, dup int) {
	st := &c.dirs[d]
	if st.finSeen {
		lim := diff(st.fin, seq)
		if lim <= 0 {
			return 0, 0
		}
		if int64(n) > lim {
			n = int(lim)
			if data != nil {
				data = data[:n]
			}
		}
	}
	rel := diff(seq, st.next)
	if rel > 0 {
		return a.hold(c, d, rel, n, data, t)
	}
	skip := int(-rel)
	if skip >= n {
		return 0, n
	}
	if data != nil {
		data = data[skip:]
	}
	a.deliver(c, d, n-skip, data, t)
	if len(st.held) > 0 {
		a.drain(c, d)
	}
	return n - skip, skip
}

// deliver hands the next n bytes of a direction to the handler: data, or a
// gap when data is nil.
func (a *Assembler) deliver(c *conn, d Dir, n int, data []byte, t time.Time) {
	st := &c.dirs[d]
	if data != nil {
		a.st.delivered.Add(uint64(n))
		c.h.Data(d, data, t)
	} else {
		a.st.gaps.Add(1)
		a.st.gapBytes.Add(uint64(n))
		c.h.Gap(d, n, t)
	}
	st.next += uint32(n)
	if st.finSeen && st.next == st.fin {
		st.done = true
	}
}

// hold keeps the parts of a range that starts rel bytes after the next
// expected one and that are not held yet.
func (a *Assembler) hold(c *conn, d Dir, rel int64, n int, data []byte, t time.Time) (fresh, dup int) {
	st := &c.dirs[d]
	start, end := rel, rel+int64(n)
	parts := a.parts[:0]
	pos := start
	for i := range st.held {
		p := &st.held[i]
		ps := diff(p.seq, st.next)
		pe := ps + int64(p.n)
		if pe <= pos {
			continue
		}
		if ps >= end {
			break
		}
		if pos < ps {
			parts = append(parts, piece{seq: uint32(pos), n: int(ps - pos)})
		}
		dup += int(min(end, pe) - max(pos, ps))
		pos = pe
		if pos >= end {
			break
		}
	}
	if pos < end {
		parts = append(parts, piece{seq: uint32(pos), n: int(end - pos)})
	}
	for _, p := range parts {
		off := int64(p.seq)
		p.seq = st.next + uint32(off)
		p.t = t
		if data != nil {
			b := data[off-start : off-start+int64(p.n)]
			p.data = append(make([]byte, 0, len(b)), b...)
		}
		fresh += p.n
		a.insert(c, d, p)
	}
	a.parts = parts[:0]
	if fresh == 0 {
		return fresh, dup
	}
	a.st.outOfOrder.Add(1)
	if !c.holding {
		c.holding = true
		a.holding[c] = struct{}{}
	}
	for len(st.held) > 0 && (st.cost > a.cfg.MaxBufferedPerDir || a.buffered > a.cfg.MaxBufferedTotal) {
		a.st.bufferDrops.Add(1)
		a.skip(c, d)
	}
	return fresh, dup
}

// insert adds p to the held pieces, in sequence order.
func (a *Assembler) insert(c *conn, d Dir, p piece) {
	st := &c.dirs[d]
	rel := diff(p.seq, st.next)
	i := len(st.held)
	for i > 0 && diff(st.held[i-1].seq, st.next) > rel {
		i--
	}
	st.held = append(st.held, piece{})
	copy(st.held[i+1:], st.held[i:])
	st.held[i] = p
	a.charge(st, p.cost())
}

func (a *Assembler) charge(st *stream, n int) {
	st.cost += n
	a.buffered += int64(n)
	a.st.buffered.Store(uint64(a.buffered))
}

// popFront removes the first held piece.
func (a *Assembler) popFront(st *stream) piece {
	p := st.held[0]
	copy(st.held, st.held[1:])
	st.held[len(st.held)-1] = piece{}
	st.held = st.held[:len(st.held)-1]
	a.charge(st, -p.cost())
	return p
}

// drain delivers the held pieces that the next expected byte reached.
func (a *Assembler) drain(c *conn, d Dir) {
	st := &c.dirs[d]
	for len(st.held) > 0 {
		rel := diff(st.held[0].seq, st.next)
		if rel > 0 {
			break
		}
		p := a.popFront(st)
		skip := int(-rel)
		if skip >= p.n {
			a.st.dupBytes.Add(uint64(p.n))
			continue
		}
		if p.data != nil {
			p.data = p.data[skip:]
		}
		a.deliver(c, d, p.n-skip, p.data, p.t)
	}
	a.unhold(c)
}

// unhold takes c out of the holding set when it holds nothing.
func (a *Assembler) unhold(c *conn) {
	if c.holding && len(c.dirs[0].held) == 0 && len(c.dirs[1].held) == 0 {
		c.holding = false
		delete(a.holding, c)
	}
}

// skip declares the first hole of a direction a gap and delivers what
// follows it.
func (a *Assembler) skip(c *conn, d Dir) {
	st := &c.dirs[d]
	p := &st.held[0]
	if n := diff(p.seq, st.next); n > 0 {
		a.deliver(c, d, int(n), nil, p.t)
	}
	a.drain(c, d)
}

// expire turns holes that waited longer than the reorder window into gaps.
func (a *Assembler) expire(c *conn, now time.Time) {
	for d := range c.dirs {
		st := &c.dirs[d]
		for len(st.held) > 0 {
			oldest := st.held[0].t
			for _, p := range st.held[1:] {
				if p.t.Before(oldest) {
					oldest = p.t
				}
			}
			if now.Sub(oldest) < a.cfg.ReorderWindow {
				break
			}
			a.skip(c, Dir(d))
		}
	}
}

// finish records the FIN of a direction at sequence number seq. Held bytes
// beyond it are dropped and a hole before it becomes a gap at once.
func (a *Assembler) finish(c *conn, d Dir, seq uint32, t time.Time) {
	st := &c.dirs[d]
	if st.finSeen {
		return
	}
	st.finSeen = true
	st.fin = seq
	if c.h == nil {
		st.done = true
		return
	}
	end := diff(seq, st.next)
	if end <= 0 {
		st.done = true
		for len(st.held) > 0 {
			a.popFront(st)
		}
		a.unhold(c)
		return
	}
	// Drop or cut what lies beyond the FIN.
	for i := len(st.held) - 1; i >= 0; i-- {
		p := &st.held[i]
		ps := diff(p.seq, st.next)
		if ps >= end {
			a.charge(st, -p.cost())
			st.held[i] = piece{}
			st.held = st.held[:i]
			continue
		}
		if over := ps + int64(p.n) - end; over > 0 {
			a.charge(st, -p.cost())
			p.n -= int(over)
			if p.data != nil {
				p.data = p.data[:p.n]
			}
			a.charge(st, p.cost())
		}
		break
	}
	for !st.done {
		if len(st.held) > 0 {
			a.skip(c, d)
			continue
		}
		a.deliver(c, d, int(diff(st.fin, st.next)), nil, t)
	}
	a.unhold(c)
}

// end flushes what a connection holds, tells its handler and forgets it.
func (a *Assembler) end(c *conn, reason EndReason, t time.Time) {
	if c.h != nil {
		for d := range c.dirs {
			for len(c.dirs[d].held) > 0 {
				a.skip(c, Dir(d))
			}
		}
		c.h.End(reason, t)
	}
	for d := range c.dirs {
		st := &c.dirs[d]
		for len(st.held) > 0 {
			a.popFront(st)
		}
	}
	a.unhold(c)
	if a.byTuple[c.key] == c {
		delete(a.byTuple, c.key)
	}
	if a.byCookie[c.info.Cookie] == c {
		delete(a.byCookie, c.info.Cookie)
	}
	for _, x := range c.aliases {
		if a.byCookie[x] == c {
			delete(a.byCookie, x)
		}
	}
	a.unlink(c)
	a.st.conns.Add(^uint64(0))
	if reason == EndFIN || reason == EndRST {
		a.bury(c.key, t)
	}
}

// bury remembers the 4-tuple of a connection that ended for linger.
func (a *Assembler) bury(key tupleKey, t time.Time) {
	for len(a.tombs) >= a.cfg.MaxConns && a.tombHead < len(a.tombQ) {
		a.popTomb()
	}
	a.tombs[key] = t
	a.tombQ = append(a.tombQ, tomb{key, t})
}

func (a *Assembler) popTomb() {
	tb := a.tombQ[a.tombHead]
	a.tombQ[a.tombHead] = tomb{}
	a.tombHead++
	if t, ok := a.tombs[tb.key]; ok && t.Equal(tb.t) {
		delete(a.tombs, tb.key)
	}
	if a.tombHead > 64 && a.tombHead*2 > len(a.tombQ) {
		n := copy(a.tombQ, a.tombQ[a.tombHead:])
		clear(a.tombQ[n:])
		a.tombQ = a.tombQ[:n]
		a.tombHead = 0
	}
}

func (a *Assembler) pushFront(c *conn) {
	c.prev = nil
	c.next = a.head
	if a.head != nil {
		a.head.prev = c
	}
	a.head = c
	if a.tail == nil {
		a.tail = c
	}
}

func (a *Assembler) unlink(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if a.head == c {
		a.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if a.tail == c {
		a.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// touch marks c as the most recently active connection.
func (a *Assembler) touch(c *conn, t time.Time) {
	if t.After(c.last) {
		c.last = t
	}
	if a.head == c {
		return
	}
	a.unlink(c)
	a.pushFront(c)
}

// Tick turns holes older than the reorder window into gaps and ends the
// connections idle for longer than the idle timeout.
func (a *Assembler) Tick(now time.Time) {
	for c := range a.holding {
		a.expire(c, now)
	}
	for c := a.tail; c != nil && now.Sub(c.last) >= a.cfg.IdleTimeout; c = a.tail {
		a.st.idleClosed.Add(1)
		reason := EndIdle
		if c.dirs[0].finSeen || c.dirs[1].finSeen {
			reason = EndFIN
		}
		a.end(c, reason, now)
	}
	for a.tombHead < len(a.tombQ) && now.Sub(a.tombQ[a.tombHead].t) >= linger {
		a.popTomb()
	}
}

// Close ends every connection with EndShutdown.
func (a *Assembler) Close(now time.Time) {
	for a.head != nil {
		a.end(a.head, EndShutdown, now)
	}
}
