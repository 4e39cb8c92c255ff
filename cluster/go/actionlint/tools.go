//go:build tools

// Package tools pins the actionlint command into this module.
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
