package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Reconnect backoff for a watch that was running and broke.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// tapEvent is what one agent's watch reports to the printing loop.
type tapEvent struct {
	agent string
	// Exactly one of these is set, or none for "connected".
	resp *podwirev1.WatchResponse
	err  error  // the watch is over for good
	warn string // something to say on stderr; the watch goes on
}

func (c *cli) tap(ctx context.Context, args []string) error {
	fs := newFlagSet("tap")
	var cf clientFlags
	output := fs.StringP("output", "o", outTable, "output format: table or json (one object per line)")
	count := fs.IntP("count", "c", 0, "exit after this many entries (0: no limit)")
	duration := fs.DurationP("duration", "d", 0, "exit after this long (0: until interrupted)")
	maxBody := fs.Int("max-body", 0, "bytes of each body to fetch, -1 for whole bodies (default 0, or 4096 with -o json)")
	cf.register(fs)
	if err := c.parse(fs, "tap", args); err != nil {
		return err
	}
	switch *output {
	case outTable, outJSON:
	default:
		return usageError("tap: unknown output %q (want table or json)", *output)
	}
	if *count < 0 || *duration < 0 {
		return usageError("tap: --count and --duration must not be negative")
	}
	if !fs.Changed("max-body") && *output == outJSON {
		*maxBody = jsonBodyBytes
	}
	req := &podwirev1.WatchRequest{Filter: filterArg(fs.Args()), MaxBodyBytes: int32(*maxBody)}

	conns, err := c.dial(&cf)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	// --duration is a timer here, not a deadline on ctx: a deadline would
	// travel to the agents, which could end the streams with an error first.
	var stop <-chan time.Time
	if *duration > 0 {
		timer := time.NewTimer(*duration)
		defer timer.Stop()
		stop = timer.C
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	events := make(chan tapEvent, 64)
	for _, a := range conns {
		go c.watchAgent(ctx, a, req, cf.timeout, events)
	}

	var tbl *table
	if *output == outTable {
		tbl = streamTable(c.termWidth(), c.loc, c.useColor())
	}
	live, seen, headerDone := len(conns), 0, false
	for {
		var ev tapEvent
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case ev = <-events:
		}
		switch {
		case ev.err != nil:
			if fe, ok := asFilterError(ev.err); ok {
				return fe
			}
			if len(conns) == 1 {
				return errors.New(describe(ev.agent, ev.err, cf.timeout))
			}
			fmt.Fprintf(c.stderr, "warning: %s\n", describe(ev.agent, ev.err, cf.timeout))
			if live--; live == 0 {
				return &exitError{code: exitFail, msg: "podwire: no agent to watch"}
			}
		case ev.warn != "":
			fmt.Fprintf(c.stderr, "warning: %s\n", ev.warn)
		case ev.resp == nil: // connected
			if tbl != nil && !headerDone {
				headerDone = true
				if err := tbl.writeHeader(c.stdout); err != nil {
					return err
				}
			}
		case ev.resp.GetEntry() == nil:
			if n := ev.resp.GetDropped(); n > 0 {
				msg := fmt.Sprintf("dropped %d entries (reader too slow)", n)
				if len(conns) > 1 {
					msg += " on agent " + ev.agent
				}
				fmt.Fprintln(c.stderr, msg)
			}
		default:
			var err error
			if tbl != nil {
				err = tbl.writeRow(c.stdout, ev.resp.GetEntry())
			} else {
				err = writeJSONLine(c.stdout, ev.resp.GetEntry())
			}
			if err != nil {
				return err
			}
			if seen++; *count > 0 && seen >= *count {
				return nil
			}
		}
	}
}

// watchAgent runs one agent's watch until ctx ends, reporting on events.
// A watch that never started ends with an error event; one that broke
// after it was running is retried with backoff.
func (c *cli) watchAgent(ctx context.Context, a *agentConn, req *podwirev1.WatchRequest, timeout time.Duration, events chan<- tapEvent) {
	send := func(ev tapEvent) bool {
		ev.agent = a.addr
		select {
		case events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := minBackoff
	started := false
	for {
		err := c.watchOnce(ctx, a, req, timeout, func(ev tapEvent) bool {
			if ev.resp == nil && !started {
				started = true
			}
			backoff = minBackoff
			return send(ev)
		})
		if ctx.Err() != nil {
			return
		}
		if !started || !retryable(err) {
			send(tapEvent{err: err})
			return
		}
		if !send(tapEvent{warn: describe(a.addr, err, timeout) + fmt.Sprintf("; reconnecting in %s", backoff)}) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// watchOnce runs one Watch call: a tapEvent with no resp once the agent
// has the watcher in place, then one per response. It returns why the
// stream ended.
func (c *cli) watchOnce(ctx context.Context, a *agentConn, req *podwirev1.WatchRequest, timeout time.Duration, emit func(tapEvent) bool) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.Watch(sctx, req)
	if err != nil {
		return err
	}
	// The agent sends headers once its watcher is in place; bound the wait
	// for them, not the stream.
	connected := make(chan bool, 1)
	if timeout > 0 {
		go func() {
			select {
			case <-connected:
			case <-time.After(timeout):
				cancel()
			case <-sctx.Done():
			}
		}()
	}
	md, _ := stream.Header()
	connected <- true
	if md != nil && sctx.Err() == nil {
		if !emit(tapEvent{}) {
			return ctx.Err()
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if sctx.Err() != nil && ctx.Err() == nil {
				return status.Errorf(codes.DeadlineExceeded, "no answer within %s", timeout)
			}
			return err
		}
		if !emit(tapEvent{resp: resp}) {
			return ctx.Err()
		}
	}
}

// retryable reports whether a broken watch is worth starting again.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.ResourceExhausted, codes.Aborted, codes.OK:
		return true
	}
	return false
}
