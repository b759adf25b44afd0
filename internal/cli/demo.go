package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/gitserver"
)

// demoOptions configure `tend demo`.
type demoOptions struct {
	// Root is the tend checkout (holds examples/ and tools/cluster).
	Root string
	// StateDir holds the cluster, the demo repository and checkouts.
	StateDir string
	// Kubeconfig, when set, uses that cluster instead of starting one.
	Kubeconfig string
	// MetricsAddr of the controller.
	MetricsAddr string
	// DashboardAddr is where the dashboard listens (a loopback address).
	DashboardAddr string
	// UntilHealthy returns once every App is Healthy instead of waiting
	// for Ctrl-C (tests).
	UntilHealthy bool
	Timeout      time.Duration
}

func (m *Main) demoCommand() *cobra.Command {
	o := demoOptions{Timeout: 10 * time.Minute, DashboardAddr: "127.0.0.1:8090"}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run examples/homelab on a local control plane (what `make demo` does)",
		Long: `Start the local control plane (building it the first time), serve a git
repository made from examples/homelab on 127.0.0.1, bootstrap tend into the
cluster with the controller running as this process, and wait until every App
is Healthy. Then edit the demo repository and commit: tend applies the change
within seconds. Ctrl-C stops everything this command started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Root == "" {
				root, err := findRoot()
				if err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				o.Root = root
			}
			if o.StateDir == "" {
				o.StateDir = filepath.Join(stateHome(), "tend", "demo")
			}
			return runDemo(cmd.Context(), o, m.Stdout)
		},
	}
	cmd.Flags().StringVar(&o.StateDir, "state-dir", "", "where the cluster and the demo repository live (default ~/.local/state/tend/demo)")
	cmd.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "", "use this cluster instead of starting the local control plane")
	cmd.Flags().StringVar(&o.MetricsAddr, "metrics-addr", "127.0.0.1:8080", "address of the controller's /metrics")
	cmd.Flags().StringVar(&o.DashboardAddr, "dashboard-addr", o.DashboardAddr, "loopback address of the dashboard (port 0 picks a free one)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for every App to be Healthy")
	return cmd
}

func stateHome() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state")
}

// findRoot walks up from the working directory to the tend checkout.
func findRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "examples", "homelab")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "tools", "cluster", "go.mod")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run the demo from a tend checkout (no examples/homelab and tools/cluster above %s)", wd)
		}
	}
}

func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	step := func(format string, a ...any) { fmt.Fprintf(out, "► "+format+"\n", a...) }
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return err
	}
	kubeconfig := o.Kubeconfig
	if kubeconfig == "" {
		clusterDir := filepath.Join(o.StateDir, "cluster")
		step("starting the local control plane in %s (the first run builds Kubernetes: about 10 minutes)", clusterDir)
		if err := clusterTool(ctx, o.Root, out, "up", "--dir", clusterDir); err != nil {
			return err
		}
		defer func() {
			step("stopping the local control plane")
			_ = clusterTool(context.Background(), o.Root, out, "down", "--dir", clusterDir)
		}()
		kubeconfig = filepath.Join(clusterDir, "kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}

	repoParent := filepath.Join(o.StateDir, "repos")
	work := filepath.Join(repoParent, "homelab")
	step("creating the demo repository %s from examples/homelab", work)
	if err := makeDemoRepo(ctx, filepath.Join(o.Root, "examples", "homelab"), work); err != nil {
		return err
	}
	url, stopGit, err := serveGit(repoParent)
	if err != nil {
		return err
	}
	defer stopGit()
	repoURL := url + "/homelab/.git"
	step("serving it at %s", repoURL)

	if err := bootstrap(ctx, cfg, bootstrapOptions{
		Repo: repoURL, Path: "clusters/homelab", Branch: "main", Namespace: "tend-system",
		AgeKey: filepath.Join(o.Root, "examples", "homelab", "demo.agekey"), LocalController: true, Interval: 5 * time.Second,
		Force: true, // the demo owns its cluster; a previous run's repository URL is stale
	}, out); err != nil {
		return err
	}

	step("starting the tend controller (this process); metrics at http://%s/metrics", o.MetricsAddr)
	logFile, err := os.Create(filepath.Join(o.StateDir, "controller.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctlCtx, stopCtl := context.WithCancel(ctx)
	ctl, err := controller.New(ctlCtx, controller.Options{
		Config: rest.CopyConfig(cfg), DataDir: filepath.Join(o.StateDir, "data"),
		MetricsAddr: o.MetricsAddr, ProbeAddr: "0", Log: slog.New(slog.NewTextHandler(logFile, nil)),
		// Every homelab App lives in tend-system (the AppSet generates its
		// Apps there too).
		Namespaces: []string{"tend-system"},
	})
	if err != nil {
		stopCtl()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Start(ctlCtx) }()
	defer func() {
		stopCtl()
		<-done
	}()

	dash, err := dashboard.ListenLocal(ctx, rest.CopyConfig(cfg), controller.Scheme(), dashboard.LocalOptions{Addr: o.DashboardAddr, Log: slog.New(slog.NewTextHandler(logFile, nil))})
	if err != nil {
		return err
	}
	dashDone := make(chan error, 1)
	go func() { dashDone <- dash.Serve(ctlCtx, nil) }()
	defer func() {
		stopCtl()
		<-dashDone
	}()
	step("dashboard at %s", dash.URL)

	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return err
	}
	want := []string{"autoscaler", "ingress", "tend", "web", "whoami"}
	step("waiting until every App is Healthy (%s)", strings.Join(want, ", "))
	if err := waitAppsHealthy(ctx, c, want, o.Timeout, out); err != nil {
		return err
	}
	if err := printAppStatus(ctx, c, out); err != nil {
		return err
	}
	fmt.Fprintf(out, `
tend is running the homelab platform.

  dashboard:   %s
  metrics:     http://%s/metrics
  controller:  logs in %s
  kubectl:     export KUBECONFIG=%s; kubectl get apps -A

Make a change: edit a file in the demo repository and commit, e.g.

  cd %s
  sed -i 's/replicas: 2/replicas: 3/' apps/whoami/whoami.yaml
  git commit -am "whoami: 3 replicas"

tend fetches every 5 seconds and applies the change.
`, dash.URL, o.MetricsAddr, logFile.Name(), kubeconfig, work)
	if o.UntilHealthy {
		return nil
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop the controller, the git server and the cluster.")
	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("controller stopped: %w", err)
	}
	return nil
}

// clusterTool runs tools/cluster with its output shown.
func clusterTool(ctx context.Context, root string, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", "."}, args...)...)
	cmd.Dir = filepath.Join(root, "tools", "cluster")
	cmd.Stdout, cmd.Stderr = io.Discard, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("local control plane %s: %w", args[0], err)
	}
	return nil
}

// makeDemoRepo copies the example into a fresh git repository that accepts
// pushes into its checked-out branch (bootstrap pushes; you commit).
func makeDemoRepo(ctx context.Context, src, work string) error {
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(work, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	for _, args := range [][]string{
		{"init", "--quiet", "-b", "main"},
		{"config", "receive.denyCurrentBranch", "updateInstead"},
		{"config", "http.receivepack", "true"},
		{"config", "user.name", "demo"},
		{"config", "user.email", "demo@tend.local"},
		{"add", "-A"},
		{"commit", "--quiet", "-m", "homelab platform"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = work
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, b)
		}
	}
	return nil
}

// serveGit serves the repositories under root over smart HTTP, push
// enabled, on a loopback port.
func serveGit(root string) (string, func(), error) {
	h, err := gitserver.NewHandler(root, gitserver.Options{Push: true})
	if err != nil {
		return "", nil, fmt.Errorf("the demo needs git: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}

func waitAppsHealthy(ctx context.Context, c client.Client, want []string, timeout time.Duration, out io.Writer) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		var apps tendv1.AppList
		err := c.List(ctx, &apps, client.InNamespace("tend-system"))
		waiting := map[string]string{}
		for _, n := range want {
			waiting[n] = "not created yet"
		}
		if err == nil {
			for _, a := range apps.Items {
				if _, wanted := waiting[a.Name]; !wanted {
					continue
				}
				if a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" {
					delete(waiting, a.Name)
					continue
				}
				msg := a.Status.Health
				for _, cond := range a.Status.Conditions {
					if cond.Type == tendv1.ConditionReady {
						msg = cond.Message
					}
				}
				waiting[a.Name] = msg
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		var names []string
		for n := range waiting {
			names = append(names, n)
		}
		sort.Strings(names)
		line := fmt.Sprintf("  %d/%d Apps healthy; waiting for %s", len(want)-len(names), len(want), strings.Join(names, ", "))
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		if time.Now().After(deadline) {
			var why []string
			for _, n := range names {
				why = append(why, n+": "+waiting[n])
			}
			return fmt.Errorf("not every App became Healthy within %s: %s", timeout, strings.Join(why, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func printAppStatus(ctx context.Context, c client.Client, out io.Writer) error {
	var apps tendv1.AppList
	if err := c.List(ctx, &apps, client.InNamespace("tend-system")); err != nil {
		return err
	}
	sort.Slice(apps.Items, func(i, j int) bool { return apps.Items[i].Name < apps.Items[j].Name })
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nAPP\tSYNC\tHEALTH\tREVISION\tOBJECTS")
	for _, a := range apps.Items {
		rev := a.Status.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\t%d\n", a.Namespace, a.Name, a.Status.Sync, a.Status.Health, rev, a.Status.Objects)
	}
	return w.Flush()
}
