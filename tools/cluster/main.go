// Command cluster builds and runs a local Kubernetes control plane for tend's
// tests and demo: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, all on 127.0.0.1, with fake nodes that kwok keeps
// Ready so Deployments become Available and Jobs complete.
//
//	cluster up     [--dir D] [--nodes N] [--apiserver-port P]
//	cluster down   [--dir D]
//	cluster status [--dir D]
//	cluster env    [--dir D]
//	cluster build
//
// Binaries are built once from the Go modules pinned in this module's go.mod
// into ${XDG_CACHE_HOME:-$HOME/.cache}/tend/cluster/<version>/bin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue usageError
		fmt.Fprintln(os.Stderr, "cluster:", err)
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage: cluster <command> [flags]

commands:
  up      build missing binaries, start the control plane and fake nodes
  down    stop the processes "up" started and remove the data dir
  status  report whether each component is running and the API is ready
  env     print "export KUBECONFIG=..." for the cluster
  build   build missing binaries into the cache and exit

Run "cluster <command> -h" for the flags of a command.`

// Run runs the cluster command with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", defaultDataDir(), "data directory holding certificates, kubeconfig, logs and pid files")
	var (
		nodes   *int
		apiPort *int
		srcDir  *string
	)
	switch cmd {
	case "up":
		nodes = fs.Int("nodes", 3, "number of fake nodes kwok manages")
		apiPort = fs.Int("apiserver-port", 0, "kube-apiserver port on 127.0.0.1 (0 picks a free one)")
		srcDir = fs.String("src", "", "directory of the tools/cluster module (default: found from the working directory)")
	case "build":
		srcDir = fs.String("src", "", "directory of the tools/cluster module (default: found from the working directory)")
	case "down", "status", "env":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected arguments %v", cmd, fs.Args())}
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", *dir, err)
	}

	switch cmd {
	case "up":
		if *nodes < 1 {
			return usageError{"--nodes must be at least 1"}
		}
		b, err := newBuilder(*srcDir, stderr)
		if err != nil {
			return err
		}
		bins, err := b.ensure(ctx)
		if err != nil {
			return err
		}
		c := &Cluster{Dir: absDir, Bins: bins, Nodes: *nodes, APIServerPort: *apiPort, Log: stderr}
		if err := c.Up(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", c.kubeconfigPath())
		return nil
	case "build":
		b, err := newBuilder(*srcDir, stderr)
		if err != nil {
			return err
		}
		_, err = b.ensure(ctx)
		return err
	case "down":
		return (&Cluster{Dir: absDir, Log: stderr}).Down()
	case "status":
		return (&Cluster{Dir: absDir, Log: stderr}).Status(ctx, stdout)
	case "env":
		c := &Cluster{Dir: absDir, Log: stderr}
		if _, err := os.Stat(c.kubeconfigPath()); err != nil {
			return fmt.Errorf("no cluster in %s (run \"cluster up --dir %s\" first)", absDir, absDir)
		}
		fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", c.kubeconfigPath())
		return nil
	}
	return nil
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tend", "cluster", "default")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "tend-cluster")
	}
	return filepath.Join(home, ".local", "state", "tend", "cluster", "default")
}
