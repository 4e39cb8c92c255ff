//go:build tools

// Package tools pins the Knative Serving controller, webhook and queue-proxy main packages into this module.
package tools

import (
	_ "knative.dev/serving/cmd/controller"
	_ "knative.dev/serving/cmd/queue"
	_ "knative.dev/serving/cmd/webhook"
)
