// Package tcp reassembles the byte streams of TCP connections from the
// segments capture delivers, in order, one connection and direction at a time.
package tcp

import (
	"net/netip"
	"time"

	"github.com/podwire/podwire/agent/entry"
)

// Dir is the direction of a segment as the observing socket saw it.
type Dir uint8

const (
	// Egress is sent by the observing (local) socket.
	Egress Dir = 0
	// Ingress is received by the observing (local) socket.
	Ingress Dir = 1
)

func (d Dir) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// TCP flags as in the header.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
)

// Segment is one captured TCP segment (or a chunk of a large GSO/GRO one).
type Segment struct {
	// Cookie is the socket cookie of the observing socket.
	Cookie uint64
	// CgroupID is the cgroup v2 id of the observing socket.
	CgroupID uint64
	Time     time.Time
	Dir      Dir
	// Local is the observing socket's address, Remote its peer's.
	Local, Remote netip.AddrPort
	Seq           uint32
	// Flags of the TCP header. When capture splits one packet into chunks,
	// SYN must be set only on the first chunk and FIN only on the last: the
	// Assembler places a SYN before and a FIN after the segment's bytes.
	Flags uint8
	// Payload of this segment; only valid during the call that hands it over.
	Payload []byte
	// Missing is set when capture could not copy the whole payload: the
	// Missing bytes after Payload are lost.
	Missing int
	// UDP marks a UDP datagram (the capture's other protocol): Payload is
	// the datagram, or its first part when Missing > 0; Seq is the offset
	// of Payload in the datagram and Flags is 0. Reassembly never sees it.
	UDP bool
}

// Role says which end opened the connection, when known.
type Role uint8

const (
	RoleUnknown Role = iota
	// RoleClient: the local socket opened the connection (sent the SYN).
	RoleClient
	// RoleServer: the remote end opened it.
	RoleServer
)

// ConnInfo describes a connection to the handler built for it.
type ConnInfo struct {
	// ID is unique among the connections of this agent.
	ID uint64
	// Cookie is the socket cookie of the first segment seen. For an accepted
	// connection whose handshake was captured that is the listener's; the
	// accepted socket's segments join the same connection.
	Cookie        uint64
	CgroupID      uint64
	Local, Remote netip.AddrPort
	// Role is known when the handshake was seen; connections picked up
	// mid-stream leave it to the dissector to infer. A SYN that arrives
	// after the first segment sets it after the Factory call.
	Role      Role
	FirstSeen time.Time
	// SynAck is set once a SYN-ACK was seen: a connection whose SYN was
	// answered only by a RST was refused.
	SynAck bool
	// LocalWho and RemoteWho name the two ends as they were when the
	// connection was first seen (nil when unknown); dissectors put them
	// on the entries' endpoints.
	LocalWho, RemoteWho *entry.Identity
}

// EndReason says why a connection ended.
type EndReason uint8

const (
	EndFIN EndReason = iota
	EndRST
	EndIdle
	EndEvicted
	EndShutdown
)

func (r EndReason) String() string {
	switch r {
	case EndFIN:
		return "fin"
	case EndRST:
		return "rst"
	case EndIdle:
		return "idle"
	case EndEvicted:
		return "evicted"
	default:
		return "shutdown"
	}
}

// Handler receives one connection's bytes in order.
type Handler interface {
	// Data hands over the next in-order bytes of one direction; b is only
	// valid during the call.
	Data(dir Dir, b []byte, t time.Time)
	// Gap says n bytes of one direction were lost before the next Data.
	Gap(dir Dir, n int, t time.Time)
	// End is the last call: the connection is gone.
	End(reason EndReason, t time.Time)
}

// Factory builds the handler of a new connection; it may return nil to
// ignore the connection.
type Factory func(c *ConnInfo) Handler
