package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

func (c *cli) status(ctx context.Context, args []string) error {
	fs := newFlagSet("status")
	var cf clientFlags
	output := fs.StringP("output", "o", outText, "output format: text or json (one object per line)")
	cf.register(fs)
	if err := c.parse(fs, "status", args); err != nil {
		return err
	}
	switch *output {
	case outText, outJSON:
	default:
		return usageError("status: unknown output %q (want text or json)", *output)
	}
	if fs.NArg() > 0 {
		return usageError("status: takes no arguments (use --agent to pick agents)")
	}
	conns, err := c.dial(&cf)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	results := make([]*podwirev1.StatusResponse, len(conns))
	errs := forEach(ctx, conns, cf.timeout, func(ctx context.Context, i int, a *agentConn) error {
		r, err := a.client.Status(ctx, &podwirev1.StatusRequest{})
		results[i] = r
		return err
	})
	failed := 0
	first := true
	for i, err := range errs {
		if err != nil {
			failed++
			if len(conns) == 1 {
				return errors.New(describe(conns[i].addr, err, cf.timeout))
			}
			fmt.Fprintf(c.stderr, "warning: %s\n", describe(conns[i].addr, err, cf.timeout))
			continue
		}
		if *output == outJSON {
			err = writeJSONLine(c.stdout, results[i])
		} else {
			if !first {
				fmt.Fprintln(c.stdout)
			}
			err = writeStatusText(c.stdout, conns[i].addr, results[i], c.loc)
		}
		first = false
		if err != nil {
			return err
		}
	}
	if failed > 0 {
		// A health check: any agent that did not answer is a failure.
		return &exitError{code: exitFail, msg: fmt.Sprintf("podwire: %s of %d did not answer", plural(failed, "agent", "agents"), len(conns))}
	}
	return nil
}

// writeStatusText writes one agent's status as a block of "name value"
// lines, programs and counters sorted by name.
func writeStatusText(w io.Writer, addr string, s *podwirev1.StatusResponse, loc *time.Location) error {
	ew := &errWriter{w: w}
	if loc == nil {
		loc = time.Local
	}
	line := func(name, value string) {
		if value != "" {
			ew.printf("%-12s %s\n", name, clean(value))
		}
	}
	line("agent", addr)
	line("node", s.GetNode())
	line("version", s.GetVersion())
	line("kernel", s.GetKernel())
	capture := s.GetCapture()
	if capture == "" {
		capture = "unknown"
	}
	line("capture", capture)
	line("cgroup root", s.GetCgroupRoot())
	if s.GetStarted() != nil {
		started := s.GetStarted().AsTime().In(loc).Format("2006-01-02 15:04:05 MST")
		if s.GetUptime() != nil {
			started += " (up " + s.GetUptime().AsDuration().Truncate(time.Second).String() + ")"
		}
		line("started", started)
	}
	progs := append([]*podwirev1.Program(nil), s.GetPrograms()...)
	sort.SliceStable(progs, func(i, j int) bool { return progs[i].GetName() < progs[j].GetName() })
	if len(progs) > 0 {
		ew.printf("programs (%d)\n", len(progs))
		nameW, typeW := 0, 0
		for _, p := range progs {
			nameW = max(nameW, len(clean(p.GetName())))
			typeW = max(typeW, len(clean(p.GetType())))
		}
		for _, p := range progs {
			ew.printf("  %-*s  %-*s  %s\n", nameW, clean(p.GetName()), typeW, clean(p.GetType()), clean(p.GetAttach()))
		}
	} else {
		ew.printf("programs     none\n")
	}
	names := make([]string, 0, len(s.GetCounters()))
	nameW, valW := 0, 0
	for name, v := range s.GetCounters() {
		names = append(names, name)
		nameW = max(nameW, len(clean(name)))
		valW = max(valW, len(strconv.FormatUint(v, 10)))
	}
	sort.Strings(names)
	if len(names) > 0 {
		ew.printf("counters\n")
		for _, name := range names {
			ew.printf("  %-*s  %*d\n", nameW, clean(name), valW, s.GetCounters()[name])
		}
	}
	return ew.err
}
