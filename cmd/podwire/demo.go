package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/podwire/podwire/agent/cgroup"
	"github.com/podwire/podwire/agent/daemon"
	"github.com/podwire/podwire/internal/demo"
)

// demo runs `podwire demo`: an agent scoped to a cgroup of its own, the demo
// shop's services inside it, and `tap` on the terminal.
func (c *cli) demo(ctx context.Context, args []string) error {
	fs := newFlagSet("demo")
	duration := fs.DurationP("duration", "d", 0, "stop after this long (0: until Ctrl-C)")
	filter := fs.String("filter", "", "show only entries matching this filter")
	if err := c.parse(fs, "demo", args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("podwire demo loads eBPF programs: run it as root (sudo)")
	}
	root, err := cgroup.Root()
	if err != nil {
		return err
	}
	removeStaleDemos(root)
	for _, name := range demo.Services {
		if addr := demo.Addr(name); addr != "" && name != "loadgen" {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("demo service %s needs %s: %w (is another podwire demo running?)", name, addr, err)
			}
			ln.Close()
		}
	}
	cg := filepath.Join(root, "podwire-demo-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return fmt.Errorf("creating the demo's cgroup: %w", err)
	}
	defer cgroup.Remove(cg)
	cgfd, err := os.Open(cg)
	if err != nil {
		return err
	}
	defer cgfd.Close()

	d, err := daemon.Start(daemon.Options{
		Listen:     "127.0.0.1:0",
		CgroupRoot: cg,
		NodeName:   "demo",
		Version:    version,
		StoreBytes: 64 << 20,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer d.Stop()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
		}
	}()
	for _, name := range demo.Services {
		cmd := exec.Command(self, "demo-service", name)
		cmd.Stdout, cmd.Stderr = c.stderr, c.stderr
		// The services die with the demo, however it ends.
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgfd.Fd()), Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting demo service %s: %w", name, err)
		}
		procs = append(procs, cmd)
	}
	// A service that exits ends the demo: there would be nothing to see.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, p := range procs {
		go func() {
			state, _ := p.Process.Wait()
			if ctx.Err() == nil {
				fmt.Fprintf(c.stderr, "podwire demo: service %s exited (%v)\n", demo.Services[i], state)
				cancel()
			}
		}()
	}
	fmt.Fprintf(c.stderr, "podwire demo: agent on %s capturing cgroup %s; services %v; Ctrl-C to stop\n", d.Addr(), cg, demo.Services)
	tapArgs := []string{"--agent", d.Addr()}
	if *duration > 0 {
		tapArgs = append(tapArgs, "--duration", duration.String())
	}
	if *filter != "" {
		tapArgs = append(tapArgs, *filter)
	}
	return c.tap(ctx, tapArgs)
}

// removeStaleDemos removes the cgroups (and processes) of demos whose
// podwire process is gone.
func removeStaleDemos(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "podwire-demo-*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "podwire-demo-"))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		cgroup.Remove(dir)
	}
}

// demoService runs one demo service (hidden command used by demo).
func (c *cli) demoService(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usageError("demo-service NAME")
	}
	return demo.Run(ctx, args[0])
}
