// Command etcd is a real etcd server (go.etcd.io/etcd/server/v3/etcdmain),
// built here because etcd's own main package lives in a module that is not
// published for `go build`. internal/kubetest starts it for kube-apiserver.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
