package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/podwire/podwire/agent/daemon"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// agentOptions are the flags of `podwire agent`.
type agentOptions struct {
	listen       string
	cgroupRoot   string
	nodeName     string
	storeBytes   int64
	maxBodyBytes int
	ringBytes    int
	skipPorts    []uint
	udpPorts     []uint
	redactHdrs   []string
	redactBody   []string
	noRedact     bool
	token        string
	tlsCert      string
	tlsKey       string
	maxConns     int
	idleTimeout  time.Duration
	duration     time.Duration
	logLevel     string
	pprofAddr    string
	kubeconfig   string
	captureNS    []string
	skipNS       []string
}

func agentFlags(o *agentOptions) *pflag.FlagSet {
	host, _ := os.Hostname()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7700", "address of the gRPC API (host:port)")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", "", "cgroup v2 directory whose subtree is captured (default: the cgroup v2 root)")
	fs.StringVar(&o.nodeName, "node-name", envOr("NODE_NAME", host), "node name put on entries and ids")
	fs.Int64Var(&o.storeBytes, "store-bytes", 256<<20, "memory for stored entries; oldest are evicted beyond it")
	fs.IntVar(&o.maxBodyBytes, "max-body-bytes", 1<<20, "body bytes kept per request or response")
	fs.IntVar(&o.ringBytes, "ring-bytes", 32<<20, "size of the kernel ring buffer (power of two)")
	fs.UintSliceVar(&o.skipPorts, "skip-port", nil, "TCP port never captured (repeatable); the API port always is")
	fs.UintSliceVar(&o.udpPorts, "udp-port", []uint{53}, "UDP port whose datagrams are captured (repeatable; DNS)")
	fs.StringSliceVar(&o.redactHdrs, "redact-header", nil, "extra header name whose value is redacted (repeatable)")
	fs.StringSliceVar(&o.redactBody, "redact-body", nil, "regular expression whose matches in bodies are redacted (repeatable)")
	fs.BoolVar(&o.noRedact, "no-redact", false, "keep Authorization, Cookie and the other secret headers as captured")
	fs.StringVar(&o.token, "token", os.Getenv("PODWIRE_TOKEN"), "bearer token clients must present")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate for the API")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS key for the API")
	fs.IntVar(&o.maxConns, "max-conns", 65536, "TCP connections tracked at once")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 2*time.Minute, "a connection idle this long is closed")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until SIGINT/SIGTERM)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's net/http/pprof on this address (debugging; keep it on loopback)")
	fs.StringSliceVar(&o.captureNS, "capture-namespace", nil, "capture only traffic of pods in this namespace (repeatable; needs Kubernetes identity)")
	fs.StringSliceVar(&o.skipNS, "skip-namespace", nil, "do not capture traffic of pods in this namespace (repeatable)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server that names pods and services (default: in-cluster config in a pod, else none)")
	return fs
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// daemonOptions checks the flags and turns them into the agent's options.
func (o *agentOptions) daemonOptions() (daemon.Options, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return daemon.Options{}, usageError("--log-level: %v", err)
	}
	d := daemon.Options{
		Listen:            o.listen,
		CgroupRoot:        o.cgroupRoot,
		NodeName:          o.nodeName,
		Version:           version,
		StoreBytes:        o.storeBytes,
		MaxBodyBytes:      o.maxBodyBytes,
		RingBytes:         o.ringBytes,
		RedactHeaders:     o.redactHdrs,
		RedactBody:        o.redactBody,
		NoRedact:          o.noRedact,
		Token:             o.token,
		MaxConns:          o.maxConns,
		IdleTimeout:       o.idleTimeout,
		Kubeconfig:        o.kubeconfig,
		CaptureNamespaces: o.captureNS,
		SkipNamespaces:    o.skipNS,
		Log:               slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	for _, p := range o.skipPorts {
		if p == 0 || p > 65535 {
			return d, usageError("--skip-port %d: not a TCP port", p)
		}
		d.SkipPorts = append(d.SkipPorts, uint16(p))
	}
	d.UDPPorts = []uint16{}
	for _, p := range o.udpPorts {
		if p == 0 || p > 65535 {
			return d, usageError("--udp-port %d: not a UDP port", p)
		}
		d.UDPPorts = append(d.UDPPorts, uint16(p))
	}
	tlsCfg, err := agentServerTLS(o.tlsCert, o.tlsKey)
	if err != nil {
		return d, err
	}
	d.TLS = tlsCfg
	return d, nil
}

// runAgent runs `podwire agent`.
func runAgent(args []string) error {
	var o agentOptions
	fs := agentFlags(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usageError("%v", err)
	}
	if fs.NArg() > 0 {
		return usageError("podwire agent takes no arguments, got %q", fs.Args())
	}
	opts, err := o.daemonOptions()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if o.pprofAddr != "" {
		if _, port, err := net.SplitHostPort(o.pprofAddr); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 65536 {
				opts.SkipPorts = append(opts.SkipPorts, uint16(n))
			}
		}
		go func() {
			if err := http.ListenAndServe(o.pprofAddr, nil); err != nil {
				opts.Log.Error("serving pprof", "err", err)
			}
		}()
	}
	d, err := daemon.Start(opts)
	if err != nil {
		if daemon.IsPermission(err) {
			return fmt.Errorf("podwire agent: %w; run it as root (sudo podwire agent) or grant those capabilities", err)
		}
		if errors.Is(err, daemon.ErrUsage) {
			return usageError("%v", err)
		}
		return err
	}
	select {
	case <-ctx.Done():
		opts.Log.Info("stopping")
		return d.Stop()
	case <-d.Done():
		// Capture ended on its own: say why rather than serve an empty store.
		d.Stop()
		return fmt.Errorf("capture stopped: %w", d.Err())
	}
}

// agentServerTLS loads the API's certificate; nil when none is configured.
func agentServerTLS(cert, key string) (*tls.Config, error) {
	if cert == "" && key == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, usageError("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("loading TLS key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
