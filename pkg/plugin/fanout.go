package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/tracing"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// answer is one agent's result of a fanned-out call.
type answer[T any] struct {
	agent *agent
	val   T
	err   error
}

// fanOut calls fn on every agent in parallel, each under its own timeout
// (and the caller's deadline), in a span named after op. Answers come back
// in the agents' order.
func fanOut[T any](ctx context.Context, agents []*agent, timeout time.Duration, op string, fn func(ctx context.Context, a *agent) (T, error)) []answer[T] {
	out := make([]answer[T], len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			out[i] = callAgent(ctx, a, timeout, op, fn)
		})
	}
	wg.Wait()
	return out
}

func callAgent[T any](ctx context.Context, a *agent, timeout time.Duration, op string, fn func(ctx context.Context, a *agent) (T, error)) answer[T] {
	ctx, span := tracing.DefaultTracer().Start(ctx, "podwire.agent."+op, trace.WithAttributes(
		attribute.String("podwire.agent.address", a.addr),
		attribute.String("podwire.agent.node", a.Node()),
	))
	defer span.End()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	v, err := fn(ctx, a)
	if err != nil && status.Code(err) == codes.Canceled {
		backend.Logger.FromContext(ctx).Debug("agent call canceled", "op", op, "agent", a.addr, "duration", time.Since(start))
	} else if err != nil {
		code := status.Code(err)
		span.SetStatus(otelcodes.Error, code.String())
		if code == codes.InvalidArgument {
			// The message quotes the filter, which may hold header values.
			backend.Logger.FromContext(ctx).Debug("agent refused the request", "op", op, "agent", a.addr, "code", code.String())
		} else {
			span.RecordError(err)
			backend.Logger.FromContext(ctx).Warn("agent call failed", "op", op, "agent", a.addr, "code", code.String(), "err", describe(a, err, timeout), "duration", time.Since(start))
		}
	} else {
		backend.Logger.FromContext(ctx).Debug("agent call", "op", op, "agent", a.addr, "duration", time.Since(start))
	}
	return answer[T]{agent: a, val: v, err: err}
}

// describe turns an error of a call to a into one line a person can act
// on; it names the agent.
func describe(a *agent, err error, timeout time.Duration) string {
	return "agent " + a.name() + ": " + a.explain(err, timeout)
}

// explain says what err means for a user, with the likely fix for the
// common setup mistakes.
func (a *agent) explain(err error, timeout time.Duration) string {
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		msg = cleanTransport(msg)
		lower := strings.ToLower(msg)
		if a.tls && !a.clientCert && (strings.Contains(lower, "broken pipe") || strings.Contains(lower, "connection reset") || strings.HasSuffix(lower, "eof")) {
			return "TLS: the agent closed the connection after the handshake; it probably wants a client certificate: turn tlsAuth on with tlsClientCert and tlsClientKey (" + msg + ")"
		}
		return unavailable(msg, a.tls)
	case codes.DeadlineExceeded:
		if timeout > 0 {
			return fmt.Sprintf("no answer within %s (timeoutSeconds, or the query's deadline)", timeout)
		}
		return "no answer before the deadline"
	case codes.Unauthenticated:
		return "the agent refused the token (" + msg + "): set token in the data source's secure settings to the agents' --token"
	case codes.Canceled:
		return "canceled"
	case codes.Unimplemented:
		return "the agent does not support this call (an older agent version?): " + msg
	}
	return msg
}

// unavailable explains a transport failure; tlsOn says whether the agent
// was dialled with TLS.
func unavailable(msg string, tlsOn bool) string {
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "first record does not look like a tls handshake"):
		return "TLS mismatch: the agent serves plaintext but TLS is on in the settings; turn tls off, or start the agents with TLS (" + msg + ")"
	case strings.Contains(lower, "certificate signed by unknown authority"):
		return "TLS: the agent's certificate is signed by an unknown authority; set tlsCACert to the CA that signed it, or tlsSkipVerify (" + msg + ")"
	case strings.Contains(lower, "certificate is valid for") || strings.Contains(lower, "doesn't contain any ip sans") ||
		strings.Contains(lower, "not valid for any names"):
		return "TLS: the agent's certificate is not valid for the address dialled; set tlsServerName to a name in the certificate (" + msg + ")"
	case strings.Contains(lower, "certificate required") || strings.Contains(lower, "bad certificate") || strings.Contains(lower, "unknown certificate authority"):
		return "TLS: the agent wants a client certificate it trusts; turn tlsAuth on with tlsClientCert and tlsClientKey (" + msg + ")"
	case !tlsOn && (strings.Contains(lower, "server preface") || strings.Contains(lower, "frame too large") ||
		strings.Contains(lower, "http2: frame") || strings.Contains(lower, "malformed http response")):
		return "TLS mismatch: the agent did not answer plaintext HTTP/2; it probably serves TLS, so turn tls on in the settings (" + msg + ")"
	case strings.Contains(lower, "x509:") || strings.Contains(lower, "tls:"):
		return "TLS handshake failed: " + msg
	case strings.Contains(lower, "connection refused"):
		return "connection refused: nothing listens there; is the agent running and the port right? (" + msg + ")"
	case strings.Contains(lower, "no such host"):
		return "the agent's host name does not resolve (" + msg + ")"
	}
	return "cannot reach the agent: " + msg
}

// cleanTransport strips gRPC's wrapping from a connection error.
func cleanTransport(msg string) string {
	msg = strings.TrimPrefix(msg, "connection error: desc = ")
	msg = strings.Trim(msg, `"`)
	msg = strings.TrimPrefix(msg, "transport: Error while dialing: ")
	msg = strings.TrimPrefix(msg, "transport: authentication handshake failed: ")
	msg = strings.TrimPrefix(msg, "transport: ")
	if msg == "" {
		return "unavailable"
	}
	return msg
}

// notices collects the warnings of one query.
type notices []data.Notice

func (n *notices) warn(format string, args ...any) {
	*n = append(*n, data.Notice{Severity: data.NoticeSeverityWarning, Text: fmt.Sprintf(format, args...)})
}

func (n *notices) info(format string, args ...any) {
	*n = append(*n, data.Notice{Severity: data.NoticeSeverityInfo, Text: fmt.Sprintf(format, args...)})
}

// attach puts the notices on the first frame (Grafana shows a frame's
// notices above the panel).
func (n notices) attach(frames data.Frames) {
	if len(n) == 0 || len(frames) == 0 {
		return
	}
	frames[0].AppendNotices(n...)
}

// queryError is an error that belongs to one query (a bad filter, a bad
// option), answered with a bad-request DataResponse.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func badQuery(format string, args ...any) error {
	return &queryError{msg: fmt.Sprintf(format, args...)}
}

// collect splits answers into the good ones and warnings about the rest. A
// call the agents refused as invalid (a filter or option they do not take)
// is an error of the query; so is every agent failing.
func collect[T any](answers []answer[T], timeout time.Duration, op string, n *notices) ([]answer[T], error) {
	var good []answer[T]
	var failures []string
	for _, a := range answers {
		if a.err == nil {
			good = append(good, a)
			continue
		}
		if status.Code(a.err) == codes.InvalidArgument {
			return nil, &queryError{msg: status.Convert(a.err).Message()}
		}
		d := describe(a.agent, a.err, timeout)
		failures = append(failures, d)
		n.warn("%s", d)
	}
	if len(good) == 0 && len(failures) > 0 {
		if len(failures) == 1 {
			return nil, fmt.Errorf("%s failed: %s", op, failures[0])
		}
		return nil, fmt.Errorf("%s failed on all %d agents: %s", op, len(failures), strings.Join(failures, "; "))
	}
	return good, nil
}
