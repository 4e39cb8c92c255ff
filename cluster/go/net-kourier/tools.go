//go:build tools

// Package tools pins the Knative Kourier ingress control plane (net-kourier's cmd/kourier) into this module.
package tools

import _ "knative.dev/net-kourier/cmd/kourier"
