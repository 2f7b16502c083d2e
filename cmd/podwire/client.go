package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// defaultAgent is the agent a client command talks to when neither
// --agent nor PODWIRE_AGENT names one.
const defaultAgent = "127.0.0.1:7700"

// defaultPort is added to an --agent address that has none.
const defaultPort = "7700"

// maxRecvBytes bounds one message from an agent; GetEntry carries whole
// bodies.
const maxRecvBytes = 256 << 20

// clientFlags are the flags every command that talks to agents takes.
type clientFlags struct {
	agents      []string
	token       string
	tlsCA       string
	tlsInsecure bool
	tls         bool
	timeout     time.Duration
}

func (cf *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVarP(&cf.agents, "agent", "a", nil,
		"agent address host:port; repeat or separate with commas (env PODWIRE_AGENT; default "+defaultAgent+")")
	fs.StringVar(&cf.token, "token", "", "bearer token for the agents (env PODWIRE_TOKEN)")
	fs.BoolVar(&cf.tls, "tls", false, "connect with TLS, verifying the agents with the system roots")
	fs.StringVar(&cf.tlsCA, "tls-ca", "", "connect with TLS, verifying the agents with this PEM CA bundle")
	fs.BoolVar(&cf.tlsInsecure, "tls-insecure", false, "connect with TLS without verifying the agents' certificates")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "deadline for each call to an agent (tap: for connecting only)")
}

// agentConn is one agent's connection.
type agentConn struct {
	addr   string
	cc     *grpc.ClientConn
	client podwirev1.AgentClient
}

// agentList returns the agents to talk to: --agent, else PODWIRE_AGENT,
// else the default, with the default port added where missing and
// duplicates removed.
func (c *cli) agentList(cf *clientFlags) []string {
	raw := cf.agents
	if len(raw) == 0 {
		if env := c.getenv("PODWIRE_AGENT"); strings.TrimSpace(env) != "" {
			raw = strings.Split(env, ",")
		}
	}
	if len(raw) == 0 {
		raw = []string{defaultAgent}
	}
	var out []string
	seen := make(map[string]bool)
	for _, a := range raw {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(strings.Trim(a, "[]"), defaultPort)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// dial makes a client connection to every agent. Connections are lazy: an
// unreachable agent shows up as an Unavailable error on its first call.
func (c *cli) dial(cf *clientFlags) ([]*agentConn, error) {
	creds, err := transportCreds(cf)
	if err != nil {
		return nil, err
	}
	token := cf.token
	if token == "" {
		token = c.getenv("PODWIRE_TOKEN")
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		grpc.WithUserAgent("podwire-cli/" + cliVersion()),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	var conns []*agentConn
	for _, addr := range c.agentList(cf) {
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("agent %s: %w", addr, err)
		}
		conns = append(conns, &agentConn{addr: addr, cc: cc, client: podwirev1.NewAgentClient(cc)})
	}
	return conns, nil
}

func closeAll(conns []*agentConn) {
	for _, a := range conns {
		a.cc.Close()
	}
}

func transportCreds(cf *clientFlags) (credentials.TransportCredentials, error) {
	if !cf.tls && cf.tlsCA == "" && !cf.tlsInsecure {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cf.tlsInsecure}
	if cf.tlsCA != "" {
		pem, err := os.ReadFile(cf.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("reading TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading TLS CA: no PEM certificate in %s", cf.tlsCA)
		}
		cfg.RootCAs = pool
	}
	return credentials.NewTLS(cfg), nil
}

// bearer sends "authorization: Bearer <token>" with every call. It does not
// insist on TLS: agents inside a cluster often serve plaintext.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// forEach calls fn for every agent in parallel, each with its own deadline
// when timeout > 0, and returns fn's errors by agent index.
func forEach(ctx context.Context, conns []*agentConn, timeout time.Duration, fn func(ctx context.Context, i int, a *agentConn) error) []error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, a := range conns {
		wg.Go(func() {
			cctx := ctx
			if timeout > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			errs[i] = fn(cctx, i, a)
		})
	}
	wg.Wait()
	return errs
}

// filterError is a filter the agent refused; its message is the agent's,
// with the position and a caret.
type filterError struct{ msg string }

func (e *filterError) Error() string { return e.msg }

// asFilterError returns the filter error err carries, if it is one.
func asFilterError(err error) (*filterError, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "filter:") {
		return nil, false
	}
	return &filterError{msg: st.Message()}, true
}

// describe turns an error from a call to agent addr into one line a person
// can act on.
func describe(addr string, err error, timeout time.Duration) string {
	if errors.Is(err, context.Canceled) {
		return fmt.Sprintf("agent %s: canceled", addr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Sprintf("agent %s: %v", addr, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Sprintf("cannot reach agent %s: %s", addr, cleanTransport(msg))
	case codes.DeadlineExceeded:
		if timeout > 0 {
			return fmt.Sprintf("agent %s: no answer within %s (--timeout)", addr, timeout)
		}
		return fmt.Sprintf("agent %s: deadline exceeded", addr)
	case codes.Unauthenticated:
		return fmt.Sprintf("agent %s refused the call: %s (check --token or PODWIRE_TOKEN)", addr, msg)
	case codes.Canceled:
		return fmt.Sprintf("agent %s: canceled", addr)
	case codes.Unimplemented:
		return fmt.Sprintf("agent %s does not support this call (older agent?): %s", addr, msg)
	}
	return fmt.Sprintf("agent %s: %s", addr, msg)
}

// cleanTransport strips gRPC's wrapping from a connection error, leaving
// for example "dial tcp 127.0.0.1:7700: connect: connection refused".
func cleanTransport(msg string) string {
	msg = strings.TrimPrefix(msg, "connection error: desc = ")
	msg = strings.Trim(msg, `"`)
	msg = strings.TrimPrefix(msg, "transport: Error while dialing: ")
	msg = strings.TrimPrefix(msg, "transport: ")
	if msg == "" {
		return "unavailable"
	}
	return msg
}

// answered sorts forEach's errors for commands that merge what every agent
// sends: it returns the indexes of the agents that answered, warning on
// stderr about the others. A bad filter, a lone agent's failure and no
// answer at all are errors.
func (c *cli) answered(conns []*agentConn, errs []error, timeout time.Duration) ([]int, error) {
	var ok []int
	for i, err := range errs {
		if err == nil {
			ok = append(ok, i)
			continue
		}
		if fe, isFilter := asFilterError(err); isFilter {
			return nil, fe
		}
		if len(conns) == 1 {
			return nil, errors.New(describe(conns[i].addr, err, timeout))
		}
		fmt.Fprintf(c.stderr, "warning: %s\n", describe(conns[i].addr, err, timeout))
	}
	if len(ok) == 0 {
		return nil, &exitError{code: exitFail, msg: "podwire: no agent answered"}
	}
	return ok, nil
}
