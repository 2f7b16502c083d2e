// Package kube attaches Kubernetes identity to entries: which pod,
// namespace, workload, service and node an address or a socket's cgroup
// belongs to.
package kube

import (
	"strings"
)

// QoS classes as kubelet names its cgroups.
const (
	QoSGuaranteed = "Guaranteed"
	QoSBurstable  = "Burstable"
	QoSBestEffort = "BestEffort"
)

// Container runtimes told apart by their cgroup names.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
)

// CgroupRef is what a cgroup path says about the container it holds.
type CgroupRef struct {
	PodUID      string // with dashes, as in the Pod's metadata.uid
	QoS         string
	ContainerID string // the runtime's id (64 hex digits), "" for the pod's own cgroup
	Runtime     string // "" when the container part does not say
}

// ParseCgroupPath reads a cgroup v2 path (as in /proc/PID/cgroup, or
// relative to the cgroup mount) laid out by kubelet, with either cgroup
// driver:
//
//	cgroupfs: .../kubepods[/burstable|/besteffort]/pod<uid>/<container>
//	systemd:  .../kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<runtime>-<id>.scope
//
// where a container is <id> (containerd, Docker), crio-<id> (CRI-O),
// cri-containerd-<id>, docker-<id> or crio-<id> (.scope with systemd).
// Prefixes above kubepods (kind, k3s, nested systemd slices) are allowed.
// ok is false for a path outside any pod.
func ParseCgroupPath(path string) (ref CgroupRef, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	pod := -1
	for i, p := range parts {
		if uid, qos, found := podSegment(p); found {
			ref.PodUID, ref.QoS, pod = uid, qos, i
		}
	}
	if pod < 0 {
		return CgroupRef{}, false
	}
	if ref.QoS == "" {
		// cgroupfs puts the QoS class in the parent's name.
		ref.QoS = QoSGuaranteed
		if pod > 0 {
			switch parts[pod-1] {
			case "burstable":
				ref.QoS = QoSBurstable
			case "besteffort":
				ref.QoS = QoSBestEffort
			}
		}
	}
	if pod+1 < len(parts) {
		ref.ContainerID, ref.Runtime = containerSegment(parts[pod+1])
		if ref.ContainerID == "" {
			// Not a container (conmon's scope, say): not a pod's process
			// we can name a container for, but still in the pod.
			ref.Runtime = ""
		}
	}
	return ref, true
}

// podSegment recognises a pod's cgroup name: "pod<uid>" (cgroupfs) or
// "kubepods[-<qos>]-pod<uid_>.slice" (systemd, dashes of the uid as
// underscores). qos is "" when the name does not carry it.
func podSegment(p string) (uid, qos string, ok bool) {
	if rest, found := strings.CutPrefix(p, "pod"); found {
		if isUID(rest) {
			return rest, "", true
		}
		return "", "", false
	}
	rest, found := strings.CutSuffix(p, ".slice")
	if !found {
		return "", "", false
	}
	for _, c := range []struct{ prefix, qos string }{
		{"kubepods-burstable-pod", QoSBurstable},
		{"kubepods-besteffort-pod", QoSBestEffort},
		{"kubepods-pod", QoSGuaranteed},
	} {
		if id, found := strings.CutPrefix(rest, c.prefix); found {
			id = strings.ReplaceAll(id, "_", "-")
			if isUID(id) {
				return id, c.qos, true
			}
		}
	}
	return "", "", false
}

// containerSegment reads a container's cgroup name.
func containerSegment(p string) (id, runtime string) {
	name, scope := strings.CutSuffix(p, ".scope")
	for _, c := range []struct{ prefix, runtime string }{
		{"cri-containerd-", RuntimeContainerd},
		{"crio-conmon-", ""}, // conmon, not the container
		{"crio-", RuntimeCRIO},
		{"docker-", RuntimeDocker},
		{"containerd-", RuntimeContainerd},
	} {
		if rest, found := strings.CutPrefix(name, c.prefix); found {
			if c.runtime == "" || !isContainerID(rest) {
				return "", ""
			}
			return rest, c.runtime
		}
	}
	if !scope && isContainerID(name) {
		// cgroupfs: the bare id, from containerd or Docker alike.
		return name, ""
	}
	return "", ""
}

// isUID: a Kubernetes UID is an RFC 4122 UUID in text form.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isContainerID: 64 lower-case hex digits, as containerd, CRI-O and
// Docker write them.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
