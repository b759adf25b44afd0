package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/gitserver"
)

// promotionResult is what -mode promotion measured: image tags pushed to
// an OCI registry, each promoted by a Stage into git and rolled out by its
// App, timed from the push until the Deployment has the tag.
type promotionResult struct {
	Tags      int    `json:"tags"`
	TendBuild string `json:"tend,omitempty"`
	// IntervalSeconds is the Warehouse's spec.interval.
	IntervalSeconds float64 `json:"intervalSeconds"`
	// Seconds from each push to the Deployment with the tag, in push
	// order; P50, Min and Max of them.
	Seconds []float64 `json:"seconds"`
	P50     float64   `json:"p50"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	// Medians from the push until the benchmark's watch saw the Warehouse
	// record the tag as its newest freight, the Stage record its
	// promotion commit, and the App report that commit as synced (-1:
	// never seen).
	FoundP50     float64 `json:"foundP50"`
	CommittedP50 float64 `json:"committedP50"`
	SyncedP50    float64 `json:"syncedP50"`
	// Medians of the steps between: found to committed (the Stage's
	// git work), committed to applied (the Source's fetch, render, apply).
	StageP50   float64 `json:"stageP50"`
	RolloutP50 float64 `json:"rolloutP50"`
	Applied    int     `json:"applied"`
	// CPUSeconds and PeakRSS are the controller's over the whole run.
	CPUSeconds    float64 `json:"cpuSeconds"`
	PeakRSS       uint64  `json:"peakRSSBytes"`
	ControllerLog string  `json:"controllerLog"`
}

// runPromotionMode runs -mode promotion for runs tags.
func runPromotionMode(ctx context.Context, f scaleFlags, runs int, interval time.Duration, work, resultsDir, section string, out io.Writer, logf func(string, ...any)) error {
	cfg, err := scaleConfigFor(ctx, f, 1, runs, work, logf)
	if err != nil {
		return err
	}
	c, err := newCluster(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	if err := c.ensureCRDs(ctx); err != nil {
		return err
	}
	res, err := benchPromotion(ctx, c, cfg, interval)
	if res == nil || ctx.Err() != nil {
		return err
	}
	table := promotionTable(res)
	if err != nil {
		table += fmt.Sprintf("\nThe run failed: %v\n", err)
	}
	fmt.Fprint(out, "\n"+table)
	if resultsDir != "" {
		if rerr := record(resultsDir, or(section, "promotion"), res, table); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// promoWatch records when the benchmark's informers first saw each tag
// reach each step.
type promoWatch struct {
	mu               sync.Mutex
	found, committed map[string]time.Time
	applied          map[string]time.Time
	revTag           map[string]string    // promotion commit -> tag
	revSeen          map[string]time.Time // App revision -> first seen
	changed          chan struct{}
}

func tagOf(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }

func (w *promoWatch) see(o any) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	first := func(m map[string]time.Time, k string) {
		if _, ok := m[k]; !ok && k != "" {
			m[k] = now
		}
	}
	switch o := o.(type) {
	case *tendv1.Warehouse:
		if fr := o.Status.Freight; len(fr) > 0 && len(fr[0].Images) > 0 {
			first(w.found, fr[0].Images[0].Tag)
		}
	case *tendv1.Stage:
		if p := o.Status.Freight; p != nil && p.Revision != "" {
			first(w.committed, tagOf(p.Versions))
			w.revTag[p.Revision] = tagOf(p.Versions)
		}
	case *tendv1.App:
		first(w.revSeen, o.Status.Revision)
	case *appsv1.Deployment:
		if cs := o.Spec.Template.Spec.Containers; len(cs) > 0 {
			first(w.applied, tagOf(cs[0].Image))
		}
	}
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// syncedAt is when an App first reported tag's promotion commit.
func (w *promoWatch) syncedAt(tag string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for rev, t := range w.revTag {
		if t == tag {
			at, ok := w.revSeen[rev]
			return at, ok
		}
	}
	return time.Time{}, false
}

func (w *promoWatch) appliedAt(tag string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.applied[tag]
	return t, ok
}

func watchPromotion(ctx context.Context, c *cluster, ns string) (*promoWatch, error) {
	w := &promoWatch{found: map[string]time.Time{}, committed: map[string]time.Time{},
		applied: map[string]time.Time{}, revTag: map[string]string{}, revSeen: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	ca, err := cache.New(c.Config, cache.Options{Scheme: c.Client.Scheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		return nil, err
	}
	h := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.see(o) },
		UpdateFunc: func(_, o any) { w.see(o) },
	}
	for _, o := range []client.Object{&tendv1.Warehouse{}, &tendv1.Stage{}, &tendv1.App{}, &appsv1.Deployment{}} {
		inf, err := ca.GetInformer(ctx, o)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		return nil, errors.New("the informers did not sync")
	}
	return w, nil
}

// waitApplied waits until the Deployment has tag, or timeout passes.
func (w *promoWatch) waitApplied(ctx context.Context, proc *tendProc, tag string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		if t, ok := w.appliedAt(tag); ok {
			return t, nil
		}
		if err := proc.exited(); err != nil {
			return time.Time{}, err
		}
		select {
		case <-w.changed:
		case <-deadline:
			return time.Time{}, fmt.Errorf("tag %s not in the Deployment after %s", tag, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func benchPromotion(ctx context.Context, c *cluster, cfg scaleConfig, interval time.Duration) (_ *promotionResult, err error) {
	logf := cfg.Logf
	id := randomID()
	ns := "bench-" + id
	work := filepath.Join(cfg.Work, "promotion-"+id)
	res := &promotionResult{Tags: cfg.Runs, TendBuild: cfg.TendBuild, IntervalSeconds: interval.Seconds(),
		ControllerLog: filepath.Join(cfg.Out, "controller-promotion.log")}

	// The registry: go-containerregistry's, in process, on loopback.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	image := strings.TrimPrefix(reg.URL, "http://") + "/bench/web"
	push := func(tag string, img v1.Image) error {
		ref, err := name.NewTag(image + ":" + tag)
		if err != nil {
			return err
		}
		return remote.Write(ref, img, remote.WithContext(ctx))
	}
	img, err := random.Image(64, 1)
	if err != nil {
		return nil, err
	}
	if err := push("1.0.0", img); err != nil {
		return nil, err
	}

	repo, err := newGitRepoWith(work, gitserver.Options{Push: true})
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	files := map[string]string{
		"envs/dev/kustomization.yaml": "resources: [deploy.yaml]\nimages:\n- name: " + image + "\n  newTag: 0.9.0\n",
		"envs/dev/deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n" +
			"  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: " + image + "\n",
	}
	for p, s := range files {
		if err := os.MkdirAll(filepath.Join(repo.Work, filepath.Dir(p)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(repo.Work, p), []byte(s), 0o644); err != nil {
			return nil, err
		}
	}
	if err := repo.commit("dev"); err != nil {
		return nil, err
	}

	if err := c.createNamespace(ctx, ns); err != nil {
		return nil, err
	}
	var proc *tendProc
	defer func() {
		if proc != nil {
			proc.stop()
		}
		logf("deleting namespace %s", ns)
		if _, derr := c.deleteNamespace(context.WithoutCancel(ctx), ns, 5*time.Minute); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := watchPromotion(wctx, c, ns)
	if err != nil {
		return nil, err
	}
	if _, err := c.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: webhookSecretName}, StringData: map[string]string{"generic": randomID()},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	proc, err = startTend(ctx, tendOptions{
		Bin: cfg.TendBin, Kubeconfig: cfg.Kubeconfig, Namespace: ns,
		DataDir: filepath.Join(work, "tend-data"), LogPath: res.ControllerLog,
		WebhookSecret: webhookSecretName, Extra: cfg.ControllerArgs,
	})
	if err != nil {
		return nil, err
	}
	every := metav1.Duration{Duration: interval}
	web := tendv1.LocalObjectReference{Name: "web"}
	for _, o := range []client.Object{
		&tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: ns}, Spec: tendv1.SourceSpec{
			// An hour: the Source fetches a promotion because the Stage
			// asks it to after the push, not at its interval.
			Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}}, Interval: metav1.Duration{Duration: time.Hour},
		}},
		&tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "web-dev", Namespace: ns}, Spec: tendv1.AppSpec{
			SourceRef: tendv1.NamespacedObjectReference{Name: "config"}, Path: "envs/dev",
			Destination: tendv1.Destination{Namespace: ns}, Sync: tendv1.SyncPolicy{Prune: true},
		}},
		&tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: tendv1.WarehouseSpec{
			Interval: every, Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: image, Constraint: "^1"}}},
		}},
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "dev", Namespace: ns}, Spec: tendv1.StageSpec{
			Warehouse: web, Apps: []tendv1.LocalObjectReference{{Name: "web-dev"}},
			Git:     tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}, Author: &tendv1.GitAuthor{Name: "bench", Email: "bench@tend.dev"}},
			Updates: []tendv1.StageUpdate{{Image: image, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/dev"}}},
		}},
	} {
		if err := c.Client.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("create %T: %w", o, err)
		}
	}
	logf("promotion: Source, App, Warehouse (interval %s) and Stage created in %s; waiting for 1.0.0 in the Deployment", interval, ns)
	if _, err := w.waitApplied(ctx, proc, "1.0.0", 2*time.Minute); err != nil {
		return nil, fmt.Errorf("first promotion: %w (controller log: %s)", err, res.ControllerLog)
	}

	var found, committed, synced, stage, rollout []float64
	startCPU, _ := cpuSeconds(proc.pid())
	for i := 1; i <= cfg.Runs; i++ {
		tag := fmt.Sprintf("1.0.%d", i)
		img, err := random.Image(64, 1)
		if err != nil {
			return res, err
		}
		// Push at a random point of the Warehouse's poll cycle.
		select {
		case <-time.After(rand.N(interval)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		t0 := time.Now()
		if err := push(tag, img); err != nil {
			return res, err
		}
		t1, err := w.waitApplied(ctx, proc, tag, cfg.PushTimeout)
		if err != nil {
			logf("promotion: %v", err)
			if ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		res.Applied++
		res.Seconds = append(res.Seconds, t1.Sub(t0).Seconds())
		// The App reports its revision after applying: give its status a
		// moment to arrive before reading the split.
		deadline := time.After(5 * time.Second)
	split:
		for {
			if _, ok := w.syncedAt(tag); ok {
				break
			}
			select {
			case <-w.changed:
			case <-deadline:
				break split
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		w.mu.Lock()
		f, cm := w.found[tag], w.committed[tag]
		w.mu.Unlock()
		s, ok := w.syncedAt(tag)
		found = append(found, after(t0, f, !f.IsZero()))
		committed = append(committed, after(t0, cm, !cm.IsZero()))
		synced = append(synced, after(t0, s, ok))
		if !f.IsZero() && !cm.IsZero() {
			stage = append(stage, cm.Sub(f).Seconds())
			rollout = append(rollout, t1.Sub(cm).Seconds())
		}
		logf("promotion: %s applied %.2fs after the push (found %.2fs, committed %.2fs, App synced %.2fs)", tag, t1.Sub(t0).Seconds(), found[len(found)-1], committed[len(committed)-1], synced[len(synced)-1])
	}
	if cpu, err := cpuSeconds(proc.pid()); err == nil {
		res.CPUSeconds = cpu - startCPU
	}
	_, res.PeakRSS, _ = memStatus(proc.pid())
	if len(res.Seconds) == 0 {
		return res, errors.New("no tag was applied")
	}
	sorted := append([]float64(nil), res.Seconds...)
	sort.Float64s(sorted)
	res.P50, res.Min, res.Max = median(sorted), sorted[0], sorted[len(sorted)-1]
	res.FoundP50, res.CommittedP50, res.SyncedP50 = median(found), median(committed), median(synced)
	res.StageP50, res.RolloutP50 = median(stage), median(rollout)
	if res.Applied < cfg.Runs {
		return res, fmt.Errorf("%d of %d tags applied", res.Applied, cfg.Runs)
	}
	return res, nil
}

// after is t-t0 in seconds, -1 when t was not seen.
func after(t0, t time.Time, ok bool) float64 {
	if !ok {
		return -1
	}
	return t.Sub(t0).Seconds()
}

func promotionTable(r *promotionResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Promotion: %d image tags pushed, one at a time, to an OCI registry (go-containerregistry's, in process, on loopback), each found by a Warehouse polling the registry (spec.interval %s), committed by the Stage dev (a kustomize `images:` update) to a git repository served by git http-backend on loopback, fetched by its Source at once because the Stage asks it to after the push (its own spec.interval is an hour) and applied by the App; `tend controller` as its own process. Each time runs from just before the push (remote.Write) until the benchmark's watch (client-go informers) sees the Deployment with the new tag; each push waits a random part of the interval so it lands anywhere in the poll cycle. The steps are when the watch first saw the Warehouse's status.freight[0], the Stage's status.freight and the App's status.revision change.\n\n",
		r.Tags, secs(r.IntervalSeconds))
	fmt.Fprintf(&b, "What dominates is the Warehouse's poll of the registry: it waits half an interval on average (the CRD sets no minimum; %s, as in the controller tests, is used here; at the default 5m it adds about 2.5 minutes and everything else is noise). At %s, the Stage's git work (fetch, update, render check, push) is the largest step.\n\n",
		secs(r.IntervalSeconds), secs(r.IntervalSeconds))
	b.WriteString(buildLine(r.TendBuild, ""))
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| push to Deployment with the tag, %d of %d tags | p50 %.2f s, min %.2f s, max %.2f s |\n", r.Applied, r.Tags, r.P50, r.Min, r.Max)
	fmt.Fprintf(&b, "| ... push to Warehouse freight (median) | %s |\n", latencyText(r.FoundP50))
	fmt.Fprintf(&b, "| ... push to Stage's promotion commit in its status (median) | %s |\n", latencyText(r.CommittedP50))
	fmt.Fprintf(&b, "| ... push to App status.revision at that commit (median; written after the apply) | %s |\n", latencyText(r.SyncedP50))
	fmt.Fprintf(&b, "| steps (medians): found to committed (Stage), committed to applied (Source fetch, render, apply) | %s, %s |\n", secs(r.StageP50), secs(r.RolloutP50))
	fmt.Fprintf(&b, "| controller CPU over the %d tags, peak RSS | %.1f s, %s |\n", r.Tags, r.CPUSeconds, mib(r.PeakRSS))
	return b.String()
}
