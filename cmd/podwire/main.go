// Command podwire is the Podwire node agent and the CLI that reads from it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// errNotBuilt is what a part that is not written yet returns.
var errNotBuilt = errors.New("not built yet")

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2 // bad flags, arguments or filter
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	c := newCLI(os.Stdout, os.Stderr, os.Getenv)
	c.tty = isTerminal(os.Stdout)
	if c.tty {
		c.width = terminalWidth(os.Stdout)
	}
	code := c.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// cli holds what the commands write to and read from, so tests can run
// them in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// tty is true when stdout is a terminal: colour and fitting to width.
	tty bool
	// width is the terminal's width in columns, 0 when unknown.
	width int
	// loc is the time zone times are shown in.
	loc *time.Location
	now func() time.Time
}

func newCLI(stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{stdout: stdout, stderr: stderr, getenv: getenv, loc: time.Local, now: time.Now}
}

// exitError ends a command with a code; msg, when set, goes to stderr as it is.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError is a mistake in the command line: exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// withPrefix starts msg with "podwire: " unless it names the program already.
func withPrefix(msg string) string {
	if strings.HasPrefix(msg, "podwire") {
		return msg
	}
	return "podwire: " + msg
}

type command struct {
	name, args, short string
	run               func(c *cli, ctx context.Context, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"agent", "[flags]", "run the node agent (capture, store, gRPC API)", func(c *cli, _ context.Context, args []string) error {
			return runAgent(args)
		}},
		{"tap", "[FILTER] [flags]", "stream live entries from the agents", (*cli).tap},
		{"query", "[FILTER] [flags]", "list stored entries, newest first", (*cli).query},
		{"get", "ID [flags]", "show one entry with its headers and bodies", (*cli).get},
		{"map", "[FILTER] [flags]", "show who talks to whom: rates, errors and latency per edge", (*cli).serviceMap},
		{"status", "[flags]", "show each agent's state and counters", (*cli).status},
		{"demo", "[flags]", "run an agent with a small demo shop and tap its traffic (root)", (*cli).demo},
		{"version", "", "print the CLI's version", (*cli).versionCmd},
		{"help", "[COMMAND]", "show help for a command", (*cli).help},
	}
}

// run runs the command line args (without the program name) and returns the
// exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help":
		c.usage(c.stdout)
		return exitOK
	case "-v", "--version":
		name = "version"
	}
	if name == "demo-service" { // hidden: one service of the demo shop
		return c.exit(c.demoService(ctx, args[1:]))
	}
	cmd := findCommand(name)
	if cmd == nil {
		fmt.Fprintf(c.stderr, "podwire: unknown command %q\n\n", name)
		c.usage(c.stderr)
		return exitUsage
	}
	err := cmd.run(c, ctx, args[1:])
	return c.exit(err)
}

func (c *cli) exit(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(c.stderr, withPrefix(ee.msg))
		}
		return ee.code
	}
	var fe *filterError
	if errors.As(err, &fe) {
		fmt.Fprintln(c.stderr, fe.msg)
		return exitUsage
	}
	if errors.Is(err, errNotBuilt) {
		fmt.Fprintln(c.stderr, "podwire: this command is not built yet")
		return exitFail
	}
	fmt.Fprintln(c.stderr, withPrefix(err.Error()))
	return exitFail
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, `podwire shows the requests and responses flowing between Kubernetes workloads.

Usage:
  podwire COMMAND [ARGS] [FLAGS]

Commands:
`)
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.short)
	}
	fmt.Fprint(w, `
Filters are CEL expressions over an entry, for example:
  podwire tap 'http && status >= 500'
  podwire query 'dst.namespace == "shop" && latency > duration("200ms")' --since 1h

Run 'podwire help COMMAND' for a command's flags.
`)
}

// newFlagSet returns a flag set for a command; parse it with c.parse.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("podwire "+name, pflag.ContinueOnError)
	fs.SetInterspersed(true)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parse parses args into fs. On --help it writes the command's usage to
// stdout and returns errHelpShown.
func (c *cli) parse(fs *pflag.FlagSet, name string, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		c.commandUsage(c.stdout, fs, name)
		return errHelpShown
	}
	if err != nil {
		return usageError("%s: %v (see 'podwire help %s')", name, err, name)
	}
	return nil
}

// errHelpShown ends a command whose help was asked for, with exit code 0.
var errHelpShown = &exitError{code: exitOK}

func (c *cli) commandUsage(w io.Writer, fs *pflag.FlagSet, name string) {
	if cmd := findCommand(name); cmd != nil {
		fmt.Fprintf(w, "Usage: podwire %s %s\n\n%s.\n", name, cmd.args, upperFirst(cmd.short))
	} else {
		fmt.Fprintf(w, "Usage: podwire %s [flags]\n", name)
	}
	if fs != nil && fs.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsagesWrapped(100))
	}
	fmt.Fprintln(w, "\nSee docs/cli.md for examples.")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (c *cli) help(_ context.Context, args []string) error {
	if len(args) == 0 {
		c.usage(c.stdout)
		return nil
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		return usageError("help: unknown command %q", args[0])
	}
	switch cmd.name {
	case "help", "version":
		c.commandUsage(c.stdout, nil, cmd.name)
		return nil
	}
	return cmd.run(c, context.Background(), []string{"--help"})
}

func (c *cli) versionCmd(_ context.Context, args []string) error {
	fs := newFlagSet("version")
	if err := c.parse(fs, "version", args); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "podwire %s (%s, %s/%s)\n", cliVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// cliVersion is the build's version: the link-time one (main.version, in
// agent.go), else the module's.
func cliVersion() string {
	if version != "" && version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// filterArg joins the positional arguments into one filter, so an
// unquoted `podwire query status == 500` works too.
func filterArg(args []string) string {
	return strings.TrimSpace(strings.Join(args, " "))
}

// useColor reports whether output may be coloured.
func (c *cli) useColor() bool {
	return c.tty && c.getenv("NO_COLOR") == "" && c.getenv("TERM") != "dumb"
}
