// CoreDNS with only the plugins the test cluster's DNS uses: the kubernetes plugin serving
// cluster.local (Services, headless Services, pods), health and ready probes, errors, a cache and
// round-robin answers. Nothing is forwarded: names outside the cluster are not resolved, so no
// query leaves the test network.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
