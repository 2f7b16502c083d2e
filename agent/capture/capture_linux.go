package capture

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/podwire/podwire/agent/cgroup"
	"github.com/podwire/podwire/agent/tcp"
)

// Capture holds the loaded programs, their cgroup links and the ring buffer
// reader. Close must be called to detach the programs.
type Capture struct {
	cfg     Config
	objs    captureObjects
	links   []link.Link
	rd      *ringbuf.Reader
	cgroup  string
	limit   int
	boot    time.Time
	records atomic.Uint64
	short   atomic.Uint64

	mu     sync.Mutex // guards closed against Counters during Close
	closed bool
}

// ErrPermission is returned by Open when the process may not load eBPF
// programs.
var ErrPermission = errors.New("loading eBPF programs needs root (or CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_ADMIN)")

// Open loads the programs and attaches them to the cgroup subtree.
func Open(cfg Config) (*Capture, error) {
	if cfg.RingBytes == 0 {
		cfg.RingBytes = 32 << 20
	}
	if cfg.RingBytes < os.Getpagesize() || cfg.RingBytes&(cfg.RingBytes-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: must be a power of two of at least %d", cfg.RingBytes, os.Getpagesize())
	}
	if cfg.MaxPacketBytes <= 0 || cfg.MaxPacketBytes > maxPacketBytes {
		cfg.MaxPacketBytes = maxPacketBytes
	}
	chunks := (cfg.MaxPacketBytes + chunkSize - 1) / chunkSize
	if len(cfg.SkipPorts) > 64 || len(cfg.UDPPorts) > 64 {
		return nil, fmt.Errorf("%d ports to skip and %d UDP ports: at most 64 each", len(cfg.SkipPorts), len(cfg.UDPPorts))
	}
	if os.Geteuid() != 0 {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil || data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
			return nil, ErrPermission
		}
	}
	scope := cfg.CgroupPath
	if scope == "" {
		root, err := cgroup.Root()
		if err != nil {
			return nil, err
		}
		scope = root
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("removing memlock limit: %w", err)
	}

	spec, err := loadCapture()
	if err != nil {
		return nil, fmt.Errorf("loading BPF spec: %w", err)
	}
	spec.Maps["podwire_events"].MaxEntries = uint32(cfg.RingBytes)
	if err := spec.Variables["podwire_max_chunks"].Set(uint32(chunks)); err != nil {
		return nil, fmt.Errorf("setting chunk limit: %w", err)
	}
	c := &Capture{cfg: cfg, cgroup: scope, limit: chunks * chunkSize, boot: bootTime()}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("%w: %v", ErrPermission, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading BPF programs: %+v", ve)
		}
		return nil, fmt.Errorf("loading BPF programs: %w", err)
	}
	if err := setPorts(c.objs.PodwireSkipPorts, cfg.SkipPorts); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting skipped ports: %w", err)
	}
	if err := setPorts(c.objs.PodwireUdpPorts, cfg.UDPPorts); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting UDP ports: %w", err)
	}
	for _, a := range []struct {
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{
		{c.objs.PodwireIngress, ebpf.AttachCGroupInetIngress},
		{c.objs.PodwireEgress, ebpf.AttachCGroupInetEgress},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: scope, Attach: a.typ, Program: a.prog})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("attaching cgroup_skb to %s: %w", scope, err)
		}
		c.links = append(c.links, l)
	}
	c.rd, err = ringbuf.NewReader(c.objs.PodwireEvents)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("opening ring buffer: %w", err)
	}
	return c, nil
}

// setPorts fills a port bitmap map (1024 words of 64 bits).
func setPorts(m *ebpf.Map, ports []uint16) error {
	var bitmap [1024]uint64
	for _, p := range ports {
		bitmap[p>>6] |= 1 << (p & 63)
	}
	for i, w := range bitmap {
		if w == 0 {
			continue
		}
		if err := m.Put(uint32(i), w); err != nil {
			return err
		}
	}
	return nil
}

// bootTime is the wall-clock time at which CLOCK_MONOTONIC was zero, the
// base of bpf_ktime_get_ns().
func bootTime() time.Time {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Now().Add(-time.Duration(ts.Nano()))
}

// Cgroup is the cgroup v2 directory the programs are attached to.
func (c *Capture) Cgroup() string { return c.cgroup }

// Programs lists the attached programs.
func (c *Capture) Programs() []Program {
	return []Program{
		{Name: "podwire_ingress", Type: "cgroup_skb", Attach: "ingress " + c.cgroup},
		{Name: "podwire_egress", Type: "cgroup_skb", Attach: "egress " + c.cgroup},
	}
}

// pollInterval is how long the reader waits for data before it looks again:
// the programs wake it only when a lot of data waits, so that a quiet
// moment still reaches user space within this time.
const pollInterval = 20 * time.Millisecond

// Run reads the ring buffer and hands each record to fn as a segment, until
// Close. tick is called about every interval, also when no record arrives.
// fn and tick run on the calling goroutine.
func (c *Capture) Run(fn func(*tcp.Segment), tick func(time.Time), interval time.Duration) error {
	var rec ringbuf.Record
	var seg tcp.Segment
	now := time.Now()
	nextTick := now.Add(interval)
	deadline := now.Add(pollInterval)
	c.rd.SetDeadline(deadline)
	for {
		err := c.rd.ReadInto(&rec)
		if err == nil {
			n := c.records.Add(1)
			if decodeRecord(rec.RawSample, c.boot, c.limit, &seg) {
				fn(&seg)
			} else {
				c.short.Add(1)
			}
			// Look at the clock only now and then while records flow.
			if n%256 != 0 {
				continue
			}
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			// nothing waiting: time to tick, and to wait again
		} else if errors.Is(err, ringbuf.ErrClosed) {
			return nil
		} else {
			return fmt.Errorf("reading ring buffer: %w", err)
		}
		now = time.Now()
		if !now.Before(nextTick) {
			tick(now)
			nextTick = now.Add(interval)
		}
		if !now.Before(deadline) {
			deadline = now.Add(pollInterval)
			c.rd.SetDeadline(deadline)
		}
	}
}

// Counters sums the per-CPU counters of the programs, plus the reader's own.
func (c *Capture) Counters() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(counterNames)+2)
	if c.closed {
		return out
	}
	var per []capturePodwireCounterSet
	if err := c.objs.PodwireCounters.Lookup(uint32(0), &per); err == nil {
		for _, cpu := range per {
			for i, name := range counterNames {
				out[name] += cpu.C[i]
			}
		}
	}
	out["ringbuf_pending_bytes"] = uint64(c.rd.AvailableBytes())
	out["ringbuf_size_bytes"] = uint64(c.rd.BufferSize())
	out["ringbuf_records"] = c.records.Load()
	out["ringbuf_short_records"] = c.short.Load()
	return out
}

// Close detaches the programs and frees the maps; Run returns.
func (c *Capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	if c.rd != nil {
		errs = append(errs, c.rd.Close())
	}
	for _, l := range c.links {
		errs = append(errs, l.Close())
	}
	c.links = nil
	errs = append(errs, c.objs.Close())
	return errors.Join(errs...)
}
