//go:build tools

package main

// The Kubernetes commands the local control plane builds; importing them here
// keeps their dependencies in go.mod through `go mod tidy`.
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
