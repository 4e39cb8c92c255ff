//go:build tools

// Package tools pins the Knative Eventing main packages (controller, webhook) into this module.
package tools

import (
	_ "knative.dev/eventing/cmd/controller"
	_ "knative.dev/eventing/cmd/webhook"
)
