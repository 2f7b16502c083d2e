package filter

import (
	"os"
	"strings"
	"testing"

	"github.com/podwire/podwire/agent/entry"
)

// docBlocks returns the fenced blocks of docs/filter.md with the given tag.
func docBlocks(t *testing.T, tag string) (doc string, blocks [][]string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/filter.md")
	if err != nil {
		t.Fatal(err)
	}
	doc = string(b)
	var cur []string
	in := false
	for _, l := range strings.Split(doc, "\n") {
		switch {
		case !in && l == "```"+tag:
			in, cur = true, nil
		case in && l == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, l)
		}
	}
	return doc, blocks
}

// TestDocExamples compiles every expression of the reference's cel blocks:
// one per line, a line ending in && or || continues on the next.
func TestDocExamples(t *testing.T) {
	_, blocks := docBlocks(t, "cel")
	if len(blocks) == 0 {
		t.Fatal("no cel blocks")
	}
	n := 0
	for _, b := range blocks {
		expr := ""
		for _, l := range b {
			if strings.HasPrefix(strings.TrimSpace(l), "//") || strings.TrimSpace(l) == "" {
				continue
			}
			expr += l + "\n"
			if t := strings.TrimSpace(l); strings.HasSuffix(t, "&&") || strings.HasSuffix(t, "||") {
				continue
			}
			f, err := Compile(expr)
			if err != nil {
				t.Errorf("%v", err)
			} else {
				for _, e := range []*entry.Entry{httpErr, httpOK, redisGet, grpcFail, dnsQuery} {
					f.Match(e)
				}
				if f.Errors() != 0 {
					t.Errorf("%q fails at run time", expr)
				}
			}
			expr = ""
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d examples found", n)
	}
}

// TestDocErrors checks that the error examples are what Compile says.
func TestDocErrors(t *testing.T) {
	_, blocks := docBlocks(t, "text")
	n := 0
	for _, b := range blocks {
		if len(b) != 3 || !strings.HasPrefix(b[0], "filter:") {
			continue
		}
		_, err := Compile(b[1])
		if want := strings.Join(b, "\n"); err == nil || err.Error() != want {
			t.Errorf("Compile(%q):\n%v\nwant:\n%s", b[1], err, want)
		}
		n++
	}
	if n < 4 {
		t.Fatalf("only %d error examples found", n)
	}
}

// TestDocNames checks that the reference lists every name.
func TestDocNames(t *testing.T) {
	doc, _ := docBlocks(t, "cel")
	for _, f := range Fields() {
		if !strings.Contains(doc, "| `"+f.Name+"` | "+f.Type+" |") {
			t.Errorf("docs/filter.md has no table row for %s (%s)", f.Name, f.Type)
		}
	}
}

func TestMatchesAll(t *testing.T) {
	for expr, want := range map[string]bool{"": true, " ": true, "true": false, "http": false} {
		f, err := Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		if f.MatchesAll() != want {
			t.Errorf("Compile(%q).MatchesAll() = %v", expr, !want)
		}
	}
	if !(*Filter)(nil).MatchesAll() {
		t.Error("nil filter does not match all")
	}
}
