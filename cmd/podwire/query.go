package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// maxQueryLimit is the most entries an agent returns for one query.
const maxQueryLimit = 100000

// jsonBodyBytes is how much of each body -o json fetches unless --max-body
// says otherwise.
const jsonBodyBytes = 4096

// Output formats.
const (
	outTable = "table"
	outWide  = "wide"
	outJSON  = "json"
	outText  = "text"
)

func (c *cli) query(ctx context.Context, args []string) error {
	fs := newFlagSet("query")
	var cf clientFlags
	since := fs.String("since", "15m", "start of the time range: a duration ago (5m, 2h) or an RFC 3339 time")
	until := fs.String("until", "", "end of the time range: a duration ago or an RFC 3339 time (default now)")
	limit := fs.IntP("limit", "n", 100, "show at most this many entries, newest first, over all agents")
	output := fs.StringP("output", "o", outTable, "output format: table, wide or json (one object per line)")
	maxBody := fs.Int("max-body", 0, "bytes of each body to fetch, -1 for whole bodies (default 0, or 4096 with -o json)")
	cf.register(fs)
	if err := c.parse(fs, "query", args); err != nil {
		return err
	}
	switch *output {
	case outTable, outWide, outJSON:
	default:
		return usageError("query: unknown output %q (want table, wide or json)", *output)
	}
	if *limit <= 0 {
		return usageError("query: --limit must be positive")
	}
	if !fs.Changed("max-body") && *output == outJSON {
		*maxBody = jsonBodyBytes
	}
	now := c.now()
	req := &podwirev1.QueryRequest{
		Filter:       filterArg(fs.Args()),
		Limit:        int32(min(*limit, maxQueryLimit)),
		MaxBodyBytes: int32(*maxBody),
	}
	if *since != "" {
		t, err := parseWhen(*since, now, c.loc)
		if err != nil {
			return usageError("query: --since: %v", err)
		}
		req.From = timestamppb.New(t)
	}
	if *until != "" {
		t, err := parseWhen(*until, now, c.loc)
		if err != nil {
			return usageError("query: --until: %v", err)
		}
		req.To = timestamppb.New(t)
	}

	conns, err := c.dial(&cf)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	results := make([][]*podwirev1.Entry, len(conns))
	errs := forEach(ctx, conns, cf.timeout, func(ctx context.Context, i int, a *agentConn) error {
		stream, err := a.client.Query(ctx, req)
		if err != nil {
			return err
		}
		for {
			e, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			results[i] = append(results[i], e)
		}
	})
	ok, err := c.answered(conns, errs, cf.timeout)
	if err != nil {
		return err
	}
	var all []*podwirev1.Entry
	for _, i := range ok {
		all = append(all, results[i]...)
	}
	sortNewestFirst(all)
	if len(all) > *limit {
		all = all[:*limit]
	}
	if len(all) == 0 && *output != outJSON {
		fmt.Fprintf(c.stderr, "no entries between %s and %s\n",
			req.From.AsTime().In(c.loc).Format(time.DateTime), untilText(req.To, c.loc))
		return nil
	}
	bw := bufio.NewWriter(c.stdout)
	if err := c.writeEntries(bw, all, *output); err != nil {
		return err
	}
	return bw.Flush()
}

func untilText(to *timestamppb.Timestamp, loc *time.Location) string {
	if to == nil {
		return "now"
	}
	return to.AsTime().In(loc).Format(time.DateTime)
}

// writeEntries writes entries as a fitted table, a wide table or JSON lines.
func (c *cli) writeEntries(w io.Writer, entries []*podwirev1.Entry, output string) error {
	if output == outJSON {
		for _, e := range entries {
			if err := writeJSONLine(w, e); err != nil {
				return err
			}
		}
		return nil
	}
	t := fitTable(entries, c.termWidth(), c.loc, c.useColor(), output == outWide)
	if err := t.writeHeader(w); err != nil {
		return err
	}
	for _, e := range entries {
		if err := t.writeRow(w, e); err != nil {
			return err
		}
	}
	return nil
}

// termWidth is the terminal's width, $COLUMNS, or 0 when output is not a
// terminal.
func (c *cli) termWidth() int {
	if !c.tty {
		return 0
	}
	if c.width > 0 {
		return c.width
	}
	if n, err := strconv.Atoi(c.getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return defaultWidth
}

// writeJSONLine writes m as one protojson line (camelCase names, unset
// fields left out).
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// sortNewestFirst orders entries by time, newest first, then by id.
func sortNewestFirst(entries []*podwirev1.Entry) {
	slices.SortStableFunc(entries, func(a, b *podwirev1.Entry) int {
		if c := b.GetTime().AsTime().Compare(a.GetTime().AsTime()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetId(), b.GetId())
	})
}

// parseWhen reads a point in time: a duration before now ("15m", "2h30m",
// "1d") or a time (RFC 3339; without a zone, in loc).
func parseWhen(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateTime, time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (5m, 2h, 1d) nor a time (2006-01-02T15:04:05Z07:00)", s)
}
