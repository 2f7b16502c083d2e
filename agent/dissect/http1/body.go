package http1

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"sync"

	"github.com/podwire/podwire/agent/entry"
)

var gzipReaders sync.Pool // *gzip.Reader

// decode replaces a gzip or deflate body by its decoded form, kept up to
// MaxBodyBytes. A body that does not decode is kept as it came, with a
// note; a kept body cut short (limit or gap) decodes as far as it goes.
func (c *conn) decode(ex *exchange, m *entry.Message, enc uint8) {
	if len(m.Body) == 0 {
		return
	}
	out, complete, err := inflate(m.Body, enc, c.cfg.MaxBodyBytes)
	if err != nil && !(m.Truncated && len(out) > 0 && errors.Is(err, io.ErrUnexpectedEOF)) {
		if ex != nil {
			if enc == encGzip {
				ex.e.AddNote("undecodable gzip body")
			} else {
				ex.e.AddNote("undecodable deflate body")
			}
		}
		return
	}
	m.Body = out
	if !complete {
		m.Truncated = true
	}
}

// inflate decodes raw, returning at most limit bytes; complete is false
// when there was more.
func inflate(raw []byte, enc uint8, limit int) (out []byte, complete bool, err error) {
	br := bytes.NewReader(raw)
	var r io.Reader
	switch enc {
	case encGzip:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr, err = gzip.NewReader(br)
		} else {
			err = zr.Reset(br)
		}
		if err != nil {
			return nil, false, err
		}
		defer gzipReaders.Put(zr)
		r = zr
	default:
		// "deflate" is zlib-wrapped by the standard, raw deflate by some
		// servers: tell them apart by the zlib header.
		if len(raw) >= 2 && raw[0]&0x0f == 8 && (uint16(raw[0])<<8|uint16(raw[1]))%31 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, false, err
			}
			r = zr
		} else {
			r = flate.NewReader(br)
		}
	}
	out = make([]byte, 0, min(limit, max(512, 4*len(raw))))
	for {
		if len(out) == cap(out) {
			if len(out) >= limit {
				var one [1]byte
				n, err := io.ReadFull(r, one[:])
				if n > 0 {
					return out, false, nil
				}
				if err == io.EOF {
					return out, true, nil
				}
				return out, false, err
			}
			nb := make([]byte, len(out), min(limit, 2*cap(out)))
			copy(nb, out)
			out = nb
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			return out, true, nil
		}
		if err != nil {
			return out, false, err
		}
	}
}
