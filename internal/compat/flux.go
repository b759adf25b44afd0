package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	notifyv1beta3 "github.com/fluxcd/notification-controller/api/v1beta3"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/flux"
)

// fluxFinalizer is the finalizer Flux's controllers put on their objects.
const fluxFinalizer = "finalizers.fluxcd.io"

var fluxKinds = []*kind{
	{family: Flux, gvk: sourcev1.GroupVersion.WithKind(sourcev1.GitRepositoryKind), convert: convertFlux, status: fluxSourceStatus, statusSubresource: true, cascading: fluxCascading, request: fluxRequest},
	{family: Flux, gvk: sourcev1.GroupVersion.WithKind(sourcev1.HelmRepositoryKind), convert: convertFlux, status: fluxSourceStatus, statusSubresource: true, cascading: fluxCascading, request: fluxRequest},
	// OCIRepository is v1 since Flux 2.6; a cluster with an older Flux
	// has no such kind.
	{family: Flux, gvk: sourcev1.GroupVersion.WithKind(sourcev1.OCIRepositoryKind), convert: convertFlux, status: fluxSourceStatus, statusSubresource: true, cascading: fluxCascading, request: fluxRequest, optional: true},
	{family: Flux, gvk: kustomizev1.GroupVersion.WithKind(kustomizev1.KustomizationKind), convert: convertFlux, status: fluxAppStatus, statusSubresource: true, cascading: fluxCascading, request: fluxRequest, adopted: fluxInventory},
	// A HelmRelease's chartRef may name a HelmChart, which it reads.
	{family: Flux, gvk: helmv2.GroupVersion.WithKind(helmv2.HelmReleaseKind), convert: convertFlux, status: fluxAppStatus, statusSubresource: true, cascading: fluxCascading, request: fluxRequest, adopted: helmReleaseObjects, watch: watchHelmCharts, readStatus: helmChartStatus},
	// An Alert and its Provider map to one Notifier; Flux gives neither a
	// status.
	{family: Flux, gvk: notifyv1beta3.GroupVersion.WithKind(notifyv1beta3.AlertKind), convert: convertFluxAlert, optional: true, watch: watchProviders,
		request: func(*unstructured.Unstructured) string { return "" }},
}

// providerGVK is Flux's Provider, which Alerts read.
var providerGVK = notifyv1beta3.GroupVersion.WithKind(notifyv1beta3.ProviderKind)

// convertFluxAlert maps an Alert with the Provider it names to a Notifier.
func convertFluxAlert(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, _ Options) (*conversion, error) {
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	docs := []flux.Document{{Where: "in the cluster", Body: body}}
	name, _, _ := unstructured.NestedString(obj.Object, "spec", "providerRef", "name")
	p := &unstructured.Unstructured{}
	p.SetGroupVersionKind(providerGVK)
	switch err := c.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}, p); {
	case apierrors.IsNotFound(err):
		// Converted alone, the Alert names the missing Provider.
	case err != nil:
		return nil, err
	default:
		pb, err := p.MarshalJSON()
		if err != nil {
			return nil, err
		}
		docs = append(docs, flux.Document{Where: "in the cluster", Body: pb})
	}
	res := flux.Convert(docs)
	if len(res.Errors) > 0 {
		return &conversion{err: errors.Join(res.Errors...)}, nil
	}
	conv := &conversion{warnings: res.Warnings}
	for _, n := range res.Notifiers {
		conv.objects = append(conv.objects, n)
	}
	return conv, nil
}

// watchProviders enqueues the Alerts of a Provider's namespace that name
// it when it changes.
func watchProviders(b *builder.Builder, c client.Client) *builder.Builder {
	p := &unstructured.Unstructured{}
	p.SetGroupVersionKind(providerGVK)
	return b.Watches(p, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		alerts := &unstructured.UnstructuredList{}
		alerts.SetGroupVersionKind(notifyv1beta3.GroupVersion.WithKind(notifyv1beta3.AlertKind + "List"))
		if err := c.List(ctx, alerts, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, a := range alerts.Items {
			if name, _, _ := unstructured.NestedString(a.Object, "spec", "providerRef", "name"); name == o.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
			}
		}
		return out
	}))
}

// watchHelmCharts enqueues the HelmReleases whose chartRef names a
// HelmChart when it changes; without the HelmChart CRD there is nothing to
// watch.
func watchHelmCharts(b *builder.Builder, c client.Client) *builder.Builder {
	if _, err := c.RESTMapper().RESTMapping(helmChartGVK.GroupKind(), helmChartGVK.Version); err != nil {
		return b
	}
	hc := &unstructured.Unstructured{}
	hc.SetGroupVersionKind(helmChartGVK)
	return b.Watches(hc, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		releases := &unstructured.UnstructuredList{}
		releases.SetGroupVersionKind(helmv2.GroupVersion.WithKind(helmv2.HelmReleaseKind + "List"))
		if err := c.List(ctx, releases); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, r := range releases.Items {
			ref, _, _ := unstructured.NestedStringMap(r.Object, "spec", "chartRef")
			ns := ref["namespace"]
			if ns == "" {
				ns = r.GetNamespace()
			}
			if ref["kind"] == sourcev1.HelmChartKind && ref["name"] == o.GetName() && ns == o.GetNamespace() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&r)})
			}
		}
		return out
	}))
}

// helmChartStatus writes the status of the HelmChart a HelmRelease's
// chartRef names, from the HelmRelease's App, which renders its chart:
// Ready, naming the chart version, once the App rendered it, else why not. Several HelmReleases naming one HelmChart
// write the same status while they agree.
func helmChartStatus(ctx context.Context, c client.Client, rel *unstructured.Unstructured, o *observed) error {
	ref, _, _ := unstructured.NestedStringMap(rel.Object, "spec", "chartRef")
	app := o.app
	if ref["kind"] != sourcev1.HelmChartKind || app == nil {
		return nil
	}
	ns := ref["namespace"]
	if ns == "" {
		ns = rel.GetNamespace()
	}
	hc := &unstructured.Unstructured{}
	hc.SetGroupVersionKind(helmChartGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref["name"]}, hc); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return nil
		}
		return err
	}
	chart, _, _ := unstructured.NestedString(hc.Object, "spec", "chart")
	st := map[string]any{"observedGeneration": hc.GetGeneration(), "observedChartName": chart}
	if v, ok, _ := unstructured.NestedString(hc.Object, "status", "lastHandledReconcileAt"); ok {
		st["lastHandledReconcileAt"] = v
	}
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionUnknown, Reason: "Progressing", Message: "waiting for HelmRelease " + rel.GetNamespace() + "/" + rel.GetName() + " to render the chart"}
	cond := meta.FindStatusCondition(app.Status.Conditions, tendv1.ConditionReady)
	switch version := app.Status.LastAttemptedRevision; {
	case cond != nil && chartFailure[cond.Reason]:
		ready = metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "ChartPullFailed", Message: cond.Message}
	case version != "":
		// No artifact: an artifact needs the chart archive's digest,
		// which the App's status does not hold; the version is in the
		// message, as source-controller words it.
		ready = metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "ChartPullSucceeded", Message: fmt.Sprintf("pulled '%s' chart with version '%s'", chart, version)}
	}
	// The HelmRelease's own problems are its status's, not the chart's.
	st["conditions"] = fluxConditions(hc, &observed{conv: &conversion{}, now: o.now}, []metav1.Condition{ready})
	oldStatus, _, _ := unstructured.NestedMap(hc.Object, "status")
	if sameStatus(oldStatus, st) {
		return nil
	}
	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": st}})
	if err != nil {
		return err
	}
	return client.IgnoreNotFound(c.Status().Patch(ctx, hc, client.RawPatch(types.JSONPatchType, patch)))
}

// chartFailure are the App's Ready reasons that say its chart was not
// rendered (fetched, found, or templated).
var chartFailure = map[string]bool{"RenderFailed": true, "ArtifactNotReady": true, "InvalidSpec": true}

// fluxRequestedAt is the annotation `flux reconcile` sets; Flux answers it
// with status.lastHandledReconcileAt.
const fluxRequestedAt = "reconcile.fluxcd.io/requestedAt"

func fluxRequest(obj *unstructured.Unstructured) string {
	return obj.GetAnnotations()[fluxRequestedAt]
}

// lastHandled is status.lastHandledReconcileAt: req once handled, else the
// value it had.
func lastHandled(obj *unstructured.Unstructured, st map[string]any, handled bool) {
	if req := fluxRequest(obj); req != "" && handled {
		st["lastHandledReconcileAt"] = req
	} else if v, ok, _ := unstructured.NestedString(obj.Object, "status", "lastHandledReconcileAt"); ok {
		st["lastHandledReconcileAt"] = v
	}
}

func fluxCascading(finalizers []string) []string {
	if slices.Contains(finalizers, fluxFinalizer) {
		return []string{fluxFinalizer}
	}
	return nil
}

// helmChartGVK is Flux's HelmChart, which a HelmRelease's chartRef may
// name.
var helmChartGVK = sourcev1.GroupVersion.WithKind(sourcev1.HelmChartKind)

// convertFlux maps one Flux object; each maps on its own (sourceRef and
// dependsOn name objects that keep their names), but for a HelmRelease
// whose chartRef names a HelmChart, which is read with it.
func convertFlux(ctx context.Context, rd client.Reader, obj *unstructured.Unstructured, _ Options) (*conversion, error) {
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	docs := []flux.Document{{Where: "in the cluster", Body: body}}
	if kind, _, _ := unstructured.NestedString(obj.Object, "spec", "chartRef", "kind"); kind == sourcev1.HelmChartKind && obj.GetKind() == helmv2.HelmReleaseKind {
		name, _, _ := unstructured.NestedString(obj.Object, "spec", "chartRef", "name")
		ns, _, _ := unstructured.NestedString(obj.Object, "spec", "chartRef", "namespace")
		if ns == "" {
			ns = obj.GetNamespace()
		}
		hc := &unstructured.Unstructured{}
		hc.SetGroupVersionKind(helmChartGVK)
		switch err := rd.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, hc); {
		case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
			// Converted alone, the HelmRelease names the missing HelmChart.
		case err != nil:
			return nil, err
		default:
			b, err := hc.MarshalJSON()
			if err != nil {
				return nil, err
			}
			docs = append(docs, flux.Document{Where: "in the cluster", Body: b})
		}
	}
	res := flux.Convert(docs)
	if len(res.Errors) > 0 {
		return &conversion{err: errors.Join(res.Errors...)}, nil
	}
	c := &conversion{warnings: res.Warnings}
	for _, a := range res.Apps {
		c.objects = append(c.objects, a)
		c.app, c.source = a.Name, a.Spec.SourceRef.Name
	}
	for _, s := range res.Sources {
		c.objects = append(c.objects, s)
		c.source = s.Name
	}
	if len(c.objects) == 0 {
		return &conversion{err: fmt.Errorf("%s %s/%s: nothing to map it to", obj.GetKind(), obj.GetNamespace(), obj.GetName())}, nil
	}
	return c, nil
}

// fluxRevision writes a revision as Flux does: "main@sha1:<hash>" for
// git, "<tag>@sha256:<hex>" for an OCI artifact.
func fluxRevision(src *tendv1.Source, rev string) string {
	if rev == "" || src == nil {
		return rev
	}
	if src.Spec.OCIArtifact() {
		if a := src.Status.Artifact; a != nil && a.Revision == rev && a.Ref != "" {
			return a.Ref + "@" + rev
		}
		return rev
	}
	if src.Spec.Git == nil {
		return rev
	}
	ref := ""
	if src.Status.Artifact != nil && src.Status.Artifact.Revision == rev {
		ref = src.Status.Artifact.Ref
		for _, p := range []string{"refs/heads/", "refs/tags/"} {
			ref = strings.TrimPrefix(ref, p)
		}
	}
	if ref == "" {
		return "sha1:" + rev
	}
	return ref + "@sha1:" + rev
}

// fluxConditions are obj's conditions from a tend object's, or from what
// stops obj; their observedGeneration is obj's generation.
func fluxConditions(obj *unstructured.Unstructured, o *observed, from []metav1.Condition) []any {
	old, _, _ := unstructured.NestedMap(obj.Object, "status")
	gen := obj.GetGeneration()
	var conds []metav1.Condition
	if p := o.problem(); p != "" {
		reason := ReasonUnsupported
		if o.conv.err == nil {
			reason = ReasonConflict
		}
		conds = []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionFalse, Reason: reason, Message: p},
			{Type: "Stalled", Status: metav1.ConditionTrue, Reason: reason, Message: p},
		}
	} else if len(from) == 0 {
		conds = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionUnknown, Reason: "Progressing", Message: "reconciliation in progress"}}
	} else {
		conds = from
	}
	out := make([]any, 0, len(conds))
	for _, c := range conds {
		msg := c.Message
		if len(msg) > 32000 {
			msg = msg[:32000]
		}
		if msg == "" {
			msg = c.Reason
		}
		out = append(out, map[string]any{
			"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": msg,
			"observedGeneration": gen,
			"lastTransitionTime": transitionTime(old, c.Type, string(c.Status), o.now),
		})
	}
	return out
}

// fluxAppStatus is a Kustomization's or HelmRelease's status from its App.
func fluxAppStatus(obj *unstructured.Unstructured, o *observed) map[string]any {
	st := map[string]any{"observedGeneration": obj.GetGeneration()}
	var from []metav1.Condition
	lastHandled(obj, st, o.app != nil && o.app.Status.LastHandledRequest == fluxRequest(obj))
	if app := o.app; app != nil {
		from = app.Status.Conditions
		if obj.GetKind() == helmv2.HelmReleaseKind {
			// helm-controller's Released condition: the last release
			// succeeded.
			if rel := releasedCondition(app); rel != nil {
				from = append(slices.Clone(from), *rel)
			}
			if app.Status.LastAttemptedRevision != "" {
				st["lastAttemptedRevision"] = app.Status.LastAttemptedRevision
			}
		} else {
			if app.Status.Revision != "" {
				st["lastAppliedRevision"] = fluxRevision(o.src, app.Status.Revision)
			}
			if app.Status.LastAttemptedRevision != "" {
				st["lastAttemptedRevision"] = fluxRevision(o.src, app.Status.LastAttemptedRevision)
			}
		}
	}
	st["conditions"] = fluxConditions(obj, o, from)
	return st
}

func releasedCondition(app *tendv1.App) *metav1.Condition {
	if len(app.Status.History) == 0 {
		return nil
	}
	h := app.Status.History[0]
	c := &metav1.Condition{Type: "Released", Status: metav1.ConditionTrue, Reason: "UpgradeSucceeded", Message: "Helm upgrade succeeded for revision " + h.Revision}
	if h.Result != "Succeeded" {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "UpgradeFailed", h.Message
	}
	return c
}

// fluxSourceStatus is a GitRepository's, HelmRepository's or
// OCIRepository's status from its Source. tend keeps artifacts to itself:
// the artifact's path and URL are empty, and its digest is the commit's
// ("sha1:<hash>"), the OCI manifest's, or the chart index's.
func fluxSourceStatus(obj *unstructured.Unstructured, o *observed) map[string]any {
	st := map[string]any{"observedGeneration": obj.GetGeneration()}
	var from []metav1.Condition
	// A Source keeps no record of requests: one is handled once passed on.
	lastHandled(obj, st, o.src != nil && o.src.Annotations[tendv1.AnnotationRequestedAt] == fluxRequest(obj))
	if src := o.src; src != nil && ownedBy(src, obj.GetUID()) {
		from = src.Status.Conditions
		if a := src.Status.Artifact; a != nil {
			rev, digest := a.Revision, a.Revision
			switch {
			case src.Spec.Git != nil:
				rev, digest = fluxRevision(src, a.Revision), "sha1:"+a.Revision
			case src.Spec.OCIArtifact():
				rev = fluxRevision(src, a.Revision)
			case !strings.Contains(digest, ":"):
				digest = "sha256:" + digest
			}
			st["artifact"] = map[string]any{
				"revision": rev, "digest": digest, "path": "", "url": "",
				"lastUpdateTime": a.FetchedAt.UTC().Format(time.RFC3339),
			}
		}
	}
	if meta.FindStatusCondition(from, "Ready") == nil && len(from) > 0 {
		from = nil
	}
	st["conditions"] = fluxConditions(obj, o, from)
	return st
}

// fluxInventory are the objects Flux recorded as the Kustomization's
// (status.inventory.entries).
func fluxInventory(_ context.Context, _ client.Reader, obj *unstructured.Unstructured, _ *tendv1.App) (map[apply.ObjectRef]string, error) {
	entries, _, _ := unstructured.NestedSlice(obj.Object, "status", "inventory", "entries")
	out := map[apply.ObjectRef]string{}
	for _, e := range entries {
		m, _ := e.(map[string]any)
		id, _ := m["id"].(string)
		v, _ := m["v"].(string)
		if ref, ok := parseFluxID(id); ok && v != "" {
			out[ref] = v
		}
	}
	return out, nil
}

// parseFluxID reads an inventory id as Flux writes it,
// "<namespace>_<name>_<group>_<kind>", where a ":" in the name is "__" and
// the group of core kinds is empty.
func parseFluxID(id string) (apply.ObjectRef, bool) {
	ns, rest, ok := strings.Cut(id, "_")
	i := strings.LastIndex(rest, "_")
	if !ok || i < 0 {
		return apply.ObjectRef{}, false
	}
	rest, kind := rest[:i], rest[i+1:]
	j := strings.LastIndex(rest, "_")
	if j < 0 {
		return apply.ObjectRef{}, false
	}
	name, group := strings.ReplaceAll(rest[:j], "__", ":"), rest[j+1:]
	if name == "" || kind == "" {
		return apply.ObjectRef{}, false
	}
	return apply.ObjectRef{Group: group, Kind: kind, Namespace: ns, Name: name}, true
}
