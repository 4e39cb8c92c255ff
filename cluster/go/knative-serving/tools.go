//go:build tools

// Package tools pins the Knative Serving main packages (controller, webhook, autoscaler, activator, queue-proxy)
// into this module.
package tools

import (
	_ "knative.dev/serving/cmd/activator"
	_ "knative.dev/serving/cmd/autoscaler"
	_ "knative.dev/serving/cmd/controller"
	_ "knative.dev/serving/cmd/queue"
	_ "knative.dev/serving/cmd/webhook"
)
