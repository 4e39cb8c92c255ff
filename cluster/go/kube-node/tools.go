//go:build tools

// Package tools pins the node's main packages (kubelet, kube-scheduler, kube-proxy) into this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
