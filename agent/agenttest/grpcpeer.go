package agenttest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The gRPC peers speak a small echo service over real grpc-go, with raw
// bytes as messages (a codec that passes them through), so no generated
// code is needed. The bytes sent are valid protobuf: field 1, a string.

// rawCodec passes []byte messages through unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// protoString is a protobuf message with field 1 set to s.
func protoString(s string) []byte {
	return append([]byte{0x0a, byte(len(s))}, s...)
}

var echoStreams = []grpc.StreamDesc{
	{StreamName: "ServerStream", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
		var in []byte
		if err := ss.RecvMsg(&in); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			out := protoString(fmt.Sprintf("reply-%d", i))
			if err := ss.SendMsg(&out); err != nil {
				return err
			}
		}
		return nil
	}},
	{StreamName: "ClientStream", ClientStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
		n := 0
		for {
			var in []byte
			if err := ss.RecvMsg(&in); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
			n++
		}
		out := protoString("got " + strconv.Itoa(n))
		return ss.SendMsg(&out)
	}},
	{StreamName: "Bidi", ServerStreams: true, ClientStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
		for {
			var in []byte
			if err := ss.RecvMsg(&in); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := ss.SendMsg(&in); err != nil {
				return err
			}
		}
	}},
}

var echoService = grpc.ServiceDesc{
	ServiceName: "podwire.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Unary", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		if len(in) > 2 && string(in[2:]) == "missing" {
			return nil, status.Error(codes.NotFound, "no such item")
		}
		return &in, nil
	}}},
	Streams: echoStreams,
}

func grpcServer(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	s.RegisterService(&echoService, struct{}{})
	return s.Serve(ln)
}

// grpcClient makes n rounds of: two unary calls (one OK, one NOT_FOUND), a
// server-streaming call (1 request, 3 replies), a client-streaming call (3
// requests, 1 reply) and a bidi call (2 and 2).
func grpcClient(addr string, n int) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		in, out := protoString("item"), []byte(nil)
		if err := conn.Invoke(ctx, "/podwire.test.Echo/Unary", &in, &out); err != nil {
			return err
		}
		in = protoString("missing")
		if err := conn.Invoke(ctx, "/podwire.test.Echo/Unary", &in, &out); status.Code(err) != codes.NotFound {
			return fmt.Errorf("missing item: %v", err)
		}
		for j, desc := range echoStreams {
			sends := []int{1, 3, 2}[j]
			st, err := conn.NewStream(ctx, &echoStreams[j], "/podwire.test.Echo/"+desc.StreamName)
			if err != nil {
				return err
			}
			for k := 0; k < sends; k++ {
				m := protoString("req-" + strconv.Itoa(k))
				if err := st.SendMsg(&m); err != nil {
					return err
				}
			}
			if err := st.CloseSend(); err != nil {
				return err
			}
			for {
				var m []byte
				if err := st.RecvMsg(&m); err == io.EOF {
					break
				} else if err != nil {
					return err
				}
			}
		}
	}
	return nil
}
