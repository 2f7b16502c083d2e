package dissect

import (
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// previewBytes is how much of each direction a connection record keeps of
// a connection no dissector took: enough to tell a TLS ClientHello, a
// database greeting or a binary protocol's magic apart.
const previewBytes = 256

// unknown follows a connection no dissector took, for the connection
// record it becomes when it ends: bytes each way, when, how it ended.
type unknown struct {
	bytes   [2]int64
	preview [2][]byte
	first   [2]time.Time
	last    [2]time.Time
	gaps    bool
}

// see counts bytes of one direction; b may be nil for bytes lost in a gap.
func (u *unknown) see(dir tcp.Dir, n int, b []byte, t time.Time) {
	if u.first[dir].IsZero() {
		u.first[dir] = t
	}
	u.last[dir] = t
	u.bytes[dir] += int64(n)
	if b == nil {
		u.gaps = true
		return
	}
	if room := previewBytes - len(u.preview[dir]); room > 0 && !u.gaps {
		u.preview[dir] = append(u.preview[dir], b[:min(room, len(b))]...)
	}
}

// record is the connection as one entry: Request is what the client sent,
// Response what the server sent, Latency how long the connection lasted as
// seen. ok is false for a connection that carried nothing and was not
// refused (a TCP health check, say): not worth an entry.
func (u *unknown) record(info *tcp.ConnInfo, reason tcp.EndReason, t time.Time) (e *entry.Entry, ok bool) {
	refused := reason == tcp.EndRST && !info.SynAck && info.Role == tcp.RoleClient && u.bytes[0]+u.bytes[1] == 0
	if u.bytes[0]+u.bytes[1] == 0 && !refused {
		return nil, false
	}
	local, remote := entry.EndpointWith(info.Local, info.LocalWho), entry.EndpointWith(info.Remote, info.RemoteWho)
	cdir := clientDir(info)
	e = &entry.Entry{
		Time:     info.FirstSeen,
		Protocol: entry.ProtoTCP,
		ConnID:   info.ID,
	}
	if cdir == tcp.Egress {
		e.Src, e.Dst = local, remote
	} else {
		e.Src, e.Dst = remote, local
	}
	e.Request = u.message(cdir)
	e.Response = u.message(1 - cdir)
	switch {
	case refused:
		e.Failed = true
		e.AddNote("connection refused")
	case reason == tcp.EndRST:
		e.AddNote("ended by reset")
	case reason == tcp.EndIdle:
		e.AddNote("ended by idle timeout")
	case reason == tcp.EndEvicted:
		e.AddNote("evicted: too many connections")
	case reason == tcp.EndShutdown:
		e.AddNote("still open when capture stopped")
	}
	if info.Role == tcp.RoleUnknown {
		// Picked up mid-stream: the start, and maybe which side is
		// the client, are not known.
		e.Incomplete = true
		e.AddNote("picked up mid-connection")
	}
	if u.gaps {
		e.Incomplete = true
		e.AddNote("gap in capture")
	}
	if e.Time.IsZero() || t.Before(e.Time) {
		e.Time = t
	}
	e.Latency = max(t.Sub(e.Time), 0)
	last := u.last[0]
	if u.last[1].After(last) {
		last = u.last[1]
	}
	if last.After(e.Time) && reason == tcp.EndIdle {
		// An idle end is noticed only later: the connection lasted
		// until its last byte.
		e.Latency = last.Sub(e.Time)
	}
	return e, true
}

// message is one direction of the connection, nil when it sent nothing.
func (u *unknown) message(dir tcp.Dir) *entry.Message {
	if u.bytes[dir] == 0 {
		return nil
	}
	return &entry.Message{
		Body:      u.preview[dir],
		BodyBytes: u.bytes[dir],
		Truncated: int64(len(u.preview[dir])) < u.bytes[dir],
		Start:     u.first[dir],
		End:       u.last[dir],
	}
}

// clientDir is the direction the client sends in: from the handshake when
// it was seen, else the side with the lower port is taken for the server.
func clientDir(info *tcp.ConnInfo) tcp.Dir {
	switch info.Role {
	case tcp.RoleClient:
		return tcp.Egress
	case tcp.RoleServer:
		return tcp.Ingress
	}
	if info.Local.Port() < info.Remote.Port() {
		return tcp.Ingress
	}
	return tcp.Egress
}
