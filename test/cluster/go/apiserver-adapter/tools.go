//go:build tools

// Package tools pins the Knative ApiServerSource receive adapter into this module.
package tools

import _ "knative.dev/eventing/cmd/apiserver_receive_adapter"
