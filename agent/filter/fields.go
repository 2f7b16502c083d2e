package filter

import (
	"unsafe"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/podwire/podwire/agent/entry"
)

// Field is one name the filter language knows.
type Field struct {
	// Name as written in a filter, for example "src.namespace".
	Name string
	// Type in CEL notation: "string", "int", "bool", "duration",
	// "timestamp", "map(string, string)".
	Type string
	// Doc is a one-line description.
	Doc string
	// Example is a filter that uses the name.
	Example string
}

// field is a Field with its CEL type and how to read it from an entry.
type field struct {
	Field
	typ *cel.Type
	get func(e *entry.Entry) ref.Val
}

// fields is every name of the language, in documentation order.
var fields = buildFields()

// resolvers maps a name to its reader, for the activation.
var resolvers = func() map[string]func(*entry.Entry) ref.Val {
	m := make(map[string]func(*entry.Entry) ref.Val, len(fields))
	for _, f := range fields {
		m[f.Name] = f.get
	}
	return m
}()

// Fields returns every name the filter language knows, for completion and
// documentation.
func Fields() []Field {
	out := make([]Field, len(fields))
	for i, f := range fields {
		out[i] = f.Field
	}
	return out
}

func typeName(t *cel.Type) string {
	switch t {
	case cel.DurationType:
		return "duration"
	case cel.TimestampType:
		return "timestamp"
	}
	return t.String()
}

func buildFields() []field {
	var fs []field
	add := func(name string, typ *cel.Type, doc, example string, get func(*entry.Entry) ref.Val) {
		fs = append(fs, field{
			Field: Field{Name: name, Type: typeName(typ), Doc: doc, Example: example},
			typ:   typ,
			get:   get,
		})
	}
	str := func(name, doc, example string, get func(*entry.Entry) string) {
		add(name, cel.StringType, doc, example, func(e *entry.Entry) ref.Val { return types.String(get(e)) })
	}
	boolean := func(name, doc, example string, get func(*entry.Entry) bool) {
		add(name, cel.BoolType, doc, example, func(e *entry.Entry) ref.Val { return types.Bool(get(e)) })
	}

	str("id", "Entry id, unique across the cluster: <node>-<sequence>.", `id == "node-1-42"`,
		func(e *entry.Entry) string { return e.ID })
	add("time", cel.TimestampType, "When the request started.", `time > timestamp("2024-05-01T10:00:00Z")`,
		func(e *entry.Entry) ref.Val { return types.Timestamp{Time: e.Time} })
	str("node", "Node that captured the entry.", `node == "worker-1"`,
		func(e *entry.Entry) string { return e.Node })
	str("protocol", `Protocol: "http", "grpc", "redis", "dns"; "tcp" for a connection of no known protocol, as one record.`, `protocol == "grpc"`,
		func(e *entry.Entry) string { return e.Protocol })
	str("httpVersion", `HTTP version: "1.0", "1.1" or "2"; empty for other protocols.`, `httpVersion == "2"`,
		func(e *entry.Entry) string { return e.HTTPVersion })
	boolean("http", `True for HTTP/1.x and HTTP/2 (protocol == "http").`, `http && status >= 500`,
		func(e *entry.Entry) bool { return e.Protocol == entry.ProtoHTTP })
	boolean("grpc", `True for gRPC (protocol == "grpc").`, `grpc && status != 0`,
		func(e *entry.Entry) bool { return e.Protocol == entry.ProtoGRPC })
	boolean("redis", `True for Redis (protocol == "redis").`, `redis && method == "GET"`,
		func(e *entry.Entry) bool { return e.Protocol == entry.ProtoRedis })
	boolean("dns", `True for DNS (protocol == "dns").`, `dns && path.endsWith(".cluster.local")`,
		func(e *entry.Entry) bool { return e.Protocol == entry.ProtoDNS })
	str("method", "HTTP method, gRPC /pkg.Service/Method, Redis command or DNS query type.", `method in ["GET", "HEAD"]`,
		func(e *entry.Entry) string { return e.Method })
	str("path", "HTTP path and query, gRPC method, Redis first key or DNS name.", `path.matches("^/api/")`,
		func(e *entry.Entry) string { return e.Path })
	add("status", cel.IntType, "HTTP status, gRPC code, Redis 0 (ok) or 1 (error), DNS rcode.", `status >= 500`,
		func(e *entry.Entry) ref.Val { return intVal(int64(e.Status)) })
	boolean("failed", "HTTP >= 500, gRPC code != 0, Redis error reply, DNS rcode != NOERROR.", `failed`,
		func(e *entry.Entry) bool { return e.Failed })
	add("latency", cel.DurationType, "From the request's first byte to the response's last.", `latency > duration("200ms")`,
		func(e *entry.Entry) ref.Val { return types.Duration{Duration: e.Latency} })
	boolean("incomplete", "Some bytes of the exchange were lost (capture gap, cut connection).", `!incomplete`,
		func(e *entry.Entry) bool { return e.Incomplete })

	type exampleValues struct{ ip, port, pod, ns, workload, kind, service, node, process string }
	for _, side := range []struct {
		name string
		ep   func(*entry.Entry) *entry.Endpoint
		who  string
		ex   exampleValues
	}{
		{"src", func(e *entry.Entry) *entry.Endpoint { return &e.Src }, "client",
			exampleValues{`"10.0.0.7"`, `> 1024`, `"web-"`, `"front"`, `"web"`, `"Deployment"`, `"web"`, `"worker-1"`, `"curl"`}},
		{"dst", func(e *entry.Entry) *entry.Endpoint { return &e.Dst }, "server",
			exampleValues{`"10.0.3.12"`, `== 6379`, `"cart-"`, `"shop"`, `"cart"`, `"StatefulSet"`, `"redis"`, `"worker-2"`, `"redis-server"`}},
	} {
		ep, n, who, ex := side.ep, side.name, side.who, side.ex
		str(n+".ip", "IP address of the "+who+".", n+`.ip == `+ex.ip,
			func(e *entry.Entry) string {
				if a := ep(e).IP; a.IsValid() {
					return a.String()
				}
				return ""
			})
		add(n+".port", cel.IntType, "TCP or UDP port of the "+who+".", n+`.port `+ex.port,
			func(e *entry.Entry) ref.Val { return intVal(int64(ep(e).Port)) })
		str(n+".pod", "Pod name of the "+who+".", n+`.pod.startsWith(`+ex.pod+`)`,
			func(e *entry.Entry) string { return ep(e).Ident().Pod })
		str(n+".namespace", "Namespace of the "+who+".", n+`.namespace == `+ex.ns,
			func(e *entry.Entry) string { return ep(e).Ident().Namespace })
		str(n+".workload", "Workload (Deployment, StatefulSet, ...) name of the "+who+".", n+`.workload == `+ex.workload,
			func(e *entry.Entry) string { return ep(e).Ident().Workload })
		str(n+".workloadKind", "Workload kind of the "+who+": Deployment, StatefulSet, DaemonSet, ...", n+`.workloadKind == `+ex.kind,
			func(e *entry.Entry) string { return ep(e).Ident().WorkloadKind })
		str(n+".service", "Kubernetes Service of the "+who+".", n+`.service == `+ex.service,
			func(e *entry.Entry) string { return ep(e).Ident().Service })
		str(n+".node", "Node the "+who+" runs on.", n+`.node == `+ex.node,
			func(e *entry.Entry) string { return ep(e).Ident().Node })
		str(n+".process", "Process name (comm) of the "+who+", when known.", n+`.process == `+ex.process,
			func(e *entry.Entry) string { return ep(e).Ident().Process })
	}

	for _, side := range []struct {
		name string
		msg  func(*entry.Entry) *entry.Message
	}{
		{"request", func(e *entry.Entry) *entry.Message { return e.Request }},
		{"response", func(e *entry.Entry) *entry.Message { return e.Response }},
	} {
		msg, n := side.msg, side.name
		add(n+".headers", cel.MapType(cel.StringType, cel.StringType),
			"Headers of the "+n+" by lower-case name; repeated headers joined with \", \". A missing header reads as \"\".",
			n+`.headers["content-type"].startsWith("application/json")`,
			func(e *entry.Entry) ref.Val { return headers{msg(e)} })
		add(n+".body", cel.StringType, "Body of the "+n+" as kept (decoded, possibly truncated).", n+`.body.contains("error")`,
			func(e *entry.Entry) ref.Val {
				if m := msg(e); m != nil && len(m.Body) > 0 {
					// Entries are immutable while a filter runs and the
					// value does not outlive Match, so no copy is needed.
					return types.String(unsafe.String(&m.Body[0], len(m.Body)))
				}
				return types.String("")
			})
		add(n+".bodyBytes", cel.IntType, "Size of the "+n+" body on the wire.", n+`.bodyBytes > 1048576`,
			func(e *entry.Entry) ref.Val {
				if m := msg(e); m != nil {
					return intVal(m.BodyBytes)
				}
				return intVal(0)
			})
		add(n+".truncated", cel.BoolType, "The "+n+" body was cut at the body limit.", n+`.truncated`,
			func(e *entry.Entry) ref.Val {
				if m := msg(e); m != nil {
					return types.Bool(m.Truncated)
				}
				return types.False
			})
	}
	return fs
}

// smallInts holds preboxed values for statuses and other small integers,
// so reading them allocates nothing.
var smallInts = func() (v [1024]ref.Val) {
	for i := range v {
		v[i] = types.Int(i)
	}
	return v
}()

func intVal(i int64) ref.Val {
	if i >= 0 && i < int64(len(smallInts)) {
		return smallInts[i]
	}
	return types.Int(i)
}
