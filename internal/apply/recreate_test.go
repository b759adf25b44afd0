package apply_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/diff"
)

// TestRecreateOnImmutableChange: objects whose change the API server
// refuses as immutable are deleted and created again when an annotation
// asks for it (tend's, Flux's force, Argo CD's Force=true,Replace=true);
// a diff shows them as the objects a sync would create and says so;
// without an annotation the sync fails and the object stays.
func TestRecreateOnImmutableChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cm := func(name, annotations, value string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: NS, annotations: {%s}}\nimmutable: true\ndata: {value: %q}\n", name, annotations, value)
	}
	annotated := map[string]string{
		"tend":  `tend.dev/recreate: "true"`,
		"flux":  `kustomize.toolkit.fluxcd.io/force: Enabled`,
		"argo":  `argocd.argoproj.io/sync-options: "Force=true,Replace=true"`,
		"plain": ``,
		// Replace=true alone is not a recreate.
		"replace": `argocd.argoproj.io/sync-options: "Replace=true"`,
	}
	version := func(v string, names ...string) []string {
		var docs []string
		for _, n := range names {
			docs = append(docs, cm(n, annotated[n], v))
		}
		return docs
	}
	recreated := []string{"tend", "flux", "argo"}
	kept := []string{"plain", "replace"}
	all := append(append([]string{}, recreated...), kept...)
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, version("v1", all...)...)}); err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, n := range all {
		live, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[n] = string(live.UID)
	}

	d, err := f.engine.Diff(ctx, apply.Request{App: f.app, Objects: f.objs(t, version("v2", recreated...)...)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Errors) != 0 || len(d.Objects) != len(recreated) {
		t.Fatalf("diff: errors %v, %d objects; want none and %d", d.Errors, len(d.Objects), len(recreated))
	}
	for _, od := range d.Objects {
		if od.Action != diff.ActionCreate {
			t.Errorf("diff of %s: %s, want create", od.Name, od.Action)
		}
	}
	if w := strings.Join(d.Warnings, "\n"); strings.Count(w, "a sync recreates it") != len(recreated) {
		t.Errorf("diff warnings do not say each object is recreated:\n%s", w)
	}

	res, err := f.sync(t, apply.Request{Objects: f.objs(t, version("v2", all...)...)})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap "+f.env.Namespace+"/plain") || !strings.Contains(err.Error(), "ConfigMap "+f.env.Namespace+"/replace") {
		t.Fatalf("sync error %v; want one naming plain and replace", err)
	}
	actions := map[string]apply.Action{}
	for _, o := range res.Objects {
		actions[o.Ref.Name] = o.Action
	}
	for _, n := range all {
		live, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		isRecreated := string(live.UID) != uids[n]
		want := slices.Contains(recreated, n)
		if isRecreated != want || (want && (live.Data["value"] != "v2" || actions[n] != apply.Recreated)) || (!want && live.Data["value"] != "v1") {
			t.Errorf("%s: recreated %v (want %v), value %q, action %q", n, isRecreated, want, live.Data["value"], actions[n])
		}
	}
}
