// Package cli holds tend's command-line interface. Every command runs
// in-process through Run, so tests drive the CLI exactly as users do.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, documented in docs/cli.md.
const (
	ExitOK    = 0 // success
	ExitDiff  = 1 // differences found or something unhealthy
	ExitUsage = 2 // usage or input error
)

// BuildInfo describes the running binary; cmd/tend fills it from linker flags.
type BuildInfo struct {
	Version string
	Commit  string
}

// Main is the CLI's entry point, holding what a run needs from outside.
type Main struct {
	Stdout, Stderr io.Writer
	Build          BuildInfo
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Run executes the command line args (without the program name) and returns
// the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	root := m.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(m.Stderr, "tend:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitUsage
}

func (m *Main) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tend",
		Short:         "tend keeps a Kubernetes cluster equal to what a git repository declares",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.AddCommand(m.versionCommand(), m.controllerCommand(), m.bootstrapCommand(), m.demoCommand())
	return root
}
