//go:build tools

// Package tools pins the Knative Eventing main packages into this module: the controller and webhook, the
// multi-tenant channel-based broker (its controller, ingress and filter), the in-memory channel (controller and
// dispatcher) and event_display (the sink the broker variant's dead-letter Service runs).
package tools

import (
	_ "knative.dev/eventing/cmd/broker/filter"
	_ "knative.dev/eventing/cmd/broker/ingress"
	_ "knative.dev/eventing/cmd/controller"
	_ "knative.dev/eventing/cmd/event_display"
	_ "knative.dev/eventing/cmd/in_memory/channel_controller"
	_ "knative.dev/eventing/cmd/in_memory/channel_dispatcher"
	_ "knative.dev/eventing/cmd/mtchannel_broker"
	_ "knative.dev/eventing/cmd/webhook"
)
