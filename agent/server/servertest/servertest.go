// Package servertest runs a real Agent gRPC server in-process for tests.
package servertest

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/podwire/podwire/agent/server"
	"github.com/podwire/podwire/agent/store"
	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// Start serves st on 127.0.0.1 (any free port) with the options
// server.ServerOptions gives for cfg.Token, and returns the address. The
// server stops when the test ends.
func Start(tb testing.TB, st *store.Store, cfg server.Config) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listening: %v", err)
	}
	g := grpc.NewServer(server.ServerOptions(cfg.Token, nil)...)
	server.New(st, cfg).Register(g)
	go g.Serve(lis)
	tb.Cleanup(g.Stop)
	return lis.Addr().String()
}

// Client returns a plaintext client for the agent at addr, closed when the
// test ends.
func Client(tb testing.TB, addr string, opts ...grpc.DialOption) podwirev1.AgentClient {
	tb.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		tb.Fatalf("dialing %s: %v", addr, err)
	}
	tb.Cleanup(func() { cc.Close() })
	return podwirev1.NewAgentClient(cc)
}
