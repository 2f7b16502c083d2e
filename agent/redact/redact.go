// Package redact hides secrets in entries before they are stored: the values
// of credential headers and whatever configured patterns match in bodies.
// A redacted value keeps its length: each byte becomes '*'.
package redact

import (
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/podwire/podwire/agent/entry"
)

// DefaultHeaders are always redacted unless the Redactor is disabled.
var DefaultHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// Config selects what is redacted besides DefaultHeaders.
type Config struct {
	// Headers are extra header names to redact, in any case.
	Headers []string
	// BodyPatterns are Go regular expressions; every match in a request or
	// response body is redacted.
	BodyPatterns []string
	// Disable turns redaction off entirely.
	Disable bool
}

// Redactor redacts entries. It is safe for concurrent use.
type Redactor struct {
	disabled bool
	headers  map[string]bool // lower-case names
	patterns []*regexp.Regexp

	headerCount atomic.Uint64
	bodyCount   atomic.Uint64
	entryCount  atomic.Uint64
}

// Stats counts what a Redactor has hidden.
type Stats struct {
	// Headers is the number of header and trailer values redacted.
	Headers uint64
	// BodyMatches is the number of pattern matches redacted in bodies.
	BodyMatches uint64
	// Entries is the number of entries that had anything redacted.
	Entries uint64
}

// New returns a Redactor for cfg. A pattern that does not compile is an
// error naming it.
func New(cfg Config) (*Redactor, error) {
	r := &Redactor{disabled: cfg.Disable, headers: make(map[string]bool)}
	for _, h := range DefaultHeaders {
		r.headers[h] = true
	}
	for _, h := range cfg.Headers {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" {
			r.headers[h] = true
		}
	}
	for _, p := range cfg.BodyPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("compiling body pattern %q: %w", p, err)
		}
		r.patterns = append(r.patterns, re)
	}
	return r, nil
}

// Entry redacts e in place. It must run before e is stored or shared. A
// nil or disabled Redactor does nothing. Bodies are copied before they are
// changed, so a Body that shares memory with a capture buffer stays intact.
func (r *Redactor) Entry(e *entry.Entry) {
	if r == nil || r.disabled || e == nil {
		return
	}
	var n, b uint64
	for _, m := range []*entry.Message{e.Request, e.Response} {
		if m == nil {
			continue
		}
		n += r.redactHeaders(m.Headers)
		n += r.redactHeaders(m.Trailers)
		b += r.redactBody(m)
	}
	if n > 0 {
		r.headerCount.Add(n)
	}
	if b > 0 {
		r.bodyCount.Add(b)
	}
	if n > 0 || b > 0 {
		r.entryCount.Add(1)
	}
}

func (r *Redactor) redactHeaders(hs []entry.Header) uint64 {
	var n uint64
	for i := range hs {
		h := &hs[i]
		if h.Value == "" || !r.headers[h.Name] && !r.headers[strings.ToLower(h.Name)] {
			continue
		}
		h.Value = strings.Repeat("*", len(h.Value))
		n++
	}
	return n
}

// redactBody replaces every pattern match in m.Body by '*'s, counting
// matches. Patterns run in order, each over the output of the previous one.
func (r *Redactor) redactBody(m *entry.Message) uint64 {
	var n uint64
	copied := false
	for _, re := range r.patterns {
		locs := re.FindAllIndex(m.Body, -1)
		for _, loc := range locs {
			if loc[0] == loc[1] {
				continue // empty match: nothing to hide
			}
			if !copied {
				m.Body = append(make([]byte, 0, len(m.Body)), m.Body...)
				copied = true
			}
			for i := loc[0]; i < loc[1]; i++ {
				m.Body[i] = '*'
			}
			n++
		}
	}
	return n
}

// Stats returns the counters since New.
func (r *Redactor) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	return Stats{
		Headers:     r.headerCount.Load(),
		BodyMatches: r.bodyCount.Load(),
		Entries:     r.entryCount.Load(),
	}
}
