package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/git"
)

// renderResult is what the render benchmark measured, medians over runs.
type renderResult struct {
	Apps            int     `json:"apps"`
	ObjectsPerApp   int     `json:"objectsPerApp"`
	Runs            int     `json:"runs"`
	FetchCold       float64 `json:"fetchColdSeconds"`
	RenderCold      float64 `json:"renderColdSeconds"`
	RenderColdAlloc uint64  `json:"renderColdAllocBytes"`
	RenderColdObjs  uint64  `json:"renderColdMallocs"`
	FetchIncr       float64 `json:"fetchIncrementalSeconds"`
	RenderIncr      float64 `json:"renderIncrementalSeconds"`
	RenderIncrAlloc uint64  `json:"renderIncrementalAllocBytes"`
	ReRendered      int     `json:"appsReRendered"`
	ChangedFiles    int     `json:"changedFiles"`
}

// writeMonorepo writes n apps of the benchmark's shape under apps/.
func writeMonorepo(root string, n, configMaps int) error {
	for i := 0; i < n; i++ {
		if err := writeApp(root, i, configMaps, "v1"); err != nil {
			return err
		}
	}
	return nil
}

func appName(i int) string { return fmt.Sprintf("app-%04d", i) }

func writeApp(root string, i, configMaps int, version string) error {
	name := appName(i)
	dir := filepath.Join(root, "apps", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cms := configYAML(name, configMaps, version, "value-0")
	workload := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: app
        image: registry.example/%[1]s:%[2]s
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Secret
metadata:
  name: %[1]s-credentials
stringData:
  token: "not-a-real-token-%[1]s"
`, name, version)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cms), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "workload.yaml"), []byte(workload), 0o644)
}

// configYAML is an App's config.yaml: configMaps ConfigMaps, the first
// with setting0 as its "setting".
func configYAML(name string, configMaps int, version, setting0 string) string {
	var cms string
	for c := 0; c < configMaps; c++ {
		setting := fmt.Sprintf("value-%d", c)
		if c == 0 {
			setting = setting0
		}
		cms += fmt.Sprintf(`---
apiVersion: v1
kind: ConfigMap
metadata:
  name: %s-config-%d
data:
  version: %q
  setting: %q
`, name, c, version, setting)
	}
	return cms
}

// benchRender fetches a monorepo of n apps and renders every app, cold; then
// commits a change to one app and renders again through the cache.
func benchRender(ctx context.Context, dir string, n, runs int, logf func(string, ...any)) (*renderResult, error) {
	const configMaps = 7 // + Deployment, Service, Secret = 10 objects
	repo, err := newGitRepo(dir)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	if err := writeMonorepo(repo.Work, n, configMaps); err != nil {
		return nil, err
	}
	if err := repo.commit("monorepo"); err != nil {
		return nil, err
	}
	res := &renderResult{Apps: n, ObjectsPerApp: configMaps + 3, Runs: runs}
	var fetchCold, renderCold, fetchIncr, renderIncr []float64
	var allocCold, mallocCold, allocIncr []uint64
	for run := 0; run < runs; run++ {
		checkout := filepath.Join(dir, fmt.Sprintf("checkout-%d", run))
		f := &git.Fetcher{}
		t0 := time.Now()
		fr, err := f.Fetch(ctx, checkout, git.Options{URL: repo.URL, Ref: git.Ref{Branch: "main"}})
		if err != nil {
			return nil, err
		}
		fetchCold = append(fetchCold, time.Since(t0).Seconds())

		cache := &render.Cache{Size: 4 * n}
		r := &render.Renderer{}
		prev := make([]*render.Result, n)
		before := memStats()
		t0 = time.Now()
		for i := 0; i < n; i++ {
			opts := render.Options{Path: "apps/" + appName(i), Namespace: appName(i)}
			if prev[i], err = cache.Render(ctx, r, fr.Dir, fr.Revision, opts); err != nil {
				return nil, fmt.Errorf("render %s: %w", appName(i), err)
			}
		}
		renderCold = append(renderCold, time.Since(t0).Seconds())
		after := memStats()
		allocCold = append(allocCold, after.TotalAlloc-before.TotalAlloc)
		mallocCold = append(mallocCold, after.Mallocs-before.Mallocs)
		rendersBefore := cache.Stats().Renders

		// One app changes.
		if err := writeApp(repo.Work, run%n, configMaps, fmt.Sprintf("v%d", run+2)); err != nil {
			return nil, err
		}
		if err := repo.commit("bump one app"); err != nil {
			return nil, err
		}
		t0 = time.Now()
		fr2, err := f.Fetch(ctx, checkout, git.Options{URL: repo.URL, Ref: git.Ref{Branch: "main"}})
		if err != nil {
			return nil, err
		}
		fetchIncr = append(fetchIncr, time.Since(t0).Seconds())
		res.ChangedFiles = len(fr2.ChangedFiles)
		before = memStats()
		t0 = time.Now()
		for i := 0; i < n; i++ {
			opts := render.Options{Path: "apps/" + appName(i), Namespace: appName(i)}
			if prev[i], err = cache.RenderChange(ctx, r, fr2.Dir, fr2.Revision, opts, prev[i], fr2.ChangedFiles); err != nil {
				return nil, err
			}
		}
		renderIncr = append(renderIncr, time.Since(t0).Seconds())
		after = memStats()
		allocIncr = append(allocIncr, after.TotalAlloc-before.TotalAlloc)
		res.ReRendered = int(cache.Stats().Renders - rendersBefore)
		logf("render run %d: fetch %.2fs, render %d apps %.2fs; after a one-app commit: fetch %.2fs, %d re-rendered in %.3fs",
			run+1, fetchCold[run], n, renderCold[run], fetchIncr[run], res.ReRendered, renderIncr[run])
		if err := os.RemoveAll(checkout); err != nil {
			return nil, err
		}
	}
	res.FetchCold, res.RenderCold, res.FetchIncr, res.RenderIncr = median(fetchCold), median(renderCold), median(fetchIncr), median(renderIncr)
	res.RenderColdAlloc, res.RenderColdObjs, res.RenderIncrAlloc = medianU(allocCold), medianU(mallocCold), medianU(allocIncr)
	return res, nil
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianU(xs []uint64) uint64 {
	s := append([]uint64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
