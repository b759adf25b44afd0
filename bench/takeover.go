package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/install"
	"github.com/tend-gitops/tend/internal/render"
)

// takeoverResult is what -mode takeover measured: a cluster Flux ran (every
// App's objects applied by kustomize-controller, one Kustomization per App
// with its status.inventory) taken over by tend --compat flux.
type takeoverResult struct {
	Apps          int    `json:"apps"`
	ObjectsPerApp int    `json:"objectsPerApp"`
	TendBuild     string `json:"tend,omitempty"`
	// FluxApplySeconds is how long leaving the objects as Flux leaves
	// them took (server-side applies as kustomize-controller).
	FluxApplySeconds float64 `json:"fluxApplySeconds"`
	// Seconds from tend's start until every Kustomization is Ready at the
	// commit.
	Seconds float64 `json:"seconds"`
	// Requests by verb, and writes by verb and resource, during that time.
	Requests map[string]float64 `json:"requests"`
	Writes   map[string]float64 `json:"writesByResource"`
	// ReplicaSetsCreated counts ReplicaSets created during the takeover (a
	// pod template change makes one); ObjectsDeleted the objects of git
	// that are gone; FieldsLeftToFlux the objects on which
	// kustomize-controller still owns a field tend applies.
	ReplicaSetsCreated int     `json:"replicaSetsCreated"`
	ObjectsDeleted     int     `json:"objectsDeleted"`
	FieldsLeftToFlux   int     `json:"objectsWithFieldsLeftToFlux"`
	CPUSeconds         float64 `json:"cpuSeconds"`
	PeakRSS            uint64  `json:"peakRSSBytes"`
	ControllerLog      string  `json:"controllerLog"`
}

var (
	fluxKustomizations  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	fluxGitRepositories = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
)

// runTakeoverMode runs -mode takeover for apps Apps.
func runTakeoverMode(ctx context.Context, f scaleFlags, apps int, work, resultsDir, section string, out io.Writer, logf func(string, ...any)) error {
	cfg, err := scaleConfigFor(ctx, f, apps, 1, work, logf)
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
	if err := c.ensureCompatCRDs(ctx); err != nil {
		return err
	}
	res, err := benchTakeover(ctx, c, cfg)
	if res == nil || ctx.Err() != nil {
		return err
	}
	table := takeoverTable(res)
	if err != nil {
		table += fmt.Sprintf("\nThe run failed: %v\n", err)
	}
	fmt.Fprint(out, "\n"+table)
	if resultsDir != "" {
		if rerr := record(resultsDir, or(section, "takeover"), res, table); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// ensureCompatCRDs installs the Flux CRDs tend --compat flux reads.
func (c *cluster) ensureCompatCRDs(ctx context.Context) error {
	crds, err := install.CompatCRDs([]string{"flux"})
	if err != nil {
		return err
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crds {
		if _, err := c.Dynamic.Resource(gvr).Apply(ctx, crd.GetName(), crd, metav1.ApplyOptions{FieldManager: "tend-bench", Force: true}); err != nil {
			return fmt.Errorf("CRD %s: %w", crd.GetName(), err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, gvr := range []schema.GroupVersionResource{fluxKustomizations, fluxGitRepositories} {
		for {
			_, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not served a minute after its CRD was applied: %w", gvr.Resource, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func benchTakeover(ctx context.Context, c *cluster, cfg scaleConfig) (_ *takeoverResult, err error) {
	logf := cfg.Logf
	id := randomID()
	ns := "bench-" + id
	res := &takeoverResult{Apps: cfg.Apps, ObjectsPerApp: cfg.Objects, TendBuild: cfg.TendBuild}
	work := filepath.Join(cfg.Work, "takeover-"+id)
	repo, err := newGitRepo(work)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	if err := writeMonorepo(repo.Work, cfg.Apps, cfg.Objects-3); err != nil {
		return nil, err
	}
	if err := repo.commit("monorepo"); err != nil {
		return nil, err
	}
	rev, err := repo.head()
	if err != nil {
		return nil, err
	}
	if err := c.createNamespace(ctx, ns); err != nil {
		return nil, err
	}
	var proc *tendProc
	var proxy *apiProxy
	defer func() {
		if proc != nil {
			proc.stop()
		}
		if proxy != nil {
			proxy.Close()
		}
		logf("deleting namespace %s", ns)
		if _, derr := c.deleteNamespace(context.WithoutCancel(ctx), ns, 15*time.Minute); derr != nil {
			err = errors.Join(err, derr)
		}
	}()

	// Flux's work: every App's objects applied by kustomize-controller,
	// with its labels; one Kustomization per App listing them.
	r := &render.Renderer{}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Clientset.Discovery()))
	var all []*unstructured.Unstructured
	inventories := make([][]any, cfg.Apps)
	for i := 0; i < cfg.Apps; i++ {
		out, err := r.Render(ctx, repo.Work, render.Options{Path: "apps/" + appName(i), Namespace: ns})
		if err != nil {
			return nil, err
		}
		for _, o := range out.Objects() {
			labels := o.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels["kustomize.toolkit.fluxcd.io/name"] = appName(i)
			labels["kustomize.toolkit.fluxcd.io/namespace"] = ns
			o.SetLabels(labels)
			gvk := o.GroupVersionKind()
			inventories[i] = append(inventories[i], map[string]any{
				"id": fmt.Sprintf("%s_%s_%s_%s", o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind), "v": gvk.Version,
			})
			all = append(all, o)
		}
	}
	logf("takeover: applying %d objects as kustomize-controller into %s", len(all), ns)
	start := time.Now()
	if err := applyAll(ctx, c, mapper, all, cfg.BaselineWorkers, "kustomize-controller"); err != nil {
		return nil, err
	}
	res.FluxApplySeconds = time.Since(start).Seconds()
	for {
		n, err := availableDeployments(ctx, c, ns)
		if err != nil {
			return nil, err
		}
		if n >= cfg.Apps {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	before, err := c.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	src := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "monorepo", "namespace": ns},
		"spec":     map[string]any{"interval": "10m", "url": repo.URL, "ref": map[string]any{"branch": "main"}},
	}}
	if _, err := c.Dynamic.Resource(fluxGitRepositories).Namespace(ns).Create(ctx, src, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Apps; i++ {
		ks := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
			"metadata": map[string]any{"name": appName(i), "namespace": ns},
			"spec": map[string]any{"interval": "10m", "path": "./apps/" + appName(i), "prune": true,
				"sourceRef": map[string]any{"kind": "GitRepository", "name": "monorepo"}},
		}}
		created, err := c.Dynamic.Resource(fluxKustomizations).Namespace(ns).Create(ctx, ks, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		_ = unstructured.SetNestedSlice(created.Object, inventories[i], "status", "inventory", "entries")
		if _, err := c.Dynamic.Resource(fluxKustomizations).Namespace(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	logf("takeover: %d Kustomizations with their inventories; starting tend --compat flux", cfg.Apps)

	if proxy, err = newAPIProxy(c.Config); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(work, "tend.kubeconfig")
	if err := proxy.writeKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	res.ControllerLog = filepath.Join(cfg.Out, fmt.Sprintf("controller-takeover-%d.log", cfg.Apps))
	if _, err := c.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: webhookSecretName}, StringData: map[string]string{"generic": randomID()},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	startReq := proxy.snapshot()
	start = time.Now()
	proc, err = startTend(ctx, tendOptions{
		Bin: cfg.TendBin, Kubeconfig: kubeconfig, Namespace: ns,
		DataDir: filepath.Join(work, "tend-data"), LogPath: res.ControllerLog,
		WebhookSecret: webhookSecretName, Extra: append([]string{"--compat", "flux"}, cfg.ControllerArgs...),
	})
	if err != nil {
		return nil, err
	}
	want := "main@sha1:" + rev
	lastLog := time.Now()
	for {
		if err := proc.exited(); err != nil {
			return res, err
		}
		ready, err := readyKustomizations(ctx, c, ns, want)
		if err != nil {
			return res, err
		}
		if ready >= cfg.Apps {
			break
		}
		if time.Since(start) > cfg.ColdTimeout {
			return res, fmt.Errorf("only %d of %d Kustomizations Ready after %s (controller log: %s)", ready, cfg.Apps, cfg.ColdTimeout, res.ControllerLog)
		}
		if time.Since(lastLog) > 15*time.Second {
			logf("takeover: %.0fs: %d of %d Kustomizations Ready at %s", time.Since(start).Seconds(), ready, cfg.Apps, shortSHA(rev))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.Seconds = time.Since(start).Seconds()
	d := requestDelta(startReq, proxy.snapshot())
	res.Requests, res.Writes = byVerb(d), writesByResource(d)
	if res.CPUSeconds, err = cpuSeconds(proc.pid()); err != nil {
		return res, err
	}
	if _, res.PeakRSS, err = memStatus(proc.pid()); err != nil {
		return res, err
	}

	// What the takeover changed: new ReplicaSets, deleted objects, fields
	// kustomize-controller kept.
	after, err := c.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, err
	}
	old := map[types.UID]bool{}
	for _, rs := range before.Items {
		old[rs.UID] = true
	}
	for _, rs := range after.Items {
		if !old[rs.UID] {
			res.ReplicaSetsCreated++
		}
	}
	for _, o := range all {
		m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			return res, err
		}
		live, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil {
			res.ObjectsDeleted++
			continue
		}
		if leftToFlux(live) {
			res.FieldsLeftToFlux++
		}
	}
	logf("takeover: every Kustomization Ready after %.1fs; %d ReplicaSets created, %d objects deleted, %d objects with fields left to kustomize-controller",
		res.Seconds, res.ReplicaSetsCreated, res.ObjectsDeleted, res.FieldsLeftToFlux)
	return res, nil
}

// leftToFlux says whether kustomize-controller still owns a field of live
// besides its own labels (which tend does not set).
func leftToFlux(live *unstructured.Unstructured) bool {
	for _, mf := range live.GetManagedFields() {
		if mf.Manager != apply.ManagerFluxKustomize || mf.FieldsV1 == nil {
			continue
		}
		raw := mf.FieldsV1.GetRawString()
		for _, l := range []string{`"f:kustomize.toolkit.fluxcd.io/name":{}`, `"f:kustomize.toolkit.fluxcd.io/namespace":{}`} {
			raw = strings.Replace(raw, l, "", 1)
		}
		if strings.Contains(raw, `"f:spec"`) || strings.Contains(raw, `"f:data"`) || strings.Contains(raw, `"f:stringData"`) || strings.Contains(raw, `"f:type"`) {
			return true
		}
	}
	return false
}

// readyKustomizations counts the Kustomizations of ns Ready at rev.
func readyKustomizations(ctx context.Context, c *cluster, ns, rev string) (int, error) {
	list, err := c.Dynamic.Resource(fluxKustomizations).Namespace(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range list.Items {
		applied, _, _ := unstructured.NestedString(k.Object, "status", "lastAppliedRevision")
		conds, _, _ := unstructured.NestedSlice(k.Object, "status", "conditions")
		for _, x := range conds {
			m, _ := x.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" && applied == rev {
				n++
			}
		}
	}
	return n, nil
}

// applyAll server-side applies objs with workers concurrent applies as
// fieldManager.
func applyAll(ctx context.Context, c *cluster, mapper meta.RESTMapper, objs []*unstructured.Unstructured, workers int, fieldManager string) error {
	work := make(chan *unstructured.Unstructured)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := applyAs(ctx, c, mapper, o, fieldManager); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for _, o := range objs {
		select {
		case work <- o:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func takeoverTable(r *takeoverResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Takeover: %d Apps x %d objects left by Flux (kustomize-controller's field manager and labels, one Kustomization per App with its status.inventory), taken over by `tend controller --compat flux`. %s\n\n", r.Apps, r.ObjectsPerApp, r.TendBuild)
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| Flux's applies (setup, %d objects) | %.1f s |\n", r.Apps*r.ObjectsPerApp, r.FluxApplySeconds)
	fmt.Fprintf(&b, "| takeover: tend started until every Kustomization Ready at the commit | %.1f s |\n", r.Seconds)
	fmt.Fprintf(&b, "| requests during the takeover | %s |\n", verbs(r.Requests, ""))
	fmt.Fprintf(&b, "| writes by resource | %s |\n", verbs(r.Writes, ""))
	fmt.Fprintf(&b, "| writes per App | %.1f |\n", countWrites(r.Requests)/float64(max(r.Apps, 1)))
	fmt.Fprintf(&b, "| ReplicaSets created (pod template changes) | %d |\n", r.ReplicaSetsCreated)
	fmt.Fprintf(&b, "| objects deleted | %d |\n", r.ObjectsDeleted)
	fmt.Fprintf(&b, "| objects where kustomize-controller still owns a field tend applies | %d |\n", r.FieldsLeftToFlux)
	fmt.Fprintf(&b, "| controller CPU, peak RSS | %.1f s, %s |\n", r.CPUSeconds, mib(r.PeakRSS))
	return b.String()
}
