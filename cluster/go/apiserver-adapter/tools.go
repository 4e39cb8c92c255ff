//go:build tools

// Package tools pins the Knative ApiServerSource receive adapter and the PingSource adapter (mtping) into this
// module.
package tools

import (
	_ "knative.dev/eventing/cmd/apiserver_receive_adapter"
	_ "knative.dev/eventing/cmd/mtping"
)
