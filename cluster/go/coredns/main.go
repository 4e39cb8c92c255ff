// Command coredns is CoreDNS built with the plugins the local cluster's DNS uses: the same coremain.Run as
// upstream's coredns.go, with the plugin list trimmed the way CoreDNS's plugin.cfg selects plugins at compile time
// (upstream's core/plugin imports every plugin, with the cloud providers' SDKs). The Corefile is in
// cluster/dns.ts.
package main

import (
	"github.com/coredns/coredns/coremain"

	// The plugins of the cluster's Corefile, in no particular order (the server orders them by its directives).
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
