package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appctl"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/health"
)

// syncOptions are the flags of `tend sync`.
type syncOptions struct {
	app     string
	local   bool
	prune   bool
	force   bool
	dryRun  bool
	wait    bool
	timeout time.Duration
}

func (m *Main) syncCommand() *cobra.Command {
	var (
		kf kubeFlags
		rf renderFlags
		o  = syncOptions{wait: true, timeout: 5 * time.Minute}
	)
	cmd := &cobra.Command{
		Use:         "sync PATH|APP",
		Short:       "Apply a directory, or ask the controller to sync an App now",
		Annotations: map[string]string{annotationExit1: "when the sync fails or the App is not Healthy after it"},
		Long: `Sync an App now.

APP: ask the tend controller to sync the App (it sets the annotations
tend.dev/requested-at and tend.dev/sync-options), wait until the controller has
handled the request and the App is Healthy, and print the result from the App's
status. Works for Apps with spec.sync.manual too.

PATH (or APP with --local): run tend's sync engine in this process, exactly as
the controller would: render the directory (or the App from its Source), run
pre-sync hooks, apply each step with server-side apply and wait for it to be
healthy, prune with --prune, run post-sync hooks, and record the inventory of
App --app NAME in namespace -n, printing each object as it is applied. -n is
also the namespace of namespaced objects that have none. Useful to try a change
before committing it, or where no controller runs.

An argument that names an existing directory, or has a slash or a leading dot,
is a PATH; anything else is an App name.

Exits 1 when the sync fails or the App is not Healthy after it.`,
		Example: `  tend sync web
  tend sync web --prune --timeout 10m
  tend sync ./clusters/home/web --app web -n tend-system --prune
  tend sync ./clusters/home/web --app web -n tend-system --dry-run`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			apps, _ := completeApps(cmd.Context(), &kf)
			return apps, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := resolveTarget(args[0])
			if err != nil {
				return err
			}
			if t.path != "" && o.app == "" {
				return &exitError{code: ExitUsage, err: errors.New("--app NAME is required with a PATH: the App's inventory (in namespace -n) records what it applied, so that later syncs can prune")}
			}
			if t.app != "" {
				if err := checkAppFlags(cmd, t.app); err != nil {
					return err
				}
				if o.app != "" && o.app != t.app {
					return &exitError{code: ExitUsage, err: fmt.Errorf("--app %s names another App than %s", o.app, t.app)}
				}
				if !o.local && o.dryRun {
					return &exitError{code: ExitUsage, err: errors.New("--dry-run runs the engine here: add --local (or use `tend diff`)")}
				}
			}
			k, err := kf.connect()
			if err != nil {
				if t.app != "" {
					return notPathOrApp(t.app, err)
				}
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			if t.path != "" {
				return m.syncPath(ctx, k, &rf, t.path, o)
			}
			app, err := k.app(ctx, t.app)
			if err != nil {
				return err
			}
			if o.local {
				return m.syncAppLocal(ctx, k, app, o)
			}
			return m.syncAppController(ctx, k, app, o)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	rf.addFlags(f)
	f.StringVar(&o.app, "app", "", "PATH: the App the objects belong to (its inventory lives in namespace -n)")
	f.BoolVar(&o.local, "local", false, "APP: render and apply here instead of asking the controller")
	f.BoolVar(&o.prune, "prune", false, "delete objects the App applied before that are no longer rendered")
	f.BoolVar(&o.force, "force", false, "re-apply every object, even those the inventory says are unchanged")
	f.BoolVar(&o.dryRun, "dry-run", false, "PATH or --local: send every apply as a server-side dry run; change nothing")
	f.BoolVar(&o.wait, "wait", o.wait, "APP: wait for the controller to finish the sync and the App to be Healthy")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "how long to wait for the sync and for health")
	return cmd
}

// syncPath renders the directory and syncs it as App o.app in k.ns.
func (m *Main) syncPath(ctx context.Context, k *kube, rf *renderFlags, path string, o syncOptions) error {
	ref := apply.AppRef{Namespace: k.ns, Name: o.app}
	return m.withConn(ctx, k, func(conn *cluster.Conn) error {
		r := clusterRenderer(k)
		r.Scope = conn.Scope
		res, rev, err := rf.renderPath(ctx, r, path, k.ns, o.app)
		if err != nil {
			return err
		}
		m.warnControllerApp(ctx, k, ref)
		return m.runEngine(ctx, conn, apply.Request{App: ref, Revision: rev, Objects: res.Objects(), Prune: o.prune, Force: o.force, DryRun: o.dryRun}, o)
	})
}

// syncAppLocal renders the App from its Source and syncs it here.
func (m *Main) syncAppLocal(ctx context.Context, k *kube, app *tendv1.App, o syncOptions) error {
	if app.Spec.Destination.ClusterRef != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s/%s deploys to Cluster %s: --local syncs only to the cluster of the kubeconfig", app.Namespace, app.Name, app.Spec.Destination.ClusterRef.Name)}
	}
	ar, err := renderApp(ctx, k, app, "")
	if err != nil {
		return err
	}
	rules, err := appspec.Compile(app)
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s/%s: %w", app.Namespace, app.Name, err)}
	}
	return m.withConn(ctx, k, func(conn *cluster.Conn) error {
		req := appspec.Request(app, rules)
		req.Revision, req.Objects = ar.Revision, ar.Objects
		req.Prune = req.Prune || o.prune
		req.Force, req.DryRun = o.force, o.dryRun
		return m.runEngine(ctx, conn, req, o)
	})
}

// withConn runs fn with a connection (engine and watch cache) to k's cluster.
func (m *Main) withConn(ctx context.Context, k *kube, fn func(*cluster.Conn) error) error {
	checker, err := health.NewChecker(nil)
	if err != nil {
		return err
	}
	conn, err := cluster.NewConn("", k.cfg, cluster.ConnOptions{Inventory: &apply.SecretStore{Client: k.cs}, Health: checker})
	if err != nil {
		return reachError(k.cfg.Host, err)
	}
	defer conn.Close()
	return fn(conn)
}

// warnControllerApp warns when the App a PATH is synced as exists in the
// cluster: its controller applies its Source's revision again.
func (m *Main) warnControllerApp(ctx context.Context, k *kube, ref apply.AppRef) {
	var a tendv1.App
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &a); err == nil && !a.Spec.Suspend {
		fmt.Fprintf(m.Stderr, "warning: App %s exists in the cluster; with selfHeal or on its next revision the controller applies its Source again (set spec.suspend while trying local changes)\n", ref)
	}
}

// runEngine runs one sync, printing each object's action as it happens,
// then a summary, and checks the App's health.
func (m *Main) runEngine(ctx context.Context, conn *cluster.Conn, req apply.Request, o syncOptions) error {
	p := m.painter()
	req.WaitHealthy = true
	req.HealthTimeout = o.timeout
	var (
		mu       sync.Mutex
		lastStep string
	)
	req.Progress = func(ev apply.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Step != lastStep {
			fmt.Fprintf(m.Stdout, "► %s\n", ev.Step)
			lastStep = ev.Step
		}
		action := string(ev.Action)
		line := "  " + p.paint(stateColor(action), fmt.Sprintf("%-14s", action)) + " " + ev.Object.String()
		if ev.Message != "" {
			line += ": " + ev.Message
		}
		fmt.Fprintln(m.Stdout, line)
	}
	mode := ""
	if req.DryRun {
		mode = " (dry run: nothing changes)"
	}
	fmt.Fprintf(m.Stdout, "syncing %d objects to App %s at %s%s\n", len(req.Objects), req.App, shortRev(req.Revision), mode)
	res, err := conn.Engine.Sync(ctx, req)
	for _, w := range resWarnings(res) {
		fmt.Fprintln(m.Stderr, "warning:", w)
	}
	if err != nil {
		var se *apply.SyncError
		if errors.As(err, &se) || ctx.Err() != nil {
			return &exitError{code: ExitDiff, err: fmt.Errorf("sync of App %s failed: %w", req.App, err)}
		}
		return reachError(conn.Config.Host, err)
	}
	fmt.Fprintf(m.Stdout, "%s\n", syncSummary(res, len(req.Objects), req.DryRun))
	if req.DryRun {
		return nil
	}
	state, bad := conn.Engine.Assess(req.Health, req.Owners, res.Inventory, req.HealthChecks, time.Now(), 0)
	if state != health.Healthy {
		for _, b := range bad {
			fmt.Fprintf(m.Stdout, "  %s %s: %s\n", p.paint(stateColor(string(b.Result.State)), string(b.Result.State)), b.Ref, b.Result.Message)
		}
		return &exitError{code: ExitDiff, err: fmt.Errorf("the App %s is %s after the sync", req.App, state)}
	}
	fmt.Fprintf(m.Stdout, "App %s is %s\n", req.App, p.paint(colorGreen, "Healthy"))
	return nil
}

func resWarnings(res *apply.Result) []string {
	if res == nil {
		return nil
	}
	return res.Warnings
}

// syncSummary counts what a sync did: "2 created, 1 configured, 4 unchanged".
func syncSummary(res *apply.Result, objects int, dryRun bool) string {
	if len(res.Objects) == 0 {
		return fmt.Sprintf("nothing to do: the %d objects are as tend last applied them", objects)
	}
	counts := map[apply.Action]int{}
	for _, o := range res.Objects {
		counts[o.Action]++
	}
	var parts []string
	for _, a := range []apply.Action{apply.Created, apply.Configured, apply.Recreated, apply.Pruned, apply.Unchanged, apply.HookRun, apply.Kept, apply.Skipped} {
		if n := counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	verb := "synced"
	if dryRun {
		verb = "dry run"
	}
	return verb + ": " + strings.Join(parts, ", ")
}

// syncAppController asks the controller to sync app and waits for the
// result.
func (m *Main) syncAppController(ctx context.Context, k *kube, app *tendv1.App, o syncOptions) error {
	name := app.Namespace + "/" + app.Name
	if app.Spec.Suspend {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s is suspended (spec.suspend): the controller does not sync it; resume it, or sync it here with --local", name)}
	}
	requested, err := appctl.RequestSync(ctx, k.c, app, appctl.SyncOptions{Prune: o.prune, Force: o.force})
	if err != nil {
		return k.wrap(err)
	}
	fmt.Fprintf(m.Stdout, "► asked the controller to sync App %s\n", name)
	if !o.wait {
		fmt.Fprintf(m.Stdout, "`tend history %s` shows the result\n", app.Name)
		return nil
	}
	p := m.painter()
	lastMsg, lastReady := "", ""
	// report prints what the controller is doing; Ready's message (why
	// the App is not ready) only once the request is handled, since
	// before it may predate the request.
	report := func(a *tendv1.App, ready bool) {
		msg := ""
		if c := meta.FindStatusCondition(a.Status.Conditions, tendv1.ConditionReady); c != nil && c.Status != "True" {
			lastReady = c.Message
			if ready {
				msg = c.Message
			}
		}
		if c := meta.FindStatusCondition(a.Status.Conditions, tendv1.ConditionReconciling); c != nil && c.Status == "True" {
			msg = c.Message
		}
		if msg != "" && msg != lastMsg {
			fmt.Fprintf(m.Stdout, "  %s\n", msg)
		}
		lastMsg = msg
	}
	a, err := waitApp(ctx, k, app, func(a *tendv1.App) bool {
		report(a, false)
		return a.Status.LastHandledRequest == requested
	})
	if err != nil {
		if ctx.Err() != nil {
			why := ""
			if lastReady != "" {
				why = " (its status says: " + lastReady + ")"
			}
			return &exitError{code: ExitDiff, err: fmt.Errorf("the controller did not sync App %s within %s%s; is it running? `tend logs %s` shows its logs", name, o.timeout, why, app.Name)}
		}
		return err
	}
	if len(a.Status.History) > 0 {
		rec := a.Status.History[0]
		fmt.Fprintf(m.Stdout, "sync %d of revision %s: %s in %s, %d objects changed\n", rec.ID, shortRev(rec.Revision), p.paint(stateColor(rec.Result), rec.Result), rec.Duration.Duration, rec.Changed)
		if rec.Result != "Succeeded" {
			return &exitError{code: ExitDiff, err: fmt.Errorf("sync of App %s failed: %s", name, rec.Message)}
		}
	}
	a, err = waitApp(ctx, k, a, func(a *tendv1.App) bool {
		report(a, true)
		return a.Status.Health == string(health.Healthy) || a.Status.Health == string(health.Degraded)
	})
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: ExitDiff, err: fmt.Errorf("the App %s is not Healthy %s after the sync request (health %s)", name, o.timeout, orUnknown(a.Status.Health))}
		}
		return err
	}
	if a.Status.Health != string(health.Healthy) {
		return &exitError{code: ExitDiff, err: fmt.Errorf("the App %s is %s after the sync: %s", name, a.Status.Health, lastReady)}
	}
	fmt.Fprintf(m.Stdout, "App %s is %s and %s at %s\n", name, p.paint(stateColor(a.Status.Sync), orUnknown(a.Status.Sync)), p.paint(colorGreen, "Healthy"), shortRev(a.Status.Revision))
	return nil
}

// waitApp polls the App until done says so or ctx ends; it returns the
// last App read.
func waitApp(ctx context.Context, k *kube, app *tendv1.App, done func(*tendv1.App) bool) (*tendv1.App, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	last := app
	for {
		var a tendv1.App
		if err := k.c.Get(ctx, key, &a); err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, k.wrap(err)
		}
		last = &a
		if done(&a) {
			return &a, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
