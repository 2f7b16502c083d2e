// Package filter implements the Podwire filter language: CEL expressions over
// an entry, compiled once and evaluated per entry on the agents (and checked
// by the plugin). See docs/filter.md for the user reference.
package filter

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/podwire/podwire/agent/entry"
)

// CostLimit bounds the work one evaluation may do, in CEL cost units (about
// one per operation, one per ten bytes for string scans), so a hostile
// filter cannot spin an agent. An evaluation over the limit does not match.
//
// Compile first estimates the worst case statically, assuming bodies of at
// most maxBodySize, other strings of at most maxStringSize and at most
// maxHeaders headers. Only filters whose estimate exceeds the limit
// (comprehensions over headers, growing string functions, ...) pay for
// run-time cost tracking, which costs about 0.5µs and several allocations
// per evaluation; the others are linear in the entry's size anyway. With
// cel-go's tracker, reaching the limit in a comprehension takes about 0.3 s.
const CostLimit = 1_000_000

const (
	maxBodySize   = 4 << 20
	maxStringSize = 64 << 10
	maxHeaders    = 256
)

// maxExprLen bounds the size of an expression, in code points.
const maxExprLen = 16 << 10

// Filter is a compiled filter. It is safe for concurrent use.
type Filter struct {
	expr string
	prg  cel.Program // nil: matches everything
	// tracked is set when evaluation runs under the run-time cost limit.
	tracked bool
	// messages is set when the expression reads request.* or response.*.
	messages bool
	errors   atomic.Uint64
}

// Error is a compile error with its position in the expression.
type Error struct {
	Expr string
	// Line and Column are 1-based; Column counts characters (code points).
	Line, Column int
	// Offset is the 0-based byte offset in Expr.
	Offset int
	Msg    string
}

// Error renders the error as three lines: "filter:LINE:COL: MSG", the
// expression's line and a caret under the column.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "filter:%d:%d: %s", e.Line, e.Column, e.Msg)
	lines := strings.Split(e.Expr, "\n")
	if e.Line < 1 || e.Line > len(lines) {
		return b.String()
	}
	src := strings.TrimRight(lines[e.Line-1], "\r")
	b.WriteByte('\n')
	b.WriteString(src)
	b.WriteByte('\n')
	// Keep tabs so the caret lines up under the same character.
	col := 1
	for _, r := range src {
		if col >= e.Column {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		col++
	}
	for ; col < e.Column; col++ {
		b.WriteByte(' ')
	}
	b.WriteByte('^')
	return b.String()
}

var env = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(maxExprLen),
		ext.Strings(),
	}
	for _, f := range fields {
		opts = append(opts, cel.Variable(f.Name, f.typ))
	}
	return cel.NewEnv(opts...)
})

// Compile parses and type-checks expr. An empty or blank expr matches every
// entry. Errors are *Error.
func Compile(expr string) (*Filter, error) {
	f := &Filter{expr: expr}
	if strings.TrimSpace(expr) == "" {
		return f, nil
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("creating filter environment: %w", err)
	}
	ast, iss := e.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, issueError(expr, iss.Errors())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, &Error{Expr: expr, Line: 1, Column: 1,
			Msg: "filter must be a boolean expression, got " + typeName(t)}
	}
	f.messages = readsMessages(ast)
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	est, err := e.EstimateCost(ast, sizeEstimator{})
	if err != nil || est.Max > CostLimit {
		popts = append(popts, cel.CostLimit(CostLimit))
		f.tracked = true
	}
	prg, err := e.Program(ast, popts...)
	if err != nil {
		// Constant folding can fail on bad constants, e.g. a bad regexp.
		return nil, &Error{Expr: expr, Line: 1, Column: 1, Msg: err.Error()}
	}
	f.prg = prg
	return f, nil
}

// issueError turns the first CEL error into an *Error.
func issueError(expr string, errs []*common.Error) *Error {
	if len(errs) == 0 {
		return &Error{Expr: expr, Line: 1, Column: 1, Msg: "invalid filter"}
	}
	ce := errs[0]
	line, col := ce.Location.Line(), ce.Location.Column()+1 // CEL columns are 0-based
	if line < 1 {
		line, col = 1, 1
	}
	msg := strings.TrimSuffix(ce.Message, " (in container '')")
	msg = strings.TrimPrefix(msg, "Syntax error: ")
	off := byteOffset(expr, line, col)
	if name, ok := strings.CutPrefix(msg, "undeclared reference to '"); ok {
		name = strings.TrimSuffix(name, "'")
		msg, off, col = undeclared(expr, name, off, col)
	}
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
	}
	return &Error{Expr: expr, Line: line, Column: col, Offset: off, Msg: msg}
}

// undeclared explains an undeclared name at off, pointing at the unknown
// field when the name is an object such as src (CEL reports "src" for
// "src.podd"), and suggests the nearest known name.
func undeclared(expr, name string, off, col int) (string, int, int) {
	full := name
	if isObject(name) && strings.HasPrefix(expr[off:], name) {
		// Read ".field" after the object name, spaces allowed.
		i := off + len(name)
		skip := func() {
			for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
				i++
			}
		}
		skip()
		if i < len(expr) && expr[i] == '.' {
			i++
			skip()
			j := i
			for j < len(expr) && isIdentByte(expr[j], j > i) {
				j++
			}
			if j > i && !strings.Contains(expr[off:i], "\n") {
				full = name + "." + expr[i:j]
				col += utf8.RuneCountInString(expr[off:i])
				off = i
			}
		}
	}
	msg := "undeclared reference to '" + full + "'"
	if s := suggest(full); s != "" {
		msg += " (did you mean '" + s + "'?)"
	}
	return msg, off, col
}

func isObject(name string) bool {
	for _, f := range fields {
		if strings.HasPrefix(f.Name, name+".") {
			return true
		}
	}
	return false
}

func isIdentByte(c byte, notFirst bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || notFirst && '0' <= c && c <= '9'
}

// suggest returns the known name closest to name, or "" when none is close.
func suggest(name string) string {
	best, bestD := "", 3
	if len(name) <= 3 {
		bestD = 2
	}
	for _, f := range fields {
		if d := distance(strings.ToLower(name), strings.ToLower(f.Name)); d < bestD {
			best, bestD = f.Name, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// byteOffset converts a 1-based line and code-point column to a byte offset.
func byteOffset(expr string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(expr[off:], '\n')
		if i < 0 {
			return len(expr)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(expr); c++ {
		_, n := utf8.DecodeRuneInString(expr[off:])
		off += n
	}
	return off
}

// String returns the expression the filter was compiled from.
func (f *Filter) String() string { return f.expr }

// Errors returns how many evaluations failed at run time (and so did not
// match): a cost limit hit, a bad index, a type mismatch on a dyn value.
func (f *Filter) Errors() uint64 { return f.errors.Load() }

// MatchesAll reports whether the filter is empty and so matches everything.
func (f *Filter) MatchesAll() bool { return f == nil || f.prg == nil }

// Costly reports whether the filter's worst case is over the static cost
// limit, so that it is counted (and cut) as it runs: too slow for places
// where it would run on every captured entry.
func (f *Filter) Costly() bool { return f != nil && f.tracked }

// NeedsMessages reports whether the filter reads the request or the
// response (headers, body, bodyBytes, truncated), so that it must see
// whole entries; without it, an entry's summary (entry.SummaryReader)
// gives the same answer.
func (f *Filter) NeedsMessages() bool { return f != nil && f.messages }

// readsMessages tells whether a checked expression refers to a request.*
// or response.* variable.
func readsMessages(a *cel.Ast) bool {
	for _, r := range a.NativeRep().ReferenceMap() {
		if len(r.OverloadIDs) > 0 {
			continue // a function
		}
		if strings.HasPrefix(r.Name, "request.") || strings.HasPrefix(r.Name, "response.") {
			return true
		}
	}
	return false
}

// Match reports whether e passes the filter. A nil *Filter matches
// everything. e must not change during the call.
func (f *Filter) Match(e *entry.Entry) bool {
	if f == nil || f.prg == nil {
		return true
	}
	a := activations.Get().(*activation)
	a.e = e
	out, _, err := f.prg.Eval(a)
	a.e = nil
	activations.Put(a)
	if err != nil {
		f.errors.Add(1)
		return false
	}
	b, ok := out.(types.Bool)
	if !ok {
		f.errors.Add(1)
		return false
	}
	return bool(b)
}

// sizeEstimator bounds the sizes of the entry's values for the static cost
// estimate.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	if _, ok := resolvers[p[0]]; !ok {
		return nil
	}
	switch {
	case strings.HasSuffix(p[0], ".body") && len(p) == 1:
		return &checker.SizeEstimate{Max: maxBodySize}
	case n.Type().IsExactType(cel.StringType):
		return &checker.SizeEstimate{Max: maxStringSize}
	case n.Type().Kind() == types.MapKind:
		return &checker.SizeEstimate{Max: maxHeaders}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// activation resolves names lazily from one entry: a value is built only
// when the expression reads it.
type activation struct {
	e *entry.Entry
}

var activations = sync.Pool{New: func() any { return new(activation) }}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	get, ok := resolvers[name]
	if !ok {
		return nil, false
	}
	return get(a.e), true
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }
