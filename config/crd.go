// Package config holds tend's generated Kubernetes manifests: the CRDs in
// crd/ (controller-gen) and the install manifests in install/ (go run
// ./internal/install/gen). It embeds the CRDs so that the install package
// renders exactly the files that are checked in.
package config

import "embed"

// CRDs holds crd/*.yaml, one CustomResourceDefinition per file.
//
//go:embed crd/*.yaml
var CRDs embed.FS
