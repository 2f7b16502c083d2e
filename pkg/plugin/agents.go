package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/podwire/podwire/pkg/plugin/settings"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// maxRecvBytes bounds one message from an agent; GetEntry carries whole
// bodies.
const maxRecvBytes = 256 << 20

// agent is one agent's connection. Connections are lazy: an agent that
// cannot be reached shows as an error on its first call.
type agent struct {
	addr   string
	cc     *grpc.ClientConn
	client podwirev1.AgentClient
	// node is the agent's node name once an answer told it ("" before).
	node atomic.Pointer[string]
	// tls and clientCert say how it is dialled, to explain failures.
	tls, clientCert bool
}

// Node returns the node name learnt from the agent's answers, or "".
func (a *agent) Node() string {
	if p := a.node.Load(); p != nil {
		return *p
	}
	return ""
}

func (a *agent) setNode(n string) {
	if n != "" && a.Node() != n {
		a.node.Store(&n)
	}
}

// name is the agent's address and, when known, its node.
func (a *agent) name() string {
	if n := a.Node(); n != "" {
		return a.addr + " (" + n + ")"
	}
	return a.addr
}

// lookupFunc resolves a host name to its addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// pool holds the connections of one data source instance: a fixed list,
// or the A/AAAA records of a DNS name, looked up again after the cache
// time so that new nodes appear and gone ones are closed.
type pool struct {
	s      *settings.Settings
	opts   []grpc.DialOption
	lookup lookupFunc
	now    func() time.Time

	mu       sync.Mutex
	conns    map[string]*agent
	order    []*agent // current agents, by address
	resolved time.Time
	capped   int // records beyond MaxAgents in the last resolution
	closed   bool
	// done is closed by close, ending live streams of the old settings.
	done chan struct{}
}

// errClosed is returned after the data source instance was disposed.
var errClosed = errors.New("data source instance is closed (its settings changed)")

// dnsError is a failure to resolve agentsDnsName.
type dnsError struct {
	name string
	err  error
}

func (e *dnsError) Error() string {
	var de *net.DNSError
	if errors.As(e.err, &de) && de.IsTimeout {
		return fmt.Sprintf("agentsDnsName %q does not resolve: the DNS server did not answer in time (%v)", e.name, e.err)
	}
	return fmt.Sprintf("agentsDnsName %q does not resolve (%v): check the name and namespace of the agents' headless Service", e.name, e.err)
}

func (e *dnsError) Unwrap() error { return e.err }

// dialOptions are the gRPC options every agent connection uses.
func dialOptions(s *settings.Settings, userAgent string) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if s.TLS != nil {
		creds = credentials.NewTLS(s.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		grpc.WithUserAgent(userAgent),
	}
	if s.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(s.Token)))
	}
	return opts
}

// bearer sends "authorization: Bearer <token>" with every call. It does not
// insist on TLS: agents inside a cluster often serve plaintext, and the
// agent accepts tokens over plaintext.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

func newPool(s *settings.Settings, opts []grpc.DialOption) (*pool, error) {
	r := &net.Resolver{PreferGo: true}
	p := &pool{
		s:     s,
		opts:  opts,
		conns: make(map[string]*agent),
		done:  make(chan struct{}),
		now:   time.Now,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return r.LookupNetIP(ctx, "ip", host)
		},
	}
	if s.DNSName == "" {
		if err := p.setAddrs(s.Agents); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// agents returns the current agents. For a DNS name it resolves again when
// the cache time has passed; when that fails and an earlier resolution
// exists, it keeps using it and returns the failure as a warning.
func (p *pool) agents(ctx context.Context) (list []*agent, warning, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, errClosed
	}
	if p.s.DNSName != "" && (p.resolved.IsZero() || p.now().Sub(p.resolved) >= p.s.DNSCache) {
		if rerr := p.resolveLocked(ctx); rerr != nil {
			if len(p.order) == 0 {
				return nil, nil, rerr
			}
			warning = fmt.Errorf("%w; using the %d agents found before", rerr, len(p.order))
		}
	}
	if p.capped > 0 {
		w := fmt.Errorf("agentsDnsName %q has %d more records than the %d agents supported; they are not queried", p.s.DNSName, p.capped, settings.MaxAgents)
		warning = errors.Join(warning, w)
	}
	return slices.Clone(p.order), warning, nil
}

func (p *pool) resolveLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := p.lookup(ctx, p.s.DNSHost)
	if err != nil {
		return &dnsError{name: p.s.DNSName, err: err}
	}
	seen := make(map[netip.Addr]bool, len(ips))
	var addrs []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if !seen[ip] {
			seen[ip] = true
			addrs = append(addrs, ip)
		}
	}
	if len(addrs) == 0 {
		return &dnsError{name: p.s.DNSName, err: errors.New("no A or AAAA records")}
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	p.capped = 0
	if len(addrs) > settings.MaxAgents {
		p.capped = len(addrs) - settings.MaxAgents
		addrs = addrs[:settings.MaxAgents]
	}
	hostports := make([]string, len(addrs))
	for i, a := range addrs {
		hostports[i] = net.JoinHostPort(a.String(), p.s.DNSPort)
	}
	if err := p.setAddrsLocked(hostports); err != nil {
		return err
	}
	p.resolved = p.now()
	return nil
}

func (p *pool) setAddrs(addrs []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setAddrsLocked(addrs)
}

// setAddrsLocked makes the agent list addrs: new addresses get a
// connection, addresses no longer listed have theirs closed.
func (p *pool) setAddrsLocked(addrs []string) error {
	keep := make(map[string]bool, len(addrs))
	order := make([]*agent, 0, len(addrs))
	for _, addr := range addrs {
		keep[addr] = true
		a := p.conns[addr]
		if a == nil {
			cc, err := grpc.NewClient("passthrough:///"+addr, p.opts...)
			if err != nil {
				return fmt.Errorf("agent %s: %w", addr, err)
			}
			a = &agent{addr: addr, cc: cc, client: podwirev1.NewAgentClient(cc),
				tls: p.s.TLS != nil, clientCert: p.s.TLS != nil && len(p.s.TLS.Certificates) > 0}
			p.conns[addr] = a
		}
		order = append(order, a)
	}
	for addr, a := range p.conns {
		if !keep[addr] {
			a.cc.Close()
			delete(p.conns, addr)
		}
	}
	slices.SortFunc(order, func(a, b *agent) int {
		if a.addr < b.addr {
			return -1
		} else if a.addr > b.addr {
			return 1
		}
		return 0
	})
	p.order = order
	return nil
}

// close closes every connection; later calls of agents fail.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		close(p.done)
	}
	p.closed = true
	for addr, a := range p.conns {
		a.cc.Close()
		delete(p.conns, addr)
	}
	p.order = nil
}
