// Command tend is the GitOps control plane's single binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tend-gitops/tend/internal/cli"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := &cli.Main{Stdout: os.Stdout, Stderr: os.Stderr, Build: cli.BuildInfo{Version: version, Commit: commit}}
	code := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
