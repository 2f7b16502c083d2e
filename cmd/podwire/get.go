package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func (c *cli) get(ctx context.Context, args []string) error {
	fs := newFlagSet("get")
	var cf clientFlags
	output := fs.StringP("output", "o", outText, "output format: text or json")
	cf.register(fs)
	if err := c.parse(fs, "get", args); err != nil {
		return err
	}
	switch *output {
	case outText, outJSON:
	default:
		return usageError("get: unknown output %q (want text or json)", *output)
	}
	if fs.NArg() != 1 || strings.TrimSpace(fs.Arg(0)) == "" {
		return usageError("get: want exactly one entry ID (see 'podwire help get')")
	}
	id := strings.TrimSpace(fs.Arg(0))

	conns, err := c.dial(&cf)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	// Ask every agent at once; the first that has the entry wins.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		found *podwirev1.Entry
	)
	errs := forEach(ctx, conns, cf.timeout, func(ctx context.Context, _ int, a *agentConn) error {
		e, err := a.client.GetEntry(ctx, &podwirev1.GetEntryRequest{Id: id})
		if err != nil {
			return err
		}
		mu.Lock()
		if found == nil {
			found = e
			cancel()
		}
		mu.Unlock()
		return nil
	})
	if found == nil {
		notFound := 0
		for i, err := range errs {
			if status.Code(err) == codes.NotFound {
				notFound++
				continue
			}
			if len(conns) == 1 {
				return errors.New(describe(conns[i].addr, err, cf.timeout))
			}
			fmt.Fprintf(c.stderr, "warning: %s\n", describe(conns[i].addr, err, cf.timeout))
		}
		if notFound == 0 {
			return &exitError{code: exitFail, msg: "podwire: no agent answered"}
		}
		where := "any agent"
		if len(conns) == 1 {
			where = "agent " + conns[0].addr
		}
		return &exitError{code: exitFail, msg: fmt.Sprintf("podwire: entry %q not found on %s: unknown, or evicted from the store", id, where)}
	}
	return c.writeEntry(c.stdout, found, *output)
}

func (c *cli) writeEntry(w io.Writer, e *podwirev1.Entry, output string) error {
	if output == outJSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	return writeEntryText(w, e, c.loc, c.useColor())
}
