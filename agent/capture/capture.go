package capture

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/podwire/podwire/agent/tcp"
)

// Config says where and how much to capture.
type Config struct {
	// CgroupPath is the cgroup v2 directory whose subtree is captured; empty
	// means the root of the cgroup v2 hierarchy (mounted if it is not).
	CgroupPath string
	// RingBytes is the size of the ring buffer (a power of two, at least one
	// page); default 32 MiB.
	RingBytes int
	// SkipPorts are TCP ports never captured (the agent's own API port among
	// them); at most 64.
	SkipPorts []uint16
	// UDPPorts are the UDP ports whose datagrams are captured (either end);
	// at most 64. None: no UDP.
	UDPPorts []uint16
	// MaxPacketBytes is how much payload of one packet is copied, rounded up
	// to 16 KiB chunks, at most 256 KiB (the default).
	MaxPacketBytes int
}

// Program describes one attached program.
type Program struct {
	Name, Type, Attach string
}

// counterNames mirror enum podwire_counter in bpf/capture.h.
var counterNames = []string{
	"bpf_packets",
	"bpf_bytes",
	"bpf_skipped_port",
	"bpf_not_tcp",
	"bpf_pure_ack",
	"bpf_ringbuf_full",
	"bpf_ringbuf_full_bytes",
	"bpf_truncated_packets",
	"bpf_truncated_bytes",
	"bpf_load_errors",
	"bpf_records",
	"bpf_local_duplicates",
	"bpf_udp_other",
}

const (
	recordHeaderSize = 80
	chunkSize        = 16384
	maxChunks        = 16
	maxPacketBytes   = chunkSize * maxChunks
)

// decodeRecord turns one ring buffer record into a segment; payload aliases
// raw. It reports false for a record too short to hold its header.
// limit is the copy limit per packet in bytes.
func decodeRecord(raw []byte, boot time.Time, limit int, seg *tcp.Segment) bool {
	if len(raw) < recordHeaderSize {
		return false
	}
	le := binary.LittleEndian
	ts := le.Uint64(raw[0:])
	seg.Cookie = le.Uint64(raw[8:])
	seg.CgroupID = le.Uint64(raw[16:])
	var saddr, daddr netip.Addr
	family := raw[77]
	if family == 4 {
		saddr = netip.AddrFrom4([4]byte(raw[24:28]))
		daddr = netip.AddrFrom4([4]byte(raw[40:44]))
	} else {
		saddr = netip.AddrFrom16([16]byte(raw[24:40])).Unmap()
		daddr = netip.AddrFrom16([16]byte(raw[40:56])).Unmap()
	}
	sport := le.Uint16(raw[56:])
	dport := le.Uint16(raw[58:])
	seg.Seq = le.Uint32(raw[60:])
	n := int(le.Uint32(raw[64:]))
	total := int(le.Uint32(raw[68:]))
	off := int(le.Uint32(raw[72:]))
	seg.Dir = tcp.Dir(raw[76])
	seg.Flags = raw[78]
	seg.UDP = raw[79] == 17
	if seg.UDP {
		seg.Seq = uint32(off)
	}
	if n > len(raw)-recordHeaderSize {
		n = len(raw) - recordHeaderSize
	}
	seg.Payload = raw[recordHeaderSize : recordHeaderSize+n]
	seg.Time = boot.Add(time.Duration(ts))
	src := netip.AddrPortFrom(saddr, sport)
	dst := netip.AddrPortFrom(daddr, dport)
	if seg.Dir == tcp.Egress {
		seg.Local, seg.Remote = src, dst
	} else {
		seg.Local, seg.Remote = dst, src
	}
	seg.Missing = 0
	end := off + n
	last := end >= total || end >= limit
	if last && end < total {
		// The packet was larger than the copy limit: the rest is lost.
		seg.Missing = total - end
	}
	// FIN comes after the packet's last byte and SYN before its first: only
	// the last and the first chunk keep them.
	if !last {
		seg.Flags &^= tcp.FlagFIN
	}
	if off > 0 {
		seg.Flags &^= tcp.FlagSYN
	}
	return true
}
