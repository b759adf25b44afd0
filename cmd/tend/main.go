// Command tend is the GitOps control plane's single binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
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
	m := &cli.Main{Stdout: os.Stdout, Stderr: os.Stderr, Build: buildInfo()}
	code := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// buildInfo is the version and commit the linker stamped (make build,
// make release), else what the Go toolchain recorded: the module version
// of `go install github.com/tend-gitops/tend/cmd/tend@v0.4.0`, and the
// commit of a build in a git work tree.
func buildInfo() cli.BuildInfo {
	b := cli.BuildInfo{Version: version, Commit: commit}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	if b.Commit == "unknown" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				b.Commit = s.Value
			}
		}
	}
	return b
}
