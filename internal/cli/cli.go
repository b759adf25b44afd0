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
	ExitDiff  = 1 // differences found, a sync failed, or something unhealthy
	ExitUsage = 2 // usage or input error, or the command could not run
)

// BuildInfo describes the running binary; cmd/tend fills it from linker flags.
type BuildInfo struct {
	Version string
	Commit  string
}

// Main is the CLI's entry point, holding what a run needs from outside.
type Main struct {
	Stdout, Stderr io.Writer
	// Stdin is read by commands given "-" as a file; nil is os.Stdin.
	Stdin io.Reader
	Build BuildInfo
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
	// quiet: the command's output already said it (tend diff's summary).
	quiet bool
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
	var ee *exitError
	if errors.As(err, &ee) && ee.quiet {
		return ee.code
	}
	fmt.Fprintln(m.Stderr, "tend:", err)
	if ee != nil {
		return ee.code
	}
	return ExitUsage
}

func (m *Main) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tend",
		Short: "tend keeps a Kubernetes cluster equal to what a git repository declares",
		Long: `tend keeps a Kubernetes cluster equal to what a git repository declares.

Commands that talk to a cluster find it like kubectl: --kubeconfig, then
$KUBECONFIG, then ~/.kube/config, then the in-cluster service account;
--context picks a context and -n a namespace (default: the context's).

Exit codes: 0 success; 1 differences found, a sync failed, or something is not
healthy; 2 usage or input error, or the command could not run (for example the
cluster cannot be reached).`,
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		CompletionOptions:          cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		m.versionCommand(), m.controllerCommand(), m.bootstrapCommand(), m.demoCommand(),
		m.statusCommand(), m.getCommand(), m.historyCommand(), m.rollbackCommand(), m.promoteCommand(),
		m.renderCommand(), m.diffCommand(), m.syncCommand(), m.logsCommand(),
		m.migrateCommand(), m.completionCommand(), m.docsCommand(),
		m.secretCommand(), m.installCommand(), m.adoptCommand(), m.dashboardCommand(),
	)
	return root
}
