// Command loadrun measures the agent's cost end to end: wrk against nginx on
// loopback, without and with `podwire agent` capturing both, and prints the
// numbers BENCHMARKS.md records. Run it as root through `go tool mage benchLoad`.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podwire/podwire/agent/cgroup"
)

func main() {
	bin := flag.String("podwire", "bin/podwire", "podwire binary")
	dur := flag.Duration("duration", 10*time.Second, "length of each wrk run")
	conns := flag.Int("connections", 16, "wrk connections")
	threads := flag.Int("threads", 1, "wrk threads")
	flag.IntVar(&rounds, "rounds", 3, "rounds of without/with runs (medians are reported)")
	flag.Int64Var(&storeBytes, "store-bytes", 256<<20, "the agent's --store-bytes")
	flag.BoolVar(&pin, "pin", false, "run nginx and wrk on CPU 0 and the agent on CPU 1 (otherwise all share every CPU)")
	flag.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the agent during the loaded run to this file (and its allocations to FILE.allocs)")
	flag.Parse()
	if err := run(*bin, *dur, *conns, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "loadrun:", err)
		os.Exit(1)
	}
}

var (
	profile    string
	pin        bool
	storeBytes int64
	rounds     int
)

// pinned prefixes a command with taskset when -pin is set.
func pinned(cpu string, name string, args ...string) (string, []string) {
	if !pin {
		return name, args
	}
	return "taskset", append([]string{"-c", cpu, name}, args...)
}

type wrkResult struct {
	requests int64
	rps      float64
}

var (
	reqsRe = regexp.MustCompile(`(\d+) requests in`)
	rpsRe  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
)

func run(bin string, dur time.Duration, conns, threads int) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (eBPF)")
	}
	root, err := cgroup.Root()
	if err != nil {
		return err
	}
	cg := filepath.Join(root, "podwire-bench-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return err
	}
	defer cgroup.Remove(cg)
	cgfd, err := os.Open(cg)
	if err != nil {
		return err
	}
	defer cgfd.Close()
	inCg := func(name string, args ...string) *exec.Cmd {
		name, args = pinned("0", name, args...)
		c := exec.Command(name, args...)
		c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgfd.Fd())}
		return c
	}

	dir, err := os.MkdirTemp("", "podwire-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	body := strings.Repeat("x", 1023) + "\n"
	os.WriteFile(filepath.Join(dir, "1k"), []byte(body), 0o644)
	port := freePort()
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server {
    listen 127.0.0.1:%[2]d;
    root %[1]s;
  }
}
`, dir, port)
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644)
	nginx := inCg("nginx", "-c", filepath.Join(dir, "nginx.conf"))
	if err := nginx.Start(); err != nil {
		return fmt.Errorf("starting nginx: %w", err)
	}
	defer func() { nginx.Process.Signal(syscall.SIGQUIT); nginx.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListen(addr)
	url := "http://" + addr + "/1k"

	wrk := func() (wrkResult, error) {
		out, err := inCg("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", dur.String(), url).CombinedOutput()
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
		}
		var r wrkResult
		if m := reqsRe.FindSubmatch(out); m != nil {
			r.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
		if m := rpsRe.FindSubmatch(out); m != nil {
			r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
		}
		return r, nil
	}

	// Warm-up, then rounds that alternate without and with the agent: the
	// machine's speed drifts, so each pair is compared and medians reported.
	if _, err := wrk(); err != nil {
		return err
	}
	var bases, withs []wrkResult
	var last agentRun
	for r := 0; r < rounds; r++ {
		base, err := wrk()
		if err != nil {
			return err
		}
		run, err := withAgent(bin, cg, dur, wrk)
		if err != nil {
			return err
		}
		bases, withs, last = append(bases, base), append(withs, run.wrk), run
		fmt.Fprintf(os.Stderr, "round %d: without %.0f req/s, with %.0f req/s (%.3f)\n", r+1, base.rps, run.wrk.rps, run.wrk.rps/base.rps)
	}
	placement := "nginx, wrk and the agent share both CPUs"
	if pin {
		placement = "nginx and wrk on CPU 0, the agent on CPU 1"
	}
	base, with := median(bases), median(withs)
	fmt.Printf("wrk -t%d -c%d -d%s %s (1 KiB responses, nginx 1 worker; %s); %d rounds, medians\n", threads, conns, dur, url, placement, rounds)
	fmt.Printf("| run | req/s (median) | rounds |\n|---|---|---|\n")
	fmt.Printf("| without agent | %.0f | %s |\n| with agent | %.0f | %s |\n", base.rps, list(bases), with.rps, list(withs))
	fmt.Printf("\nratio with/without (medians): %.3f\n", with.rps/base.rps)
	fmt.Printf("last round: agent CPU %.2f s for %d requests = %.3f CPU-s per 10k requests (%.2f s in the kernel)\n", last.cpuSec, last.wrk.requests, last.cpuSec/float64(last.wrk.requests)*10000, last.sysSec)
	fmt.Printf("last round: agent page faults %d (%.1f per request)\n", last.faults, float64(last.faults)/float64(last.wrk.requests))
	fmt.Printf("last round: entries with a response %d of %d completed requests; lost: %d\n", last.answered, last.wrk.requests, last.lost)
	fmt.Printf("last round: kernel drops: ringbuf_full %d, truncated %d; tcp gaps %d\n", last.ringFull, last.truncated, last.gaps)
	fmt.Printf("last round: agent RSS %.1f MiB, store %.1f MiB, RSS beyond the store %.1f MiB\n", mib(last.rss), mib(last.store), mib(last.rss-int64(last.store)))
	return nil
}

// agentRun is what one loaded run with the agent measured.
type agentRun struct {
	wrk                       wrkResult
	cpuSec, sysSec            float64
	faults                    int64
	answered, lost            int64
	ringFull, truncated, gaps uint64
	rss                       int64
	store                     uint64
}

// withAgent starts an agent on the cgroup, runs wrk and measures the agent.
func withAgent(bin, cg string, dur time.Duration, wrk func() (wrkResult, error)) (agentRun, error) {
	var out agentRun
	api := fmt.Sprintf("127.0.0.1:%d", freePort())
	args := []string{"agent", "--listen", api, "--cgroup-root", cg, "--node-name", "bench", "--log-level", "warn", "--store-bytes", strconv.FormatInt(storeBytes, 10)}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	if profile != "" {
		args = append(args, "--pprof-addr", pprofAddr)
	}
	an, aa := pinned("1", bin, args...)
	agent := exec.Command(an, aa...)
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		return out, err
	}
	defer func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() }()
	waitListen(api)
	before := status(bin, api)
	cpu0, sys0, flt0 := cpuTicks(agent.Process.Pid), sysTicks(agent.Process.Pid), minorFaults(agent.Process.Pid)
	profDone := make(chan error, 1)
	if profile != "" {
		go func() {
			secs := int(dur.Seconds() * 0.8)
			profDone <- exec.Command("curl", "-sS", "-o", profile, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs)).Run()
		}()
	}
	w, err := wrk()
	if err != nil {
		return out, err
	}
	if profile != "" {
		if err := <-profDone; err != nil {
			return out, fmt.Errorf("fetching profile: %w", err)
		}
		if err := exec.Command("curl", "-sS", "-o", profile+".allocs", fmt.Sprintf("http://%s/debug/pprof/allocs", pprofAddr)).Run(); err != nil {
			return out, fmt.Errorf("fetching allocation profile: %w", err)
		}
	}
	// Let the pipeline drain what is still in the ring buffer.
	time.Sleep(2 * time.Second)
	cpu1, sys1, flt1 := cpuTicks(agent.Process.Pid), sysTicks(agent.Process.Pid), minorFaults(agent.Process.Pid)
	after := status(bin, api)
	out.wrk = w
	out.rss = rssBytes(agent.Process.Pid)
	out.store = after["store_bytes"]
	out.answered = int64(after["http1_entries"]-before["http1_entries"]) - int64(after["http1_unanswered"]-before["http1_unanswered"])
	out.lost = max(0, w.requests-out.answered)
	out.cpuSec = float64(cpu1-cpu0) / 100 // USER_HZ
	out.sysSec = float64(sys1-sys0) / 100
	out.faults = flt1 - flt0
	out.ringFull = after["bpf_ringbuf_full"] - before["bpf_ringbuf_full"]
	out.truncated = after["bpf_truncated_packets"] - before["bpf_truncated_packets"]
	out.gaps = after["tcp_gaps"] - before["tcp_gaps"]
	return out, nil
}

func median(rs []wrkResult) wrkResult {
	s := append([]wrkResult(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rps < s[j].rps })
	return s[len(s)/2]
}

func list(rs []wrkResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.0f", r.rps))
	}
	return strings.Join(parts, ", ")
}

func mib(n any) float64 {
	switch v := n.(type) {
	case int64:
		return float64(v) / (1 << 20)
	case uint64:
		return float64(v) / (1 << 20)
	}
	return 0
}

func status(bin, api string) map[string]uint64 {
	out, err := exec.Command(bin, "status", "--agent", api, "-o", "json").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "status:", err)
		return nil
	}
	var s struct {
		Counters map[string]json.Number `json:"counters"`
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, "status json:", err)
	}
	m := map[string]uint64{}
	for k, v := range s.Counters {
		n, _ := strconv.ParseUint(v.String(), 10, 64)
		m[k] = n
	}
	return m
}

// procStat returns fields of /proc/PID/stat after the command name, 0-based
// from the state field: 7 minflt, 11 utime, 12 stime (clock ticks).
func procStat(pid int, field int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, _ := strconv.ParseInt(f[field], 10, 64)
	return n
}

func cpuTicks(pid int) int64    { return procStat(pid, 11) + procStat(pid, 12) }
func sysTicks(pid int) int64    { return procStat(pid, 12) }
func minorFaults(pid int) int64 { return procStat(pid, 7) }

func rssBytes(pid int) int64 {
	f, _ := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListen(addr string) {
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
