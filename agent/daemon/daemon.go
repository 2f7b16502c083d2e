// Package daemon runs a whole agent: capture pipeline, store and API server.
package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podwire/podwire/agent/capture"
	"github.com/podwire/podwire/agent/cgroup"
	"github.com/podwire/podwire/agent/kube"
	"github.com/podwire/podwire/agent/pipeline"
	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Options configure an agent; zero values take the defaults noted.
type Options struct {
	Listen        string // default 127.0.0.1:7700
	CgroupRoot    string // default the cgroup v2 root
	NodeName      string // required
	Version       string
	StoreBytes    int64 // default 256 MiB
	MaxBodyBytes  int   // default 1 MiB
	RingBytes     int   // default 32 MiB
	SkipPorts     []uint16
	UDPPorts      []uint16 // default 53 (DNS); an empty, non-nil slice for none
	RedactHeaders []string
	RedactBody    []string
	NoRedact      bool
	Token         string
	TLS           *tls.Config
	MaxConns      int
	IdleTimeout   time.Duration
	// Kubeconfig names the API server for Kubernetes identity; "" uses
	// the in-cluster config in a pod, and none (cgroup names only)
	// elsewhere.
	Kubeconfig string
	// CaptureNamespaces, when set, keeps only traffic of pods in these
	// namespaces; SkipNamespaces drops that of pods in these.
	CaptureNamespaces, SkipNamespaces []string
	Log                               *slog.Logger
}

// heapMargin is the heap allowed beyond the store's accounting: buffers,
// connections, indexes, garbage between collections.
const heapMargin = 80 << 20

// ErrUsage wraps errors in the options.
var ErrUsage = errors.New("bad option")

// Daemon is a running agent. Stop must be called to detach the programs.
type Daemon struct {
	log *slog.Logger
	p   *pipeline.Pipeline
	st  *store.Store
	srv *server.Server
	gs  *grpc.Server
	ln  net.Listener

	kube     *kube.Watcher
	stopped  chan struct{} // closed when the pipeline's Run returns
	runErr   error         // what Run returned; read after stopped
	stopOnce sync.Once
	stopErr  error
}

// Start attaches capture and serves the API.
func Start(o Options) (*Daemon, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.NodeName == "" {
		return nil, fmt.Errorf("%w: the node name is empty", ErrUsage)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7700"
	}
	if o.StoreBytes == 0 {
		o.StoreBytes = 256 << 20
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	// The store is most of the heap and lives long: without a limit the
	// collector lets the heap grow to twice it. Keep garbage to a margin.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(o.StoreBytes*9/8 + heapMargin)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	apiPort, _ := strconv.Atoi(portStr)
	skip := append([]uint16{uint16(apiPort)}, o.SkipPorts...)

	st := store.New(store.Config{Node: o.NodeName, MaxBytes: o.StoreBytes})
	var cfg pipeline.Config
	cfg.Node = o.NodeName
	cfg.Capture.CgroupPath = o.CgroupRoot
	cfg.Capture.RingBytes = o.RingBytes
	cfg.Capture.SkipPorts = skip
	cfg.Capture.UDPPorts = o.UDPPorts
	if o.UDPPorts == nil {
		cfg.Capture.UDPPorts = []uint16{53}
	}
	cfg.TCP.MaxConns = o.MaxConns
	cfg.TCP.IdleTimeout = o.IdleTimeout
	cfg.Dissect.HTTP1.MaxBodyBytes = o.MaxBodyBytes
	cfg.Dissect.HTTP2.MaxBodyBytes = o.MaxBodyBytes
	cfg.Redact.Headers = o.RedactHeaders
	cfg.Redact.BodyPatterns = o.RedactBody
	cfg.Redact.Disable = o.NoRedact
	kw, err := identity(o, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	cfg.Identify = kw
	cfg.CaptureNamespaces, cfg.SkipNamespaces = o.CaptureNamespaces, o.SkipNamespaces
	p, err := pipeline.New(cfg, st)
	if err != nil {
		kw.Stop()
		ln.Close()
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if err := p.Open(); err != nil {
		kw.Stop()
		ln.Close()
		return nil, err
	}
	started := time.Now()
	kernel := kernelRelease()
	var d *Daemon // the Status func below reads the capture state from it
	srv := server.New(st, server.Config{
		Node:    o.NodeName,
		Version: o.Version,
		Token:   o.Token,
		Status: func() *podwirev1.StatusResponse {
			resp := &podwirev1.StatusResponse{
				Node:       o.NodeName,
				Version:    o.Version,
				Kernel:     kernel,
				Counters:   p.Counters(),
				Started:    timestamppb.New(started),
				Uptime:     durationpb.New(time.Since(started)),
				CgroupRoot: p.Capture().Cgroup(),
				Capture:    captureState(d),
			}
			for k, v := range kw.Counters() {
				resp.Counters[k] = v
			}
			for _, pr := range p.Capture().Programs() {
				resp.Programs = append(resp.Programs, &podwirev1.Program{Name: pr.Name, Type: pr.Type, Attach: pr.Attach})
			}
			return resp
		},
	})
	gs := grpc.NewServer(server.ServerOptions(o.Token, o.TLS)...)
	srv.Register(gs)
	d = &Daemon{log: log, p: p, st: st, srv: srv, gs: gs, ln: ln, kube: kw, stopped: make(chan struct{})}
	go func() {
		d.runErr = p.Run()
		if d.runErr != nil {
			log.Error("capture stopped", "err", d.runErr)
		}
		close(d.stopped)
	}()
	go func() {
		if err := gs.Serve(ln); err != nil {
			log.Error("serving API", "err", err)
		}
	}()
	log.Info("capturing", "node", o.NodeName, "cgroup", p.Capture().Cgroup(), "listen", ln.Addr().String())
	return d, nil
}

// Addr is the API's listening address.
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// Store is the agent's entry store.
func (d *Daemon) Store() *store.Store { return d.st }

// Counters are the pipeline's counters and the identity index's.
func (d *Daemon) Counters() map[string]uint64 {
	c := d.p.Counters()
	for k, v := range d.kube.Counters() {
		c[k] = v
	}
	return c
}

// identity starts what names the ends of connections: informers against
// the API server when there is one, cgroup names alone otherwise.
func identity(o Options, log *slog.Logger) (*kube.Watcher, error) {
	var resolver *cgroup.Resolver
	if root, err := cgroup.Root(); err != nil {
		log.Warn("no cgroup names for local sockets", "err", err)
	} else if resolver, err = cgroup.NewResolver(root); err != nil {
		log.Warn("no cgroup names for local sockets", "err", err)
	}
	rc, err := kube.RESTConfig(o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if rc == nil {
		log.Info("no Kubernetes API server (no --kubeconfig, not in a pod): entries carry addresses and local process names")
		return kube.Offline(o.NodeName, resolver), nil
	}
	w, err := kube.Watch(rc, kube.Config{Node: o.NodeName}, resolver)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	log.Info("watching the Kubernetes API server for identity", "host", rc.Host)
	return w, nil
}

// Done is closed when capture stops, by Stop or because reading failed;
// Err then says why.
func (d *Daemon) Done() <-chan struct{} { return d.stopped }

// Err is the error capture stopped with, once Done is closed.
func (d *Daemon) Err() error {
	select {
	case <-d.stopped:
		return d.runErr
	default:
		return nil
	}
}

// Stop ends the API first (live watches are told the agent is shutting
// down), then detaches capture and waits for the pipeline to flush. It may
// be called more than once.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		d.srv.Close()
		stopped := make(chan struct{})
		go func() { d.gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			d.gs.Stop()
		}
		err := d.p.Close()
		<-d.stopped
		d.kube.Stop()
		if d.runErr != nil && err == nil {
			err = d.runErr
		}
		d.stopErr = err
	})
	return d.stopErr
}

func captureState(d *Daemon) string {
	if d == nil {
		return "starting"
	}
	select {
	case <-d.stopped:
		if d.runErr != nil {
			return "stopped: " + d.runErr.Error()
		}
		return "stopped"
	default:
		return "running"
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// IsPermission reports whether err says capture needs more privileges.
func IsPermission(err error) bool { return errors.Is(err, capture.ErrPermission) }
