package redis

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
//	role: client | server | unknown      (ConnInfo.Role; default client)
//	max-value: N | max-pending: N | max-depth: N
//	> text      bytes from the client; "\r\n" is appended unless the line
//	< text      ends in \c. Escapes: \r \n \t \\ \xNN \c. Consecutive
//	            lines of one side form one delivery; "--" starts a new one.
//	bulk > N    a bulk string "$N\r\n" + N bytes + "\r\n" (bulk < N: server)
//	gap > N     N bytes from the client lost (gap < N: from the server)
//	end rst     End; the script ends with End(fin) anyway
//	want: LINE  the next emitted entry, as summary prints it
//	body: I req|resp TEXT   the whole body of entry I, escaped as above
//	stats: k=v  counters (Stats.Snapshot names) after End
//
// Every delivery or gap takes 1ms, so latencies are exact.
type script struct {
	name   string
	role   tcp.Role
	cfg    Config
	steps  []step
	want   []string
	stats  map[string]uint64
	bodies []bodyCheck
}

type step struct {
	kind   byte // 'd' data, 'g' gap, 'e' end
	client bool
	data   []byte
	n      int
	reason tcp.EndReason
}

type bodyCheck struct {
	entry int
	resp  bool
	want  string
	line  int
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
	s := &script{name: strings.TrimSuffix(filepath.Base(path), ".txt"), role: tcp.RoleClient, stats: map[string]uint64{}}
	var cur *step
	flush := func() {
		if cur != nil {
			s.steps = append(s.steps, *cur)
			cur = nil
		}
	}
	add := func(client bool, b []byte) {
		if cur != nil && cur.client != client {
			flush()
		}
		if cur == nil {
			cur = &step{kind: 'd', client: client}
		}
		cur.data = append(cur.data, b...)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", n, fmt.Sprintf(format, args...))
		}
		if strings.HasPrefix(line, "> ") || strings.HasPrefix(line, "< ") {
			b, err := unescape(line[2:], true)
			if err != nil {
				return nil, fail("%v", err)
			}
			add(line[0] == '>', b)
			continue
		}
		if strings.HasPrefix(line, "bulk ") {
			f := strings.Fields(line)
			k, err := strconv.Atoi(f[len(f)-1])
			if len(f) != 3 || err != nil {
				return nil, fail("bad bulk %q", line)
			}
			b := fmt.Appendf(nil, "$%d\r\n", k)
			for i := range k {
				b = append(b, byte('a'+i%26))
			}
			add(f[1] == ">", append(b, "\r\n"...))
			continue
		}
		flush()
		key, val, _ := strings.Cut(line, ":")
		val = strings.TrimSpace(val)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "--":
		case strings.HasPrefix(line, "gap "):
			f := strings.Fields(line)
			k, err := strconv.Atoi(f[len(f)-1])
			if len(f) != 3 || err != nil {
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
			s.role = map[string]tcp.Role{"client": tcp.RoleClient, "server": tcp.RoleServer, "unknown": tcp.RoleUnknown}[val]
		case key == "max-value" || key == "max-pending" || key == "max-depth":
			v, err := strconv.Atoi(val)
			if err != nil {
				return nil, fail("%v", err)
			}
			switch key {
			case "max-value":
				s.cfg.MaxValueBytes = v
			case "max-pending":
				s.cfg.MaxPending = v
			default:
				s.cfg.MaxDepth = v
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
		case key == "body":
			f := strings.SplitN(val, " ", 3)
			if len(f) != 3 || (f[1] != "req" && f[1] != "resp") {
				return nil, fail("bad body check %q", line)
			}
			i, err := strconv.Atoi(f[0])
			if err != nil {
				return nil, fail("%v", err)
			}
			b, err := unescape(f[2], false)
			if err != nil {
				return nil, fail("%v", err)
			}
			s.bodies = append(s.bodies, bodyCheck{entry: i, resp: f[1] == "resp", want: string(b), line: n})
		default:
			return nil, fail("unknown line %q", line)
		}
	}
	flush()
	return s, sc.Err()
}

func unescape(text string, crlf bool) ([]byte, error) {
	var out []byte
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
	testRemote = netip.MustParseAddrPort("10.0.0.2:6379")
	testT0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

type run struct {
	info    *tcp.ConnInfo
	h       *conn
	stats   *Stats
	entries []*entry.Entry
}

func newRun(s *script) *run {
	r := &run{info: &tcp.ConnInfo{ID: 7, Local: testLocal, Remote: testRemote, Role: s.role}, stats: new(Stats)}
	r.h = New(s.cfg, r.info, func(e *entry.Entry) { r.entries = append(r.entries, e) }, r.stats).(*conn)
	return r
}

// dir maps a side of the script to a direction: the client is the local
// socket unless the role says it is the server.
func (r *run) dir(client bool) tcp.Dir {
	if client == (r.info.Role != tcp.RoleServer) {
		return tcp.Egress
	}
	return tcp.Ingress
}

func (r *run) play(s *script, split func([]byte) []int) {
	ended := false
	for i, st := range s.steps {
		t := testT0.Add(time.Duration(i+1) * time.Millisecond)
		switch st.kind {
		case 'd':
			prev := 0
			for _, cut := range append(split(st.data), len(st.data)) {
				if cut > prev {
					r.h.Data(r.dir(st.client), st.data[prev:cut], t)
					prev = cut
				}
			}
		case 'g':
			r.h.Gap(r.dir(st.client), st.n, t)
		case 'e':
			r.h.End(st.reason, t)
			ended = true
		}
	}
	if !ended {
		r.h.End(tcp.EndFIN, testT0.Add(time.Hour))
	}
}

func msgSummary(m *entry.Message) string {
	b := m.Body
	more := ""
	if len(b) > 48 {
		b, more = b[:48], "..."
	}
	s := fmt.Sprintf("%q%s/%d", b, more, m.BodyBytes)
	if m.Truncated {
		s += "+trunc"
	}
	return s
}

// summary prints what a user sees of an entry in a listing.
func summary(e *entry.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q -> ", e.Method, e.Path)
	if e.Response == nil {
		b.WriteString("none")
	} else {
		fmt.Fprintf(&b, "%d", e.Status)
	}
	if e.Request != nil {
		fmt.Fprintf(&b, " req=%s", msgSummary(e.Request))
	}
	if e.Response != nil {
		fmt.Fprintf(&b, " resp=%s", msgSummary(e.Response))
		for _, h := range e.Response.Headers {
			fmt.Fprintf(&b, " %s=%s", h.Name, h.Value)
		}
		fmt.Fprintf(&b, " lat=%s", e.Latency)
	}
	if e.Failed {
		b.WriteString(" failed")
	}
	if e.Incomplete {
		b.WriteString(" incomplete")
	}
	if len(e.Notes) > 0 {
		fmt.Fprintf(&b, " notes=%v", e.Notes)
	}
	return b.String()
}

func splitters() map[string]func([]byte) []int {
	rng := rand.New(rand.NewPCG(42, 7))
	return map[string]func([]byte) []int{
		"whole": func([]byte) []int { return nil },
		"bytes": func(b []byte) []int {
			cuts := make([]int, len(b))
			for i := range cuts {
				cuts[i] = i + 1
			}
			return cuts
		},
		"random": func(b []byte) []int {
			var cuts []int
			for i := 0; i < len(b); {
				i += 1 + rng.IntN(12)
				cuts = append(cuts, min(i, len(b)))
			}
			return cuts
		},
	}
}

func TestScripts(t *testing.T) {
	for _, s := range loadScripts(t) {
		for mode, split := range splitters() {
			t.Run(s.name+"/"+mode, func(t *testing.T) {
				r := newRun(s)
				r.play(s, split)
				var got []string
				for _, e := range r.entries {
					got = append(got, summary(e))
					if e.Protocol != entry.ProtoRedis || e.ConnID != 7 {
						t.Errorf("entry %q: protocol %q conn %d", e.Method, e.Protocol, e.ConnID)
					}
					if s.role != tcp.RoleUnknown || len(r.entries) > 0 {
						if e.Src.Port != 40000 && s.role == tcp.RoleClient || e.Dst.Port != 6379 && s.role == tcp.RoleClient {
							t.Errorf("entry %q: src %v dst %v, want client 40000 -> server 6379", e.Method, e.Src, e.Dst)
						}
					}
				}
				if strings.Join(got, "\n") != strings.Join(s.want, "\n") {
					t.Errorf("entries:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(s.want, "\n      "))
				}
				for _, c := range s.bodies {
					if c.entry >= len(r.entries) {
						t.Errorf("line %d: no entry %d", c.line, c.entry)
						continue
					}
					m := r.entries[c.entry].Request
					if c.resp {
						m = r.entries[c.entry].Response
					}
					if m == nil || string(m.Body) != c.want {
						var b []byte
						if m != nil {
							b = m.Body
						}
						t.Errorf("line %d: body of entry %d:\n got: %q\nwant: %q", c.line, c.entry, b, c.want)
					}
				}
				snap := r.stats.Snapshot()
				for k, v := range s.stats {
					if snap[k] != v {
						t.Errorf("stat %s = %d, want %d (all: %v)", k, snap[k], v, snap)
					}
				}
			})
		}
	}
}
