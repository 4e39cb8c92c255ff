//go:build tools

// Package tools pins the kube-controller-manager main package into this module.
package tools

import _ "k8s.io/kubernetes/cmd/kube-controller-manager"
