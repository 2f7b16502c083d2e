package http2

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

type stream struct {
	id         uint32
	e          entry.Entry
	req, resp  entry.Message
	reqDir     tcp.Dir
	sawReq     bool // request headers seen
	sawResp    bool // final response headers seen
	reqEnded   bool
	respEnded  bool
	incomplete bool
	grpc       bool
	reset      uint32
	resetDir   tcp.Dir
	goaway     bool
	authority  string
	enc        [2]string // content-encoding / grpc-encoding by side (0 req, 1 resp)
	bodies     [2]body
}

func (s *stream) side(dir tcp.Dir) int {
	if dir == s.reqDir {
		return 0
	}
	return 1
}

func (s *stream) body(dir tcp.Dir) *body { return &s.bodies[s.side(dir)] }

func (s *stream) msg(dir tcp.Dir) *entry.Message {
	if s.side(dir) == 0 {
		return &s.req
	}
	return &s.resp
}

func (c *conn) sortedStreams() []*stream {
	out := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *stream) int { return int(int64(a.id) - int64(b.id)) })
	return out
}

func pseudo(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
		if !strings.HasPrefix(f.Name, ":") {
			break
		}
	}
	return ""
}

// headers handles a decoded header block of stream sid sent by h.
func (c *conn) headers(h *half, sid uint32, fields []hpack.HeaderField, partial, end bool, t time.Time) {
	method, status := pseudo(fields, ":method"), pseudo(fields, ":status")
	if c.client < 0 {
		if method != "" {
			c.client = int8(h.dir)
		} else if status != "" {
			c.client = int8(h.dir ^ 1)
		}
	}
	s := c.streams[sid]
	if s == nil {
		if sid%2 == 0 {
			return // server push: not followed
		}
		c.stats.Streams.Add(1)
		if len(c.streams) >= c.cfg.MaxStreams {
			c.stats.Malformed.Add(1)
			return
		}
		s = &stream{id: sid}
		s.e.ConnID = c.info.ID
		switch cd := c.clientDir(); {
		case cd >= 0:
			s.reqDir = tcp.Dir(cd)
		case status != "":
			s.reqDir = h.dir ^ 1
		default:
			s.reqDir = h.dir
		}
		c.streams[sid] = s
	}
	side := s.side(h.dir)
	m := s.msg(h.dir)
	if partial {
		s.incomplete = true
		if c.fresh {
			s.e.AddNote(noteHPACK)
		} else {
			s.e.AddNote(noteMidStream)
		}
	}
	if h.over {
		s.e.AddNote("headers over the limit dropped")
	}
	if m.Start.IsZero() {
		m.Start = t
	}
	m.End = t
	var trailers bool
	if side == 0 {
		trailers = s.sawReq
		if !trailers {
			s.sawReq = true
			s.e.Method = method
			s.e.Path = pseudo(fields, ":path")
			s.authority = pseudo(fields, ":authority")
		}
	} else {
		if st, err := strconv.Atoi(status); err == nil && st >= 100 && st < 200 {
			if st == 100 {
				s.e.AddNote("100-continue")
			}
			return
		}
		trailers = s.sawResp
		if !trailers {
			s.sawResp = true
			if st, err := strconv.Atoi(status); err == nil {
				s.e.Status = int32(st)
			}
		}
	}
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			continue
		}
		hd := entry.Header{Name: strings.ToLower(f.Name), Value: f.Value}
		if trailers {
			m.Trailers = append(m.Trailers, hd)
			continue
		}
		m.Headers = append(m.Headers, hd)
		switch hd.Name {
		case "content-type":
			if strings.HasPrefix(hd.Value, "application/grpc") && (side == 0 || !s.sawReq) {
				s.grpc = true
			}
		case "content-encoding", "grpc-encoding":
			s.enc[side] = strings.ToLower(strings.TrimSpace(hd.Value))
		}
	}
	if side == 0 && !trailers && s.authority != "" && m.Header("host") == "" {
		m.Headers = append(m.Headers, entry.Header{Name: "host", Value: s.authority})
	}
	if end {
		c.endSide(s, h.dir, t)
	}
}

func (c *conn) endSide(s *stream, dir tcp.Dir, t time.Time) {
	if s.side(dir) == 0 {
		s.reqEnded = true
	} else {
		s.respEnded = true
	}
	s.msg(dir).End = t
	if s.reqEnded && s.respEnded {
		c.finish(s, t)
	}
}

// finish emits the stream's entry and forgets it.
func (c *conn) finish(s *stream, t time.Time) {
	delete(c.streams, s.id)
	e := &s.e
	e.HTTPVersion = "2"
	e.Protocol = entry.ProtoHTTP
	local, remote := entry.EndpointAt(c.info.Local), entry.EndpointAt(c.info.Remote)
	reqDir := s.reqDir
	if cd := c.clientDir(); cd >= 0 {
		reqDir = tcp.Dir(cd)
	}
	if reqDir == tcp.Egress {
		e.Src, e.Dst = local, remote
	} else {
		e.Src, e.Dst = remote, local
	}
	e.Time = s.req.Start
	if e.Time.IsZero() {
		e.Time = s.resp.Start
	}
	if !s.resp.End.IsZero() && !s.req.Start.IsZero() {
		e.Latency = s.resp.End.Sub(s.req.Start)
	}
	if !s.sawReq {
		s.incomplete = true
		e.AddNote("request not captured")
	}
	max := c.cfg.MaxBodyBytes
	if s.grpc {
		e.Protocol = entry.ProtoGRPC
		e.Method = e.Path
		for i, m := range []*entry.Message{&s.req, &s.resp} {
			b := &s.bodies[i]
			m.BodyBytes = b.total
			m.Body, m.Truncated = b.renderGRPC(s.enc[i], max, c.cfg.MaxGRPCMessages)
		}
		e.AddNote("messages: " + strconv.Itoa(s.bodies[0].g.count) + " sent, " + strconv.Itoa(s.bodies[1].g.count) + " received")
		st := s.resp.Header("grpc-status")
		msg := s.resp.Header("grpc-message")
		for _, h := range s.resp.Trailers {
			switch h.Name {
			case "grpc-status":
				st = h.Value
			case "grpc-message":
				msg = h.Value
			}
		}
		if code, err := strconv.Atoi(st); err == nil {
			e.Status = int32(code)
			e.Failed = code != 0
		} else {
			e.Status = 0
			e.Failed = s.reset != 0 && s.reset != 8
			if s.sawResp && s.respEnded {
				e.AddNote("no grpc-status")
			}
		}
		if msg != "" {
			if dm, err := url.PathUnescape(msg); err == nil {
				msg = dm
			}
			e.AddNote("grpc-message: " + msg)
		}
	} else {
		for i, m := range []*entry.Message{&s.req, &s.resp} {
			b := &s.bodies[i]
			m.Body, m.BodyBytes, m.Truncated = b.raw, b.total, b.total > int64(len(b.raw))
			if s.enc[i] == "gzip" && len(m.Body) > 0 {
				out, complete, err := gunzip(m.Body, max)
				if err != nil && !(m.Truncated && len(out) > 0 && errors.Is(err, io.ErrUnexpectedEOF)) {
					e.AddNote("undecodable gzip body")
				} else {
					m.Body = out
					if !complete {
						m.Truncated = true
					}
				}
			}
		}
		e.Failed = e.Status >= 500 || (s.reset != 0 && s.reset != 8 && !s.respEnded)
	}
	for i := range s.bodies {
		if s.bodies[i].lost {
			s.incomplete = true
		}
	}
	e.Request = &s.req
	if s.sawResp || s.resp.BodyBytes > 0 || len(s.resp.Trailers) > 0 {
		e.Response = &s.resp
	}
	e.Incomplete = s.incomplete
	if e.Incomplete {
		c.stats.Incomplete.Add(1)
	}
	c.stats.Entries.Add(1)
	c.emit(e)
}

// body is what one side of a stream sent in DATA frames.
type body struct {
	raw   []byte
	total int64
	lost  bool // a gap hit it
	g     grpcParse
}

func (b *body) write(c *conn, s *stream, p []byte) {
	b.total += int64(len(p))
	if s.grpc {
		b.g.write(p, c.cfg.MaxBodyBytes, c.cfg.MaxGRPCMessages)
		return
	}
	if n := min(len(p), c.cfg.MaxBodyBytes-len(b.raw)); n > 0 {
		b.raw = append(b.raw, p[:n]...)
	}
}

// gunzip decodes raw, returning at most limit bytes; complete is false when
// there was more.
func gunzip(raw []byte, limit int) (out []byte, complete bool, err error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, false, err
	}
	out, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if len(out) > limit {
		return out[:limit], false, nil
	}
	if err != nil {
		return out, false, err
	}
	return out, true, nil
}
