// Package config holds tend's generated Kubernetes manifests: the CRDs in
// crd/ and compat/ (controller-gen) and the install manifests in install/ (go run
// ./internal/install/gen). It embeds the CRDs so that the install package
// renders exactly the files that are checked in.
package config

import "embed"

// CRDs holds crd/*.yaml, one CustomResourceDefinition per file.
//
//go:embed crd/*.yaml
var CRDs embed.FS

// CompatCRDs holds compat/*.yaml: the Argo CD and Flux CRDs of the kinds
// tend reconciles as they are (tend install --compat).
//
//go:embed compat/*.yaml
var CompatCRDs embed.FS
