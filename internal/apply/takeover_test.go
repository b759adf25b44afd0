package apply_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

var (
	deploymentGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	configMapGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	serviceGVR    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// takeOverService is the Service in git; helm created it with its own
// labels and annotations on top.
func takeOverService(targetPort int) string {
	return fmt.Sprintf(`{apiVersion: v1, kind: Service, metadata: {name: web, namespace: NS}, spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: %d}]}}`, targetPort)
}

// leftByTools creates web (Deployment), cfg (ConfigMap) and web (Service)
// as Flux's kustomize-controller, Argo CD's client-side apply and the Helm
// CLI leave them: their field managers, operations and markers.
func leftByTools(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	ns := f.env.Namespace
	// Flux: server-side apply as kustomize-controller, with its labels.
	d := f.objs(t, deployment("web", 1, ""))[0]
	d.SetAnnotations(nil)
	d.SetLabels(map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"})
	if _, err := f.dyn.Resource(deploymentGVR).Namespace(ns).Apply(ctx, "web", d, metav1.ApplyOptions{FieldManager: "kustomize-controller"}); err != nil {
		t.Fatal(err)
	}
	// Argo CD (client-side apply): a create by kubectl-client-side-apply
	// with the last-applied record and the instance label.
	lastApplied, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]string{"k": "v1"},
		"metadata": map[string]any{"name": "cfg", "namespace": ns, "labels": map[string]string{"app.kubernetes.io/instance": "demo"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: ns,
			Labels:      map[string]string{"app.kubernetes.io/instance": "demo"},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: string(lastApplied) + "\n"}},
		Data: map[string]string{"k": "v1"},
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	// Helm 3: a create (Update operation) as helm, with Helm's metadata.
	svc := f.objs(t, takeOverService(8080))[0]
	svc.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm"})
	svc.SetAnnotations(map[string]string{"meta.helm.sh/release-name": "demo", "meta.helm.sh/release-namespace": ns})
	if _, err := f.dyn.Resource(serviceGVR).Namespace(ns).Create(ctx, svc, metav1.CreateOptions{FieldManager: "helm"}); err != nil {
		t.Fatal(err)
	}
}

// values is what a user sees of an object: everything but status and the
// bookkeeping in metadata, and without tend's owner annotation.
func values(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	c := o.DeepCopy()
	delete(c.Object, "status")
	for _, k := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(c.Object, "metadata", k)
	}
	unstructured.RemoveNestedField(c.Object, "metadata", "annotations", apply.AnnotationOwner)
	if len(c.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	}
	b, err := json.Marshal(c.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fieldSet(t *testing.T, en metav1.ManagedFieldsEntry) *fieldpath.Set {
	t.Helper()
	s := &fieldpath.Set{}
	if en.FieldsV1 != nil {
		if err := s.FromJSON(bytes.NewReader(en.FieldsV1.GetRawBytes())); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// checkTakenOver fails unless old owns none of the fields tend applied on
// o, and still owns leftover (a field git does not set).
func checkTakenOver(t *testing.T, o *unstructured.Unstructured, old string, leftover fieldpath.Path) {
	t.Helper()
	var tend *fieldpath.Set
	for _, en := range o.GetManagedFields() {
		if en.Manager == apply.FieldManager && en.Operation == metav1.ManagedFieldsOperationApply {
			tend = fieldSet(t, en)
		}
	}
	if tend == nil || tend.Empty() {
		t.Fatalf("%s %s: tend owns no fields", o.GetKind(), o.GetName())
	}
	kept := false
	for _, en := range o.GetManagedFields() {
		if en.Manager != old {
			continue
		}
		s := fieldSet(t, en)
		if shared := s.Intersection(tend); !shared.Empty() {
			t.Errorf("%s %s: %s still shares fields with tend:\n%s", o.GetKind(), o.GetName(), old, shared)
		}
		kept = kept || s.Has(leftover)
	}
	if !kept {
		t.Errorf("%s %s: %s no longer owns %s, which git does not set", o.GetKind(), o.GetName(), old, leftover)
	}
}

func TestTakeOverFromArgoFluxAndHelm(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := f.env.Namespace
	leftByTools(t, f)

	get := func(gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
		t.Helper()
		o, err := f.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	replicaSets := func() int {
		t.Helper()
		l, err := f.env.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	rolledOut := func() bool {
		d, err := f.env.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 1
	}
	testenv.Eventually(t, "the Flux-made Deployment rolled out", time.Minute, rolledOut)
	beforeRS := replicaSets()
	if beforeRS != 1 {
		t.Fatalf("%d ReplicaSets before the takeover, want 1", beforeRS)
	}
	refs := []struct {
		gvr      schema.GroupVersionResource
		name     string
		old      string
		leftover fieldpath.Path
	}{
		{deploymentGVR, "web", "kustomize-controller", fieldpath.MakePathOrDie("metadata", "labels", "kustomize.toolkit.fluxcd.io/name")},
		{configMapGVR, "cfg", "kubectl-client-side-apply", fieldpath.MakePathOrDie("metadata", "annotations", corev1.LastAppliedConfigAnnotation)},
		{serviceGVR, "web", "helm", fieldpath.MakePathOrDie("metadata", "annotations", "meta.helm.sh/release-name")},
	}
	before := map[string]*unstructured.Unstructured{}
	for _, r := range refs {
		before[r.gvr.Resource] = get(r.gvr, r.name)
	}

	// First sync: the same objects from git, taking over.
	inGit := func(image, value string, targetPort int) []*unstructured.Unstructured {
		return f.objs(t, strings.Replace(deployment("web", 1, ""), "nginx:1.27", image, 1), configMap("cfg", value, ""), takeOverService(targetPort))
	}
	res, err := f.sync(t, apply.Request{Objects: inGit("nginx:1.27", "v1", 8080), TakeOver: &apply.TakeOver{Managers: apply.DefaultTakeOverManagers()}})
	if err != nil {
		t.Fatalf("takeover sync: %v", err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("takeover sync warned: %v", res.Warnings)
	}
	for _, o := range res.Objects {
		if !strings.Contains(o.Message, "fields taken over from") {
			t.Errorf("%s: result message %q does not say fields were taken over", o.Ref, o.Message)
		}
	}
	for _, r := range refs {
		after := get(r.gvr, r.name)
		if got, want := values(t, after), values(t, before[r.gvr.Resource]); got != want {
			t.Errorf("%s %s changed in the takeover:\n got %s\nwant %s", r.gvr.Resource, r.name, got, want)
		}
		// tend's owner annotation is the one change; a Deployment counts
		// an annotation change as a new generation (annotations are
		// copied to its ReplicaSets), not a template change.
		if was, is := before[r.gvr.Resource].GetGeneration(), after.GetGeneration(); is != was && !(r.gvr == deploymentGVR && is == was+1) {
			t.Errorf("%s %s: generation %d -> %d", r.gvr.Resource, r.name, was, is)
		}
		checkTakenOver(t, after, r.old, r.leftover)
		// The managedFields write is not drift: tend's fingerprint of
		// the object as it is now is the one recorded.
		ref := apply.RefOf(after)
		if got, want := livestate.Fingerprint(after, apply.FieldManager), res.Inventory.Entries[ref].Fingerprint; got != want || got == "" {
			t.Errorf("%s: fingerprint %q after the takeover, inventory has %q", ref, got, want)
		}
	}
	testenv.Eventually(t, "the Deployment controller saw the takeover", time.Minute, rolledOut)
	if got := replicaSets(); got != beforeRS {
		t.Errorf("%d ReplicaSets after the takeover, want %d (no rollout)", got, beforeRS)
	}
	if rev := get(deploymentGVR, "web").GetAnnotations()["deployment.kubernetes.io/revision"]; rev != "1" {
		t.Errorf("Deployment revision %q after the takeover, want 1 (no rollout)", rev)
	}
	// The watch delivers the managedFields write; it is not drift, and a
	// re-sync sends nothing.
	testenv.Eventually(t, "the watch cache has the takeover's write", 30*time.Second, func() bool {
		for _, r := range refs {
			gvk := get(r.gvr, r.name).GroupVersionKind()
			o, ok := f.live.Get(gvk, ns, r.name)
			if !ok || o.GetResourceVersion() != get(r.gvr, r.name).GetResourceVersion() {
				return false
			}
		}
		return true
	})
	if d := f.engine.Drift(res.Inventory); len(d) > 0 {
		t.Errorf("drift after the takeover: %v", d)
	}
	res, err = f.sync(t, apply.Request{Objects: inGit("nginx:1.27", "v1", 8080)})
	if err != nil || res.Changed != 0 {
		t.Fatalf("re-sync after the takeover changed %d objects (%v): %+v", res.Changed, err, res.Objects)
	}

	// A git change to every object, in a sync without TakeOver: applied,
	// and nothing is left to the old tools.
	res, err = f.sync(t, apply.Request{Objects: inGit("nginx:1.28", "v2", 8081)})
	if err != nil {
		t.Fatalf("sync of a git change: %v", err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("git change after the takeover warned: %v", res.Warnings)
	}
	d, err := f.env.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.28" {
		t.Errorf("image = %s after the git change, want nginx:1.28", img)
	}
	cm, err := f.env.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["k"] != "v2" {
		t.Errorf("ConfigMap data = %v after the git change, want k: v2", cm.Data)
	}
	svc, err := f.env.Clientset.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tp := svc.Spec.Ports[0].TargetPort.IntValue(); tp != 8081 {
		t.Errorf("Service targetPort = %d after the git change, want 8081", tp)
	}
	if d.Labels["kustomize.toolkit.fluxcd.io/name"] != "apps" || cm.Annotations[corev1.LastAppliedConfigAnnotation] == "" || svc.Annotations["meta.helm.sh/release-name"] != "demo" {
		t.Errorf("the old tools' markers are gone: %v %v %v", d.Labels, cm.Annotations, svc.Annotations)
	}
}

// TestTakeOverRetriesOnAConflict: when the object changed after tend's
// apply, the managedFields patch meets a newer resourceVersion; the
// takeover reads the object again and writes over that, losing nothing.
// The write changes no generation.
func TestTakeOverRetriesOnAConflict(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := f.env.Namespace
	leftByTools(t, f)
	// Once rolled out, the Deployment controller writes only status.
	testenv.Eventually(t, "the Flux-made Deployment rolled out", time.Minute, func() bool {
		d, err := f.env.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Annotations["deployment.kubernetes.io/revision"] == "1"
	})
	ri := f.dyn.Resource(deploymentGVR).Namespace(ns)
	o := f.objs(t, deployment("web", 1, ""))[0]
	applied, err := ri.Apply(ctx, "web", o, metav1.ApplyOptions{FieldManager: apply.FieldManager})
	if err != nil {
		t.Fatal(err)
	}
	// Someone writes the object after the apply.
	written, err := ri.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"}}}`), metav1.PatchOptions{FieldManager: "someone"})
	if err != nil {
		t.Fatal(err)
	}
	f.counter.reset()
	out, moved, err := apply.TakeOverObject(f.engine, ctx, &apply.TakeOver{Managers: apply.DefaultTakeOverManagers()}, applied)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(moved, ","), "kustomize-controller"; got != want {
		t.Errorf("fields taken from %q, want %q", got, want)
	}
	path := "/apis/apps/v1/namespaces/" + ns + "/deployments/web"
	f.counter.mu.Lock()
	patches, gets := f.counter.paths["PATCH "+path], f.counter.paths["GET "+path]
	f.counter.mu.Unlock()
	// The Deployment controller may write the object too: each conflict
	// is one read and one more patch.
	if gets < 1 || patches != gets+1 {
		t.Errorf("sent %d PATCHes and %d GETs of %s, want a conflict, a read and a retry (n+1 and n, n >= 1)", patches, gets, path)
	}
	if out.GetLabels()["team"] != "a" {
		t.Errorf("the write made in between is lost: %v", out.GetLabels())
	}
	if out.GetGeneration() != written.GetGeneration() {
		t.Errorf("generation %d -> %d in the managedFields write", written.GetGeneration(), out.GetGeneration())
	}
	checkTakenOver(t, out, "kustomize-controller", fieldpath.MakePathOrDie("metadata", "labels", "kustomize.toolkit.fluxcd.io/name"))
}

// TestTakeOverForcesConflictsWithOldManagers: where git differs from what
// the old tool applied, git wins in the takeover sync, where without
// TakeOver the field would be left to that manager with a warning.
func TestTakeOverForcesConflictsWithOldManagers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := f.env.Namespace
	// Argo CD with ServerSideApply=true applied an older value.
	old := f.objs(t, configMap("cfg", "old", ""))[0]
	old.SetAnnotations(map[string]string{"argocd.argoproj.io/tracking-id": "demo:/ConfigMap:" + ns + "/cfg"})
	if _, err := f.dyn.Resource(configMapGVR).Namespace(ns).Apply(ctx, "cfg", old, metav1.ApplyOptions{FieldManager: "argocd-controller"}); err != nil {
		t.Fatal(err)
	}
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("cfg", "new", "")), TakeOver: &apply.TakeOver{Managers: apply.DefaultTakeOverManagers()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("takeover sync warned: %v", res.Warnings)
	}
	cm, err := f.dyn.Resource(configMapGVR).Namespace(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(cm.Object, "data", "k"); v != "new" {
		t.Errorf("data.k = %q after the takeover sync, want the value in git", v)
	}
	checkTakenOver(t, cm, "argocd-controller", fieldpath.MakePathOrDie("metadata", "annotations", "argocd.argoproj.io/tracking-id"))
}
