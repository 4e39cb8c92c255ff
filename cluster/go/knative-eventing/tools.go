//go:build tools

// Package tools pins the Knative Eventing webhook main package into this module.
package tools

import _ "knative.dev/eventing/cmd/webhook"
