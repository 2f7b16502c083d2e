package server

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/podwire/podwire/agent/entry"
)

// grouping is what ServiceMap and Metrics group entries by.
type grouping uint8

const (
	byWorkload grouping = iota
	byService
	byNamespace
	byPod
	// The rest group Metrics only.
	byNode
	byProtocol
	byMethod
	byPath
	byStatus
	byNone
)

var groupingNames = [...]string{
	byWorkload: "workload", byService: "service", byNamespace: "namespace", byPod: "pod",
	byNode: "node", byProtocol: "protocol", byMethod: "method", byPath: "path", byStatus: "status", byNone: "none",
}

// parseGrouping reads a group_by; "" is workload. Only Metrics takes the
// groupings after pod.
func parseGrouping(s string, metrics bool) (grouping, error) {
	if s == "" {
		return byWorkload, nil
	}
	last := byPod
	if metrics {
		last = byNone
	}
	for g := byWorkload; g <= last; g++ {
		if groupingNames[g] == s {
			return g, nil
		}
	}
	names := make([]string, 0, last+1)
	for g := byWorkload; g <= last; g++ {
		names = append(names, groupingNames[g])
	}
	return 0, fmt.Errorf("unknown group_by %q: want one of %s", s, strings.Join(names, ", "))
}

// keyKind tells what a groupKey holds.
type keyKind uint8

const (
	keyKube    keyKind = iota + 1 // ns, name
	keyProcess                    // name
	keyAddr                       // addr
	keyUnknown                    // an end with neither name nor address
	keyValue                      // name: a field's value (node, protocol, method, path)
	keyStatus                     // num
	keyNone                       // everything in one group
)

// groupKey identifies a group. Keys are built from an entry's strings
// without copying, so looking one up allocates nothing; a key kept in a
// map must have had its strings cloned (groupKey.clone).
type groupKey struct {
	kind     keyKind
	num      int32
	ns, name string
	addr     netip.Addr
}

func (k groupKey) clone() groupKey {
	k.ns, k.name = strings.Clone(k.ns), strings.Clone(k.name)
	return k
}

// groupName is an identity's name under a Kubernetes grouping ("" for
// the others, or when it has none).
func groupName(g grouping, id *entry.Identity) string {
	switch g {
	case byWorkload:
		return id.Workload
	case byService:
		return id.Service
	case byNamespace:
		return id.Namespace
	case byPod:
		return id.Pod
	}
	return ""
}

// endKey is the group of one end of an entry under a Kubernetes grouping:
// its name of that kind, else its process (a local socket outside pods),
// else its address.
func endKey(g grouping, ep *entry.Endpoint) groupKey {
	id := ep.Ident()
	name := groupName(g, id)
	switch {
	case name != "" && g == byNamespace:
		return groupKey{kind: keyKube, name: name}
	case name != "":
		return groupKey{kind: keyKube, ns: id.Namespace, name: name}
	case id.Process != "":
		return groupKey{kind: keyProcess, name: id.Process}
	case ep.IP.IsValid():
		return groupKey{kind: keyAddr, addr: ep.IP.Unmap()}
	}
	return groupKey{kind: keyUnknown}
}

// appendEndKey appends to buf a compact form of endKey(g, ep): map keys
// built from it in a reused buffer cost one string hash to look up and
// nothing to build.
func appendEndKey(buf []byte, g grouping, ep *entry.Endpoint) []byte {
	id := ep.Ident()
	name := groupName(g, id)
	switch {
	case name != "" && g == byNamespace:
		return append(append(buf, 'k', 0), name...)
	case name != "":
		return append(append(append(append(buf, 'k'), id.Namespace...), 0), name...)
	case id.Process != "":
		return append(append(buf, 'p'), id.Process...)
	case ep.IP.IsValid():
		a := ep.IP.Unmap().As16()
		return append(append(buf, 'a'), a[:]...)
	}
	return append(buf, 'u')
}

// appendMetricsKey appends a compact form of metricsKey(g, e) to buf.
func appendMetricsKey(buf []byte, g grouping, e *entry.Entry) []byte {
	switch g {
	case byNode:
		return append(append(buf, 'v'), e.Node...)
	case byProtocol:
		return append(append(buf, 'v'), e.Protocol...)
	case byMethod:
		return append(append(buf, 'v'), e.Method...)
	case byPath:
		return append(append(buf, 'v'), e.Path...)
	case byStatus:
		return append(buf, 's', byte(e.Status), byte(e.Status>>8), byte(e.Status>>16), byte(e.Status>>24))
	case byNone:
		return append(buf, 'n')
	}
	return appendEndKey(buf, g, &e.Dst)
}

// metricsKey is an entry's group for Metrics: the destination's for the
// Kubernetes groupings.
func metricsKey(g grouping, e *entry.Entry) groupKey {
	switch g {
	case byNode:
		return groupKey{kind: keyValue, name: e.Node}
	case byProtocol:
		return groupKey{kind: keyValue, name: e.Protocol}
	case byMethod:
		return groupKey{kind: keyValue, name: e.Method}
	case byPath:
		return groupKey{kind: keyValue, name: e.Path}
	case byStatus:
		return groupKey{kind: keyStatus, num: e.Status}
	case byNone:
		return groupKey{kind: keyNone}
	}
	return endKey(g, &e.Dst)
}

// groupInfo is how a group is shown: MapNode's id, name, namespace, kind.
type groupInfo struct {
	id, name, namespace, kind string
}

// Kinds of groups that are not Kubernetes objects.
const (
	kindExternal = "external"
	kindProcess  = "process"
	// unknownID names the group of ends with neither name nor address.
	unknownID = "unknown"
)

// info describes the group k, created from the end ep (nil for Metrics'
// field groupings). k's strings must be its own (cloned).
func info(g grouping, k groupKey, ep *entry.Endpoint) groupInfo {
	switch k.kind {
	case keyKube:
		gi := groupInfo{id: k.ns + "/" + k.name, name: k.name, namespace: k.ns}
		switch g {
		case byWorkload:
			gi.kind = "Workload"
			if ep != nil && ep.Ident().WorkloadKind != "" {
				gi.kind = strings.Clone(ep.Ident().WorkloadKind)
			}
		case byService:
			gi.kind = "Service"
		case byNamespace:
			gi.id, gi.namespace, gi.kind = k.name, k.name, "Namespace"
		case byPod:
			gi.kind = "Pod"
		}
		return gi
	case keyProcess:
		return groupInfo{id: "process:" + k.name, name: k.name, kind: kindProcess}
	case keyAddr:
		a := k.addr.String()
		return groupInfo{id: a, name: a, kind: kindExternal}
	case keyUnknown:
		return groupInfo{id: unknownID, name: unknownID, kind: kindExternal}
	case keyValue:
		return groupInfo{id: k.name, name: k.name}
	case keyStatus:
		s := strconv.Itoa(int(k.num))
		return groupInfo{id: s, name: s}
	}
	return groupInfo{}
}
