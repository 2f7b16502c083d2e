package http1

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podwire/podwire/agent/entry"
	"github.com/podwire/podwire/agent/tcp"
)

// A script is one test vector from testdata/*.txt. The format, line by
// line:
//
//	# comment
//	role: client | server | unknown     (ConnInfo.Role; default client)
//	max-body: N | max-header: N | max-pending: N
//	> text       bytes from the client; "\r\n" is appended unless the line
//	< text       ends in \c. Escapes: \r \n \t \\ \xNN \c. A lone ">" or
//	             "<" is an empty line. Consecutive lines of one side form
//	             one delivery; a "--" line starts a new one.
//	gap > N      N bytes from the client lost (gap < N: from the server)
//	end rst      End (reason fin|rst); the script ends with End(fin) anyway
//	want: LINE   the next emitted entry, as summary() prints it
//	stats: k=v   counters (Stats.Snapshot names) after End
//	header: I req|resp name: value   first value of a header of entry I
//	trailer: I req|resp name: value  a trailer of entry I
//	names: I req|resp a,b,c          the header names of entry I, in order
type script struct {
	name   string
	role   tcp.Role
	cfg    Config
	steps  []step
	want   []string
	stats  map[string]uint64
	checks []check
}

type step struct {
	kind   byte // 'd' data, 'g' gap, 'e' end
	client bool // sent by the client
	data   []byte
	n      int
	reason tcp.EndReason
}

type check struct {
	line    string
	entry   int
	resp    bool
	kind    string // header, trailer, names
	name    string
	value   string
	lineNum int
}

func loadScripts(t testing.TB) []*script {
	t.Helper()
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	var out []*script
	for _, f := range files {
		s, err := parseScript(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, s)
	}
	return out
}

func parseScript(path string) (*script, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &script{
		name:  strings.TrimSuffix(filepath.Base(path), ".txt"),
		role:  tcp.RoleClient,
		stats: map[string]uint64{},
	}
	var cur *step
	flush := func() {
		if cur != nil {
			s.steps = append(s.steps, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", n, fmt.Sprintf(format, args...))
		}
		if line == ">" || line == "<" || strings.HasPrefix(line, "> ") || strings.HasPrefix(line, "< ") {
			client := line[0] == '>'
			if cur != nil && cur.client != client {
				flush()
			}
			if cur == nil {
				cur = &step{kind: 'd', client: client}
			}
			text := ""
			if len(line) > 2 {
				text = line[2:]
			}
			b, err := unescape(text)
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.data = append(cur.data, b...)
			continue
		}
		flush()
		key, val, _ := strings.Cut(line, ":")
		val = strings.TrimSpace(val)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "--":
		case strings.HasPrefix(line, "gap "):
			f := strings.Fields(line)
			k, err := strconv.Atoi(f[2])
			if len(f) != 3 || err != nil || (f[1] != ">" && f[1] != "<") {
				return nil, fail("bad gap %q", line)
			}
			s.steps = append(s.steps, step{kind: 'g', client: f[1] == ">", n: k})
		case strings.HasPrefix(line, "end"):
			r := tcp.EndFIN
			if strings.HasSuffix(line, "rst") {
				r = tcp.EndRST
			}
			s.steps = append(s.steps, step{kind: 'e', reason: r})
		case key == "role":
			switch val {
			case "client":
				s.role = tcp.RoleClient
			case "server":
				s.role = tcp.RoleServer
			case "unknown":
				s.role = tcp.RoleUnknown
			default:
				return nil, fail("bad role %q", val)
			}
		case key == "max-body" || key == "max-header" || key == "max-pending":
			v, err := strconv.Atoi(val)
			if err != nil {
				return nil, fail("%v", err)
			}
			switch key {
			case "max-body":
				s.cfg.MaxBodyBytes = v
			case "max-header":
				s.cfg.MaxHeaderBytes = v
			default:
				s.cfg.MaxPending = v
			}
		case key == "want":
			s.want = append(s.want, val)
		case key == "stats":
			for _, kv := range strings.Fields(val) {
				k, v, ok := strings.Cut(kv, "=")
				x, err := strconv.ParseUint(v, 10, 64)
				if !ok || err != nil {
					return nil, fail("bad stat %q", kv)
				}
				s.stats[k] = x
			}
		case key == "header" || key == "trailer" || key == "names":
			f := strings.SplitN(val, " ", 3)
			if len(f) != 3 || (f[1] != "req" && f[1] != "resp") {
				return nil, fail("bad check %q", line)
			}
			i, err := strconv.Atoi(f[0])
			if err != nil {
				return nil, fail("%v", err)
			}
			c := check{line: line, entry: i, resp: f[1] == "resp", kind: key, lineNum: n}
			if key == "names" {
				c.value = f[2]
			} else {
				name, value, ok := strings.Cut(f[2], ":")
				if !ok {
					return nil, fail("bad check %q", line)
				}
				c.name, c.value = name, strings.TrimPrefix(value, " ")
			}
			s.checks = append(s.checks, c)
		default:
			return nil, fail("unknown line %q", line)
		}
	}
	flush()
	return s, sc.Err()
}

func unescape(text string) ([]byte, error) {
	var out []byte
	crlf := true
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 == len(text) {
			return nil, fmt.Errorf("trailing backslash")
		}
		i++
		switch text[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '\\':
			out = append(out, '\\')
		case 'c':
			if i != len(text)-1 {
				return nil, fmt.Errorf(`\c before the end of the line`)
			}
			crlf = false
		case 'x':
			if i+2 >= len(text) {
				return nil, fmt.Errorf("short \\x")
			}
			v, err := strconv.ParseUint(text[i+1:i+3], 16, 8)
			if err != nil {
				return nil, err
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("unknown escape \\%c", text[i])
		}
	}
	if crlf {
		out = append(out, '\r', '\n')
	}
	return out, nil
}

var (
	testLocal  = netip.MustParseAddrPort("10.0.0.1:40000")
	testRemote = netip.MustParseAddrPort("10.0.0.2:8080")
)

// run is one run of a script.
type run struct {
	info    *tcp.ConnInfo
	h       *conn
	stats   *Stats
	entries []*entry.Entry
	now     time.Time
}

func newRun(s *script) *run {
	r := &run{
		info:  &tcp.ConnInfo{ID: 7, Local: testLocal, Remote: testRemote, Role: s.role},
		stats: new(Stats),
		now:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	r.h = New(s.cfg, r.info, func(e *entry.Entry) { r.entries = append(r.entries, e) }, r.stats).(*conn)
	return r
}

// dir maps a side of the script to the observing socket's direction: the
// client is local unless the role says the local socket is the server.
func (r *run) dir(client bool) tcp.Dir {
	if client == (r.info.Role != tcp.RoleServer) {
		return tcp.Egress
	}
	return tcp.Ingress
}

func (r *run) tick() time.Time {
	r.now = r.now.Add(time.Millisecond)
	return r.now
}

// play runs the script, cutting each delivery at the offsets split gives.
func (r *run) play(s *script, split func([]byte) []int) {
	ended := false
	for _, st := range s.steps {
		switch st.kind {
		case 'd':
			prev := 0
			for _, cut := range append(split(st.data), len(st.data)) {
				if cut > prev {
					r.h.Data(r.dir(st.client), st.data[prev:cut], r.tick())
					prev = cut
				}
			}
		case 'g':
			r.h.Gap(r.dir(st.client), st.n, r.tick())
		case 'e':
			r.h.End(st.reason, r.tick())
			ended = true
		}
	}
	if !ended {
		r.h.End(tcp.EndFIN, r.tick())
	}
}

func body(m *entry.Message) string {
	s := fmt.Sprintf("%q/%d", m.Body, m.BodyBytes)
	if m.Truncated {
		s += "+trunc"
	}
	return s
}

// summary prints the parts of an entry a user sees in a listing.
func summary(e *entry.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s -> ", e.Method, e.Path)
	if e.Response == nil {
		b.WriteString("none")
	} else {
		fmt.Fprintf(&b, "%d", e.Status)
	}
	fmt.Fprintf(&b, " v%s req=%s", e.HTTPVersion, body(e.Request))
	if e.Response != nil {
		fmt.Fprintf(&b, " resp=%s", body(e.Response))
	}
	if e.Failed {
		b.WriteString(" failed")
	}
	if e.Incomplete {
		b.WriteString(" incomplete")
	}
	if len(e.Notes) > 0 {
		fmt.Fprintf(&b, " notes=[%s]", strings.Join(e.Notes, "; "))
	}
	return b.String()
}

// checkEntry asserts what holds for every entry.
func (r *run) checkEntry(t *testing.T, s *script, e *entry.Entry) {
	t.Helper()
	client, server := entry.Endpoint{IP: testLocal.Addr(), Port: testLocal.Port()}, entry.Endpoint{IP: testRemote.Addr(), Port: testRemote.Port()}
	if r.info.Role == tcp.RoleServer {
		client, server = server, client
	}
	if e.Src != client || e.Dst != server {
		t.Errorf("%s: src %v dst %v, want %v %v", summary(e), e.Src, e.Dst, client, server)
	}
	if e.Protocol != "http" || e.ConnID != 7 || e.ID != "" || e.Node != "" {
		t.Errorf("%s: protocol %q conn %d id %q node %q", summary(e), e.Protocol, e.ConnID, e.ID, e.Node)
	}
	if e.Request == nil || !e.Time.Equal(e.Request.Start) || e.Request.End.Before(e.Request.Start) {
		t.Fatalf("%s: request times wrong", summary(e))
	}
	if e.Failed != (e.Status >= 500) {
		t.Errorf("%s: failed %v for status %d", summary(e), e.Failed, e.Status)
	}
	if e.Response != nil {
		if e.Latency <= 0 || e.Latency != e.Response.End.Sub(e.Time) {
			t.Errorf("%s: latency %v, response ends %v after the request", summary(e), e.Latency, e.Response.End.Sub(e.Time))
		}
	}
	for _, m := range []*entry.Message{e.Request, e.Response} {
		if m != nil && !bodyWithin(m.Body, r.h.cfg.MaxBodyBytes) {
			t.Errorf("%s: body of %d bytes (cap %d) over the limit %d", summary(e), len(m.Body), cap(m.Body), r.h.cfg.MaxBodyBytes)
		}
	}
}

// bodyWithin reports whether a kept body respects the limit: its length,
// and its capacity but for the allocator's rounding up.
func bodyWithin(b []byte, lim int) bool {
	return len(b) <= lim && cap(b) <= lim+lim/8+64
}

func (r *run) summaries() []string {
	out := make([]string, len(r.entries))
	for i, e := range r.entries {
		out[i] = summary(e)
	}
	return out
}

// splits are the ways every script is fed.
var splits = []struct {
	name  string
	split func(seed int) func([]byte) []int
}{
	{"whole", func(int) func([]byte) []int { return func([]byte) []int { return nil } }},
	{"bytewise", func(int) func([]byte) []int {
		return func(b []byte) []int {
			cuts := make([]int, len(b))
			for i := range cuts {
				cuts[i] = i + 1
			}
			return cuts
		}
	}},
	{"random", func(seed int) func([]byte) []int {
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		return func(b []byte) []int {
			var cuts []int
			for i := 1; i < len(b); i++ {
				if rng.IntN(8) == 0 {
					cuts = append(cuts, i)
				}
			}
			return cuts
		}
	}},
}

func TestScripts(t *testing.T) {
	for _, s := range loadScripts(t) {
		t.Run(s.name, func(t *testing.T) {
			if len(s.want) == 0 && s.stats["entries"] != 0 {
				t.Fatal("script wants entries but lists none")
			}
			for _, sp := range splits {
				seeds := 1
				if sp.name == "random" {
					seeds = 8
				}
				for seed := range seeds {
					r := newRun(s)
					r.play(s, sp.split(seed))
					got := r.summaries()
					if !equal(got, s.want) {
						t.Fatalf("%s split (seed %d):\ngot:\n  %s\nwant:\n  %s", sp.name, seed,
							strings.Join(got, "\n  "), strings.Join(s.want, "\n  "))
					}
					for _, e := range r.entries {
						r.checkEntry(t, s, e)
					}
					snap := r.stats.Snapshot()
					for k, v := range s.stats {
						if got, ok := snap[k]; !ok || got != v {
							t.Errorf("%s split: stat %s = %d, want %d", sp.name, k, got, v)
						}
					}
					for _, c := range s.checks {
						r.runCheck(t, c)
					}
					if t.Failed() {
						t.FailNow()
					}
				}
			}
		})
	}
}

func (r *run) runCheck(t *testing.T, c check) {
	t.Helper()
	if c.entry >= len(r.entries) {
		t.Errorf("line %d %q: no entry %d", c.lineNum, c.line, c.entry)
		return
	}
	m := r.entries[c.entry].Request
	if c.resp {
		m = r.entries[c.entry].Response
	}
	if m == nil {
		t.Errorf("line %d %q: no message", c.lineNum, c.line)
		return
	}
	switch c.kind {
	case "header":
		if got := m.Header(c.name); got != c.value {
			t.Errorf("line %d: header %s = %q, want %q", c.lineNum, c.name, got, c.value)
		}
	case "trailer":
		got := ""
		for _, h := range m.Trailers {
			if h.Name == c.name {
				got = h.Value
				break
			}
		}
		if got != c.value {
			t.Errorf("line %d: trailer %s = %q, want %q", c.lineNum, c.name, got, c.value)
		}
	case "names":
		var names []string
		for _, h := range m.Headers {
			names = append(names, h.Name)
		}
		if got := strings.Join(names, ","); got != c.value {
			t.Errorf("line %d: header names %s, want %s", c.lineNum, got, c.value)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
