package compat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/argocd"
)

// Argo CD's condition types tend writes.
const (
	// argoInvalidSpec: the Application cannot be reconciled as written.
	argoInvalidSpec = "InvalidSpecError"
	// argoSyncError: the last sync failed.
	argoSyncError = "SyncError"
	// argoComparisonError: the manifests could not be rendered.
	argoComparisonError = "ComparisonError"
	// argoWarning: tend behaves differently from Argo CD here without
	// changing what is applied (Argo CD shows *Warning types as warnings).
	argoWarning = "CompatibilityWarning"
)

var argoKinds = []*kind{{
	family:    Argo,
	gvk:       schema.GroupVersionKind{Group: argocd.Group, Version: "v1alpha1", Kind: "Application"},
	convert:   convertApplication,
	status:    applicationStatus,
	cascading: argoCascading,
	request: func(obj *unstructured.Unstructured) string {
		if _, ok := obj.GetAnnotations()[argoRefresh]; ok {
			return "argocd-refresh/" + obj.GetResourceVersion()
		}
		return ""
	},
	adopted: argoResources,
	handled: func(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
		patch := []byte(`{"metadata":{"annotations":{"` + argoRefresh + `":null}}}`)
		return c.Patch(ctx, obj.DeepCopy(), client.RawPatch(types.MergePatchType, patch))
	},
}}

// applicationSetKind maps ApplicationSets to AppSets.
var applicationSetKind = &kind{
	family:  Argo,
	gvk:     schema.GroupVersionKind{Group: argocd.Group, Version: "v1alpha1", Kind: "ApplicationSet"},
	convert: convertApplicationSet,
	status:  applicationSetStatus,
	// Argo CD's ApplicationSet CRD has a status subresource; its
	// Application CRD has none.
	statusSubresource: true,
	cascading:         func([]string) []string { return nil },
	request:           func(*unstructured.Unstructured) string { return "" },
}

// appProjectKind maps AppProjects to Projects. Argo CD gives them no
// status tend would write; problems are events.
var appProjectKind = &kind{
	family:     Argo,
	gvk:        schema.GroupVersionKind{Group: argocd.Group, Version: "v1alpha1", Kind: "AppProject"},
	convert:    convertAppProject,
	failClosed: true,
	request:    func(*unstructured.Unstructured) string { return "" },
}

func init() { argoKinds = append(argoKinds, applicationSetKind, appProjectKind) }

// convertAppProject maps an AppProject to a Project.
func convertAppProject(_ context.Context, _ client.Reader, obj *unstructured.Unstructured, _ Options) (*conversion, error) {
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	p, err := argocd.ParseAppProject(body)
	if err != nil {
		return &conversion{err: fmt.Errorf("reading Argo CD AppProject %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)}, nil
	}
	res, err := argocd.ConvertProject(p)
	if err != nil {
		return &conversion{err: err}, nil
	}
	return &conversion{objects: []client.Object{res.Project}, warnings: res.Warnings}, nil
}

// convertApplicationSet maps an ApplicationSet to an AppSet (whose Apps
// tend generates) and its Sources.
func convertApplicationSet(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, copts Options) (*conversion, error) {
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	set, err := argocd.ParseApplicationSet(body)
	if err != nil {
		return &conversion{err: fmt.Errorf("reading Argo CD ApplicationSet %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)}, nil
	}
	opts, clusters, secrets, err := argoOptions(ctx, c, obj, copts)
	if err != nil || opts == nil {
		return clusters, err
	}
	res, err := argocd.ConvertApplicationSet(set, *opts)
	if err != nil {
		return &conversion{err: err}, nil
	}
	objs := []client.Object{res.AppSet}
	seen := map[string]bool{}
	for _, src := range res.Sources {
		if !seen[src.Name] {
			seen[src.Name] = true
			objs = append(objs, src)
		}
	}
	// A clusters generator lists the Clusters of the namespace: every
	// Argo CD cluster Secret there becomes one, as Argo CD lists them all.
	named := map[string]bool{}
	for _, o := range clusters.objects {
		if named[o.GetName()] {
			continue
		}
		named[o.GetName()] = true
		objs = append(objs, o)
	}
	if res.Clusters {
		for _, sec := range secrets.Clusters() {
			if !named[sec.Name] {
				named[sec.Name] = true
				objs = append(objs, argocd.ClusterFromSecret(sec, obj.GetNamespace()))
			}
		}
	}
	return &conversion{objects: objs, appSet: res.AppSet.Name, warnings: res.Warnings}, nil
}

// applicationSetStatus is an ApplicationSet's status as Argo CD writes it:
// ErrorOccurred, ParametersGenerated and ResourcesUpToDate conditions, and
// the generated Apps as resources.
func applicationSetStatus(obj *unstructured.Unstructured, o *observed) map[string]any {
	old, _, _ := unstructured.NestedMap(obj.Object, "status")
	cond := func(typ, status, reason, msg string) map[string]any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg,
			"lastTransitionTime": transitionTime(old, typ, status, o.now)}
	}
	var conds []any
	var ready *metav1.Condition
	if o.appSet != nil {
		ready = meta.FindStatusCondition(o.appSet.Status.Conditions, "Ready")
	}
	switch {
	case o.problem() != "":
		conds = append(conds, cond("ErrorOccurred", "True", "ApplicationSetSpecInvalid", o.problem()),
			cond("ParametersGenerated", "False", "ApplicationSetSpecInvalid", o.problem()),
			cond("ResourcesUpToDate", "False", "ApplicationSetSpecInvalid", o.problem()))
	case ready == nil:
		conds = append(conds, cond("ResourcesUpToDate", "Unknown", "Progressing", "waiting for tend to generate the Apps"))
	case ready.Status == metav1.ConditionTrue:
		conds = append(conds, cond("ErrorOccurred", "False", "ApplicationSetUpToDate", "Successfully generated parameters for all Applications"),
			cond("ParametersGenerated", "True", "ParametersGenerated", "Successfully generated parameters for all Applications"),
			cond("ResourcesUpToDate", "True", "ApplicationSetUpToDate", ready.Message))
	default:
		conds = append(conds, cond("ErrorOccurred", "True", "ApplicationGenerationFromParamsError", ready.Message),
			cond("ResourcesUpToDate", "False", "ApplicationGenerationFromParamsError", ready.Message))
	}
	for _, w := range o.conv.warnings {
		conds = append(conds, map[string]any{"type": argoWarning, "status": "True", "reason": "Compatibility", "message": w,
			"lastTransitionTime": argoTransition(old, argoWarning, w, o.now)})
	}
	st := map[string]any{"conditions": conds}
	var resources []any
	for _, app := range o.generated {
		health := app.Status.Health
		if health == "" {
			health = "Unknown"
		}
		sync := "OutOfSync"
		if app.Status.Sync == tendv1.SyncSynced {
			sync = "Synced"
		}
		resources = append(resources, map[string]any{
			"group": tendv1.GroupVersion.Group, "version": tendv1.GroupVersion.Version, "kind": "App",
			"namespace": app.Namespace, "name": app.Name, "status": sync, "health": map[string]any{"status": health},
		})
	}
	if len(resources) > 0 {
		st["resources"] = resources
	}
	return st
}

// argoRefresh is the annotation with which Argo CD's CLI and UI ask for a
// refresh ("normal" or "hard"); Argo CD removes it when it has refreshed.
const argoRefresh = "argocd.argoproj.io/refresh"

// argoPostDeleteFinalizer is the finalizer Argo CD puts on an Application
// with PostDelete hooks (and ".../cleanup" while it deletes them).
const argoPostDeleteFinalizer = "post-delete-finalizer.argoproj.io"

// argoCascading are the Argo CD finalizers tend removes once the App the
// Application maps to is gone: the resources finalizer (its objects were
// pruned) and the post-delete finalizer (the App's own post-delete
// finalizer kept it until its PostDelete hooks ran).
func argoCascading(finalizers []string) []string {
	return slices.DeleteFunc(slices.Clone(finalizers), func(f string) bool {
		postDelete := f == argoPostDeleteFinalizer || strings.HasPrefix(f, argoPostDeleteFinalizer+"/")
		return !postDelete && !argocd.HasResourcesFinalizer([]string{f})
	})
}

// convertApplication maps an Application with the repository, repo-creds
// and cluster Secrets of its namespace (where Argo CD keeps them).
func convertApplication(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, copts Options) (*conversion, error) {
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	app, err := argocd.ParseApplication(body)
	if err != nil {
		return &conversion{err: fmt.Errorf("reading Argo CD Application %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)}, nil
	}
	opts, clusters, _, err := argoOptions(ctx, c, obj, copts)
	if err != nil || opts == nil {
		return clusters, err
	}
	res, err := argocd.Convert(app, *opts)
	if err != nil {
		return &conversion{err: err}, nil
	}
	objs := []client.Object{res.App, res.Source}
	for _, src := range res.OtherSources {
		objs = append(objs, src)
	}
	objs = append(objs, clusters.objects...)
	return &conversion{objects: objs, app: res.App.Name, source: res.Source.Name, sourceNames: res.SourceNames, warnings: res.Warnings}, nil
}

// argoOptions are the conversion options of obj: credentials and clusters
// from the Argo CD Secrets of its namespace, where Argo CD keeps them. The
// Clusters the conversion names are collected in the returned
// conversion's objects; a nil opts comes with the conversion that stops
// obj (a Secret tend cannot read).
func argoOptions(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, copts Options) (*argocd.Options, *conversion, *argocd.Secrets, error) {
	var list corev1.SecretList
	if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.HasLabels{argocd.SecretTypeLabel}); err != nil {
		return nil, nil, nil, fmt.Errorf("listing the Argo CD Secrets of namespace %s: %w", obj.GetNamespace(), err)
	}
	secs := argocd.NewSecrets()
	for i := range list.Items {
		if err := secs.Add(&list.Items[i]); err != nil {
			return nil, &conversion{err: err}, nil, nil
		}
	}
	clusters := &conversion{}
	opts := &argocd.Options{
		DecryptionSecret: copts.ArgoDecryptionSecret,
		Cluster: func(server, name string) (string, error) {
			sec := secs.Cluster(server, name)
			if sec == nil {
				return "", fmt.Errorf("cluster %s: no Argo CD cluster Secret for it in namespace %s", orDash(server, name), obj.GetNamespace())
			}
			clusters.objects = append(clusters.objects, argocd.ClusterFromSecret(sec, obj.GetNamespace()))
			return sec.Name, nil
		},
		Credentials: func(url string) string {
			if sec := secs.Repository(url); sec != nil {
				return sec.Name
			}
			return ""
		},
	}
	return opts, clusters, secs, nil
}

func orDash(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sourceRevisions are a multi-source Application's revisions, one per
// spec.sources entry as Argo CD writes them (status.sync.revisions): the
// App's revision of each source it renders, each ref source's current
// revision for the others; nil for a single source.
func sourceRevisions(o *observed, appRev string) []any {
	if len(o.conv.sourceNames) == 0 {
		return nil
	}
	out := make([]any, len(o.conv.sourceNames))
	rendered := strings.Split(appRev, appspec.RevisionSeparator)
	for i, name := range o.conv.sourceNames {
		rev := ""
		switch {
		case name == "" && len(rendered) > 0:
			rev, rendered = rendered[0], rendered[1:]
		case name != "":
			if src := o.sources[name]; src != nil && src.Status.Artifact != nil {
				rev = src.Status.Artifact.Revision
			}
		}
		out[i] = rev
	}
	return out
}

// historySync is the revision of a sync, or its revisions for a
// multi-source Application.
func historySync(o *observed, rev string) map[string]any {
	if revs := sourceRevisions(o, rev); revs != nil {
		return map[string]any{"revisions": revs}
	}
	return map[string]any{"revision": rev}
}

// applicationStatus is an Application's status as Argo CD writes it:
// sync and health, the last sync as operationState, and conditions.
func applicationStatus(obj *unstructured.Unstructured, o *observed) map[string]any {
	old, _, _ := unstructured.NestedMap(obj.Object, "status")
	st := map[string]any{}
	syncStatus, health := "Unknown", "Unknown"
	sync := map[string]any{}
	app := o.app
	if app != nil {
		switch app.Status.Sync {
		case tendv1.SyncSynced:
			syncStatus = "Synced"
		case tendv1.SyncOutOfSync, tendv1.SyncFailed:
			syncStatus = "OutOfSync"
		}
		if app.Status.Health != "" {
			health = app.Status.Health
		}
		if app.Spec.Suspend {
			health = "Suspended"
		}
		if app.Status.Revision != "" {
			sync["revision"] = app.Status.Revision
		}
		if revs := sourceRevisions(o, app.Status.Revision); revs != nil {
			// A multi-source Application has one revision per source.
			delete(sync, "revision")
			sync["revisions"] = revs
		}
	}
	sync["status"] = syncStatus
	compared := map[string]any{}
	for _, f := range []string{"source", "sources", "destination"} {
		if v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", f); ok {
			compared[f] = toJSON(v)
		}
	}
	sync["comparedTo"] = compared
	st["sync"] = sync
	st["health"] = map[string]any{"status": health}
	if app != nil && len(app.Status.History) > 0 {
		h := app.Status.History[0]
		phase := "Succeeded"
		if h.Result != "Succeeded" {
			phase = "Failed"
		}
		msg := h.Message
		if msg == "" {
			msg = fmt.Sprintf("successfully synced (%d objects changed)", h.Changed)
		}
		st["operationState"] = map[string]any{
			"operation": map[string]any{
				"sync":        historySync(o, h.Revision),
				"initiatedBy": map[string]any{"automated": true, "username": "tend"},
			},
			"phase":      phase,
			"message":    msg,
			"startedAt":  h.StartedAt.UTC().Format(time.RFC3339),
			"finishedAt": h.StartedAt.Add(h.Duration.Duration).UTC().Format(time.RFC3339),
			"syncResult": historySync(o, h.Revision),
		}
	}
	var conds []any
	cond := func(typ, msg string) {
		conds = append(conds, map[string]any{"type": typ, "message": msg, "lastTransitionTime": argoTransition(old, typ, msg, o.now)})
	}
	if p := o.problem(); p != "" {
		cond(argoInvalidSpec, p)
	}
	if app != nil {
		// Argo CD's error conditions from the App's: a render failure is
		// a ComparisonError, a failed or stalled sync a SyncError.
		ready := meta.FindStatusCondition(app.Status.Conditions, "Ready")
		switch {
		case ready != nil && ready.Status == metav1.ConditionFalse && (ready.Reason == "ProjectDenied" || ready.Reason == "ProjectNotFound"):
			// As Argo CD reports an Application its AppProject refuses.
			cond(argoInvalidSpec, ready.Message)
		case meta.IsStatusConditionTrue(app.Status.Conditions, "Stalled"):
			cond(argoSyncError, meta.FindStatusCondition(app.Status.Conditions, "Stalled").Message)
		case ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == "RenderFailed":
			cond(argoComparisonError, ready.Message)
		case ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == "SyncFailed":
			cond(argoSyncError, ready.Message)
		}
	}
	for _, w := range o.conv.warnings {
		cond(argoWarning, w)
	}
	if len(conds) > 0 {
		st["conditions"] = conds
	}
	st["reconciledAt"] = o.now.UTC().Format(time.RFC3339)
	if app != nil {
		st["sourceType"] = sourceType(app)
	}
	return st
}

// sourceType names how the App renders, as Argo CD reports it.
func sourceType(app *tendv1.App) string {
	switch {
	case app.Spec.Chart != nil || app.Spec.Helm != nil:
		return "Helm"
	case app.Spec.Kustomize != nil:
		return "Kustomize"
	}
	return "Directory"
}

// argoTransition keeps an Argo CD condition's time while its message stays.
func argoTransition(old map[string]any, typ, msg string, now metav1.Time) string {
	conds, _, _ := unstructured.NestedSlice(old, "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["message"] == msg {
			if t, ok := m["lastTransitionTime"].(string); ok && strings.TrimSpace(t) != "" {
				return t
			}
		}
	}
	return now.UTC().Format(time.RFC3339)
}

// argoResources are the objects Argo CD recorded as the Application's
// (status.resources), with their API versions; hooks are not among them.
func argoResources(_ context.Context, _ client.Reader, obj *unstructured.Unstructured, _ *tendv1.App) (map[apply.ObjectRef]string, error) {
	items, _, _ := unstructured.NestedSlice(obj.Object, "status", "resources")
	out := map[apply.ObjectRef]string{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		str := func(k string) string { v, _ := m[k].(string); return v }
		if str("kind") == "" || str("name") == "" || str("version") == "" || m["hook"] == true {
			continue
		}
		out[apply.ObjectRef{Group: str("group"), Kind: str("kind"), Namespace: str("namespace"), Name: str("name")}] = str("version")
	}
	return out, nil
}
