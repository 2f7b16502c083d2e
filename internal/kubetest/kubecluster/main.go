// Command kubecluster starts a kubetest cluster (etcd + kube-apiserver) in
// the background for a person to use, and stops it again. It is what
// `go tool mage cluster` and `go tool mage clusterDown` run.
//
//	kubecluster up DIR     start, detached; state, logs and kubeconfig in DIR
//	kubecluster down DIR   stop it and remove DIR
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/podwire/podwire/internal/kubetest"
	"github.com/podwire/podwire/internal/kubetest/kubetools"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: kubecluster up|down DIR")
		os.Exit(2)
	}
	dir, err := filepath.Abs(os.Args[2])
	if err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "up":
		up(dir)
	case "down":
		down(dir)
	}
}

func up(dir string) {
	if s, err := kubetest.ReadState(dir); err == nil {
		if s.Running() {
			fmt.Printf("a cluster is already running (%s)\n", dir)
			usage(s)
			return
		}
		// Left over from a cluster that died (or a reboot): start afresh.
		if err := kubetest.StopDir(dir); err != nil {
			fail(err)
		}
	} else if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		fail(fmt.Errorf("%s is not empty and holds no cluster state: remove it or run `go tool mage clusterDown`", dir))
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := kubetest.New(ctx, kubetest.Options{Dir: dir, Detach: true})
	if err != nil {
		fail(err)
	}
	fmt.Printf("cluster started in %.1fs: kube-apiserver %s (pid %d), etcd %s (pid %d)\n",
		time.Since(t0).Seconds(), c.Server, c.APIServerPID(), c.EtcdURL, c.EtcdPID())
	s, err := kubetest.ReadState(dir)
	if err != nil {
		fail(err)
	}
	usage(s)
}

func usage(s *kubetest.State) {
	helm := filepath.Join(s.BinDir, kubetools.Helm)
	fmt.Printf(`
admin kubeconfig (user %q in group %s): %s

  export KUBECONFIG=%s
  %s list -A
  curl --cacert %s -H "Authorization: Bearer %s" %s/api/v1/namespaces

Only etcd and kube-apiserver run: no controllers, scheduler or kubelet, so
objects are stored and served but nothing acts on them.
Service ClusterIPs come from %s. Logs: %s/*.log
Stop it with: go tool mage clusterDown
`, kubetest.AdminUser, kubetest.AdminGroup, s.Kubeconfig, s.Kubeconfig, helm,
		s.CAFile, s.Token, s.Server, s.ServiceCIDR, s.Dir)
}

func down(dir string) {
	s, err := kubetest.ReadState(dir)
	if err != nil && !os.IsNotExist(err) {
		fail(err)
	}
	if s == nil {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			fmt.Println("no cluster is running")
			return
		}
	}
	if err := kubetest.StopDir(dir); err != nil {
		fail(err)
	}
	fmt.Printf("cluster stopped, %s removed\n", dir)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kubecluster:", err)
	os.Exit(1)
}
