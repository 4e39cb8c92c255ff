//go:build tools

// Wrapper module that builds Istio's control plane (pilot-discovery, "istiod") and its gateway agent
// (pilot-agent) from istio.io/istio at the pinned pseudo-version (see cluster/binaries.ts).
package tools

import (
	_ "istio.io/istio/pilot/cmd/pilot-agent"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
