package kube

import "testing"

func TestParseCgroupPath(t *testing.T) {
	const (
		uid  = "0f8b9c2e-3a41-4d5e-9f60-7a8b9c0d1e2f"
		uidU = "0f8b9c2e_3a41_4d5e_9f60_7a8b9c0d1e2f"
		cid  = "4c1b9a0e8f7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170695e4d3"
	)
	cases := []struct {
		path string
		want CgroupRef
		ok   bool
	}{
		// systemd driver, every QoS class and runtime
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			CgroupRef{uid, QoSGuaranteed, cid, RuntimeContainerd}, true},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope",
			CgroupRef{uid, QoSBurstable, cid, RuntimeCRIO}, true},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/docker-" + cid + ".scope",
			CgroupRef{uid, QoSBestEffort, cid, RuntimeDocker}, true},
		// cgroupfs driver
		{"/kubepods/pod" + uid + "/" + cid, CgroupRef{uid, QoSGuaranteed, cid, ""}, true},
		{"/kubepods/burstable/pod" + uid + "/" + cid, CgroupRef{uid, QoSBurstable, cid, ""}, true},
		{"/kubepods/besteffort/pod" + uid + "/crio-" + cid, CgroupRef{uid, QoSBestEffort, cid, RuntimeCRIO}, true},
		// prefixes above kubepods (kind, nested systemd), no leading slash
		{"kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			CgroupRef{uid, QoSBestEffort, cid, RuntimeContainerd}, true},
		{"/system.slice/docker-abc.scope/kubepods/burstable/pod" + uid + "/" + cid, CgroupRef{uid, QoSBurstable, cid, ""}, true},
		// the pod's own cgroup, and CRI-O's conmon beside the container
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice", CgroupRef{uid, QoSGuaranteed, "", ""}, true},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
			CgroupRef{uid, QoSBurstable, "", ""}, true},
		// not a pod
		{"/system.slice/containerd.service", CgroupRef{}, false},
		{"/user.slice/user-0.slice/session-1.scope", CgroupRef{}, false},
		{"/kubepods.slice/kubepods-burstable.slice", CgroupRef{}, false},
		{"/kubepods/podnot-a-uid/" + cid, CgroupRef{}, false},
		{"/", CgroupRef{}, false},
		{"", CgroupRef{}, false},
		// a short or upper-case id is not a container id
		{"/kubepods/pod" + uid + "/" + cid[:12], CgroupRef{uid, QoSGuaranteed, "", ""}, true},
	}
	for _, tc := range cases {
		got, ok := ParseCgroupPath(tc.path)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseCgroupPath(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseCgroupPath(f *testing.F) {
	f.Add("/kubepods.slice/kubepods-pod0f8b9c2e_3a41_4d5e_9f60_7a8b9c0d1e2f.slice/cri-containerd-abc.scope")
	f.Add("/kubepods/burstable/pod0f8b9c2e-3a41-4d5e-9f60-7a8b9c0d1e2f/x")
	f.Fuzz(func(t *testing.T, p string) {
		ref, ok := ParseCgroupPath(p)
		if ok && !isUID(ref.PodUID) {
			t.Fatalf("pod uid %q is not a UID", ref.PodUID)
		}
		if ref.ContainerID != "" && !isContainerID(ref.ContainerID) {
			t.Fatalf("container id %q", ref.ContainerID)
		}
	})
}
