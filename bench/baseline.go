package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/tend-gitops/tend/internal/render"
)

// baselineResult is the "physical limit": the same objects applied by a
// tight concurrent server-side apply loop.
type baselineResult struct {
	Objects          int     `json:"objects"`
	Workers          int     `json:"workers"`
	ApplySeconds     float64 `json:"applySeconds"`
	ObjectsPerSecond float64 `json:"objectsPerSecond"`
	// Seconds is until every Deployment is Available, like tend's Healthy.
	Seconds       float64 `json:"seconds"`
	DeleteSeconds float64 `json:"deleteSeconds"`
}

// renderAll renders every App of the monorepo at root with tend's renderer,
// into namespace ns: the objects tend will apply.
func renderAll(ctx context.Context, root string, n int, ns string) ([]*unstructured.Unstructured, error) {
	r := &render.Renderer{}
	var objs []*unstructured.Unstructured
	for i := 0; i < n; i++ {
		res, err := r.Render(ctx, root, render.Options{Path: "apps/" + appName(i), Namespace: ns})
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", appName(i), err)
		}
		objs = append(objs, res.Objects()...)
	}
	return objs, nil
}

// runBaseline applies objs into ns (which it creates) with workers
// concurrent server-side applies, waits until every Deployment is
// Available, then deletes ns so that tend starts from nothing.
func runBaseline(ctx context.Context, c *cluster, ns string, objs []*unstructured.Unstructured, workers int, logf func(string, ...any)) (*baselineResult, error) {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Clientset.Discovery()))
	if err := c.createNamespace(ctx, ns); err != nil {
		return nil, err
	}
	res := &baselineResult{Objects: len(objs), Workers: workers}
	deployments := 0
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deployments++
		}
		// Resolve the kinds before the clock starts.
		if _, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version); err != nil {
			return nil, err
		}
	}
	logf("baseline: applying %d objects with %d concurrent server-side applies into %s", len(objs), workers, ns)
	start := time.Now()
	work := make(chan *unstructured.Unstructured)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		applied  atomic.Int64
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := applyOne(ctx, c, mapper, o); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
				applied.Add(1)
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
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.ApplySeconds = time.Since(start).Seconds()
	res.ObjectsPerSecond = float64(len(objs)) / res.ApplySeconds
	logf("baseline: applied in %.1fs (%.0f objects/s); waiting for %d Deployments to be Available", res.ApplySeconds, res.ObjectsPerSecond, deployments)
	lastLog := time.Now()
	for {
		n, err := availableDeployments(ctx, c, ns)
		if err != nil {
			return nil, err
		}
		if n >= deployments {
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			logf("baseline: %d/%d Deployments Available after %.0fs", n, deployments, time.Since(start).Seconds())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.Seconds = time.Since(start).Seconds()
	logf("baseline: every Deployment Available after %.1fs; deleting %s", res.Seconds, ns)
	d, err := c.deleteNamespace(ctx, ns, 15*time.Minute)
	if err != nil {
		return nil, err
	}
	res.DeleteSeconds = d.Seconds()
	return res, nil
}

func applyOne(ctx context.Context, c *cluster, mapper meta.RESTMapper, o *unstructured.Unstructured) error {
	return applyAs(ctx, c, mapper, o, "tend-bench-baseline")
}

// applyAs server-side applies o as fieldManager, retrying what an
// overloaded apiserver answers.
func applyAs(ctx context.Context, c *cluster, mapper meta.RESTMapper, o *unstructured.Unstructured, fieldManager string) error {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri = c.Dynamic.Resource(m.Resource)
	for attempt := 0; ; attempt++ {
		_, err = ri.Namespace(o.GetNamespace()).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		if err == nil || attempt == 4 || ctx.Err() != nil || !(apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err) || apierrors.IsInternalError(err)) {
			if err != nil {
				return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
			}
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}

// availableDeployments counts the Deployments in ns whose current
// generation is Available, read from the apiserver's watch cache.
func availableDeployments(ctx context.Context, c *cluster, ns string) (int, error) {
	list, err := c.Clientset.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		if deploymentAvailable(&list.Items[i]) {
			n++
		}
	}
	return n, nil
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
