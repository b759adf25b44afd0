package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scaleFlags are the flags of -mode scale.
type scaleFlags struct {
	objects, pushCommits, baselineWorkers int
	steady, appInterval, coldTimeout      time.Duration
	pushTimeout, settleTimeout, sample    time.Duration
	soak, soakCommit, soakDrift           time.Duration
	scale, kubeconfig, out, tendBin, args string
	note, dashboard                       string
}

func (f *scaleFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.objects, "objects", 10, "scale: objects per App (ConfigMaps, a Deployment, a Service and a Secret; at least 4)")
	fs.DurationVar(&f.steady, "steady", 2*time.Minute, "scale: how long to watch the idle controller")
	fs.DurationVar(&f.appInterval, "app-interval", 2*time.Minute, "scale: every App's spec.sync.interval (periodic reconciles in the steady state read the Apps' decryption Secret)")
	fs.IntVar(&f.pushCommits, "push-commits", 20, "scale: webhook-triggered commits for push-to-applied latency (0 skips)")
	fs.StringVar(&f.scale, "scale", "", "scale: comma-separated App counts (e.g. 100,500,1000,2000): run baseline, cold sync and a one-App commit for each, instead of every phase for -apps")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "scale: admin kubeconfig of the cluster to use (default: start or reuse a local control plane in "+benchClusterDir()+")")
	fs.StringVar(&f.out, "out", "", "scale: directory for controller logs and profiles (default: a new temporary directory, kept)")
	fs.StringVar(&f.tendBin, "tend-bin", "", "scale: tend binary to run (default: build ./cmd/tend)")
	fs.StringVar(&f.args, "controller-args", "", "scale: extra flags for `tend controller`, space-separated (e.g. \"--app-workers=16\")")
	fs.IntVar(&f.baselineWorkers, "baseline-workers", 32, "scale: concurrent server-side applies of the baseline")
	fs.DurationVar(&f.coldTimeout, "cold-timeout", 30*time.Minute, "scale: give up on a cold sync after this long")
	fs.DurationVar(&f.pushTimeout, "push-timeout", time.Minute, "scale: give up waiting for one commit's object after this long")
	fs.DurationVar(&f.settleTimeout, "settle-timeout", 5*time.Minute, "scale: longest wait for every App to report a one-App commit")
	fs.StringVar(&f.note, "note", "", "scale: a line to print under the results' title (e.g. what the -tend-bin binary changes)")
	fs.StringVar(&f.dashboard, "dashboard", "off", "scale: the controller serves its dashboard with one signed-in browser session on the App list (on), not (off), or each run twice, without and then with it (pair)")
	fs.DurationVar(&f.soak, "soak", 0, "scale: after the cold sync, an endurance run this long (e.g. 1h; not in CI): a commit to one App every -soak-commit-every and a drifted object every -soak-drift-every, the controller's RSS, heap, goroutines and open files sampled, their slopes over the last 40 minutes recorded")
	fs.DurationVar(&f.soakCommit, "soak-commit-every", 10*time.Second, "scale: how often the soak commits")
	fs.DurationVar(&f.soakDrift, "soak-drift-every", 30*time.Second, "scale: how often the soak changes an App's object in the cluster")
	fs.DurationVar(&f.sample, "sample", 250*time.Millisecond, "scale: how often the controller's RSS and /metrics are sampled")
}

// scalePoints parses -scale.
func scalePoints(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-scale: %q is not a positive App count", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// scaleConfigFor turns flags into a scaleConfig, starting the local
// control plane and building tend when needed.
func scaleConfigFor(ctx context.Context, f scaleFlags, apps, runs int, work string, logf func(string, ...any)) (scaleConfig, error) {
	cfg := scaleConfig{
		Apps: apps, Objects: f.objects, Steady: f.steady, AppInterval: f.appInterval, Runs: runs, PushCommits: f.pushCommits,
		BaselineWorkers: f.baselineWorkers, ColdTimeout: f.coldTimeout, PushTimeout: f.pushTimeout,
		SettleTimeout: f.settleTimeout, Sample: f.sample, TendBin: f.tendBin, Kubeconfig: f.kubeconfig,
		Out: f.out, Work: work, ControllerArgs: strings.Fields(f.args), Logf: logf, Note: f.note,
		Soak: f.soak, SoakCommitEvery: f.soakCommit, SoakDriftEvery: f.soakDrift, SoakSampleEvery: 30 * time.Second,
	}
	if cfg.Soak > 0 && (cfg.SoakCommitEvery <= 0 || cfg.SoakDriftEvery <= 0) {
		return cfg, errors.New("-soak-commit-every and -soak-drift-every must be positive")
	}
	if cfg.Objects < 4 {
		return cfg, errors.New("-objects must be at least 4 (ConfigMaps, a Deployment, a Service and a Secret)")
	}
	switch f.dashboard {
	case "off", "pair":
	case "on":
		cfg.Dashboard = true
	default:
		return cfg, fmt.Errorf("-dashboard %q: want on, off or pair", f.dashboard)
	}
	if cfg.BaselineWorkers < 1 || cfg.Sample <= 0 || cfg.PushCommits < 0 {
		return cfg, errors.New("-baseline-workers and -sample must be positive, -push-commits not negative")
	}
	root, err := moduleRoot()
	if err != nil {
		return cfg, err
	}
	if cfg.Out == "" {
		if cfg.Out, err = os.MkdirTemp("", "tend-bench-out-"); err != nil {
			return cfg, err
		}
	} else if err := ensureDir(cfg.Out); err != nil {
		return cfg, err
	}
	if cfg.Out, err = filepath.Abs(cfg.Out); err != nil {
		return cfg, err
	}
	if cfg.Kubeconfig == "" {
		if cfg.Kubeconfig, err = clusterUp(ctx, root, benchClusterDir(), logf); err != nil {
			return cfg, err
		}
	}
	if cfg.TendBin == "" {
		logf("building ./cmd/tend")
		if cfg.TendBin, err = buildTend(ctx, root, work); err != nil {
			return cfg, err
		}
		cfg.TendBuild = "tend built from " + treeState(root)
	} else {
		cfg.TendBuild = "tend binary " + cfg.TendBin
	}
	return cfg, nil
}

// treeState names the commit of the work tree at root, and whether it has
// uncommitted changes.
func treeState(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	s := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// runScaleMode runs -mode scale: every phase for apps Apps, or the scaling
// curve over -scale.
func runScaleMode(ctx context.Context, f scaleFlags, apps, runs int, work, resultsDir, section string, out io.Writer, logf func(string, ...any)) error {
	points, err := scalePoints(f.scale)
	if err != nil {
		return err
	}
	cfg, err := scaleConfigFor(ctx, f, apps, runs, work, logf)
	if err != nil {
		return err
	}
	logf("controller logs and profiles go to %s", cfg.Out)
	c, err := newCluster(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	if v, err := c.Clientset.Discovery().ServerVersion(); err == nil {
		logf("cluster: Kubernetes %s at %s", v.GitVersion, c.Config.Host)
	}
	if err := c.ensureCRDs(ctx); err != nil {
		return err
	}
	if left, err := c.leftoverNamespaces(ctx); err == nil && len(left) > 0 {
		logf("note: namespaces of other or interrupted benchmark runs exist (%s); they add load. Delete them with: kubectl delete ns -l %s",
			strings.Join(left, ", "), benchLabel)
	}

	if len(points) == 0 && f.dashboard == "pair" {
		// A pair is a curve of one point, run twice.
		points = []int{apps}
	}
	if len(points) == 0 {
		res, err := benchScale(ctx, c, cfg)
		if res == nil || ctx.Err() != nil {
			return err // interrupted: nothing worth recording
		}
		table := scaleTable(res)
		if err != nil {
			table += fmt.Sprintf("\nThe run failed: %v\n", err)
		}
		fmt.Fprint(out, "\n"+table)
		if resultsDir != "" {
			if rerr := record(resultsDir, or(section, "scale"), res, table); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
		return err
	}

	var all []*scaleResult
	var errs []error
	dashboards := []bool{cfg.Dashboard}
	if f.dashboard == "pair" {
		dashboards = []bool{false, true}
	}
	for _, n := range points {
		for _, dash := range dashboards {
			pc := cfg
			pc.Apps, pc.SyncOnly, pc.Dashboard = n, true, dash
			res, err := benchScale(ctx, c, pc)
			if err != nil {
				logf("scale %d: %v", n, err)
				errs = append(errs, fmt.Errorf("%d Apps: %w", n, err))
			}
			if ctx.Err() != nil {
				return errors.Join(errs...) // interrupted: nothing worth recording
			}
			if res != nil {
				all = append(all, res)
			}
		}
	}
	table := curveTable(all)
	if len(errs) > 0 {
		table += fmt.Sprintf("\nFailures: %v\n", errors.Join(errs...))
	}
	fmt.Fprint(out, "\n"+table)
	if resultsDir != "" && len(all) > 0 {
		if err := record(resultsDir, or(section, "scale-curve"), all, table); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}
