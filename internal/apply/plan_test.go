package apply

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func objs(t *testing.T, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func names(us []*unstructured.Unstructured) string {
	var s []string
	for _, u := range us {
		s = append(s, u.GetKind()+"/"+u.GetName())
	}
	return strings.Join(s, " ")
}

func TestPlanOrdersPrerequisitesWavesAndKinds(t *testing.T) {
	p, err := NewPlan(objs(t,
		`{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: a}}`,
		`{apiVersion: example.dev/v1, kind: Widget, metadata: {name: w, namespace: a}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: late, namespace: a, annotations: {tend.dev/wave: "2"}}}`,
		`{apiVersion: v1, kind: Service, metadata: {name: db, namespace: a, annotations: {argocd.argoproj.io/sync-wave: "-1"}}}`,
		`{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: widgets.example.dev}}`,
		`{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: reader}}`,
		`{apiVersion: v1, kind: Namespace, metadata: {name: a}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: a}}`,
		`{apiVersion: storage.k8s.io/v1, kind: StorageClass, metadata: {name: fast}}`,
	), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		got = append(got, s.Name+": "+names(s.Objects))
	}
	want := []string{
		"namespaces and CRDs: Namespace/a CustomResourceDefinition/widgets.example.dev",
		"wave -1: Service/db",
		"wave 0: ClusterRole/reader StorageClass/fast ConfigMap/cfg Deployment/web Widget/w",
		"wave 2: ConfigMap/late",
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Fatalf("steps:\n%s\nwant:\n%s", g, w)
	}
	if !p.Steps[0].Prerequisites {
		t.Error("first step not marked as prerequisites")
	}
}

func TestPlanHooks(t *testing.T) {
	docs := []string{
		`{apiVersion: batch/v1, kind: Job, metadata: {name: migrate, namespace: a, annotations: {tend.dev/hook: pre-sync, tend.dev/hook-delete-policy: "on-success"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: argo-post, namespace: a, annotations: {argocd.argoproj.io/hook: PostSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: helm-install, namespace: a, annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: "5"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: helm-upgrade, namespace: a, annotations: {helm.sh/hook: pre-upgrade, helm.sh/hook-weight: "-5"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: helm-both, namespace: a, annotations: {helm.sh/hook: "pre-install,pre-upgrade"}}}`,
		`{apiVersion: v1, kind: Pod, metadata: {name: helm-test, namespace: a, annotations: {helm.sh/hook: test}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: skip, namespace: a, annotations: {argocd.argoproj.io/hook: Skip}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: cleanup, namespace: a, annotations: {argocd.argoproj.io/hook: SyncFail}}}`,
	}
	install, err := NewPlan(objs(t, docs...), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hookNames(install.PreSync), "migrate helm-both helm-install"; got != want {
		t.Errorf("install pre-sync hooks = %q, want %q", got, want)
	}
	upgrade, err := NewPlan(objs(t, docs...), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hookNames(upgrade.PreSync), "helm-upgrade migrate helm-both"; got != want {
		t.Errorf("upgrade pre-sync hooks = %q, want %q", got, want)
	}
	if got, want := hookNames(install.PostSync), "argo-post"; got != want {
		t.Errorf("post-sync = %q, want %q", got, want)
	}
	if got, want := hookNames(install.SyncFail), "cleanup"; got != want {
		t.Errorf("sync-fail = %q, want %q", got, want)
	}
	if got, want := names(install.Skipped), "Job/helm-upgrade Pod/helm-test ConfigMap/skip"; got != want {
		t.Errorf("skipped = %q, want %q", got, want)
	}
	if len(install.Steps) != 0 {
		t.Errorf("hooks leaked into steps: %v", install.Steps)
	}
	m := install.PreSync[0]
	if !m.Delete[OnSuccess] || m.Delete[BeforeCreate] {
		t.Errorf("migrate delete policy = %v", m.Delete)
	}
	if !install.PreSync[1].Delete[BeforeCreate] {
		t.Errorf("default delete policy is not before-create: %v", install.PreSync[1].Delete)
	}
	if !install.PostSync[0].Delete[OnSuccess] {
		t.Errorf("argo HookSucceeded not mapped: %v", install.PostSync[0].Delete)
	}
}

// A hook of several phases runs in each: Argo CD's "PreSync,PostSync" and
// Helm's "pre-install,post-install"; Argo CD's "Sync" in a list is applied
// with the main set.
func TestPlanHooksOfSeveralPhases(t *testing.T) {
	docs := []string{
		`{apiVersion: batch/v1, kind: Job, metadata: {name: argo-both, namespace: a, annotations: {argocd.argoproj.io/hook: "PreSync,PostSync"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: helm-both, namespace: a, annotations: {helm.sh/hook: "pre-install,post-install,post-upgrade"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: argo-fail, namespace: a, annotations: {argocd.argoproj.io/hook: "PostSync, SyncFail"}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: argo-sync, namespace: a, annotations: {argocd.argoproj.io/hook: Sync}}}`,
	}
	for _, upgrade := range []bool{false, true} {
		p, err := NewPlan(objs(t, docs...), upgrade)
		if err != nil {
			t.Fatal(err)
		}
		pre, post := "argo-both helm-both", "argo-both helm-both argo-fail"
		if upgrade {
			pre = "argo-both"
		}
		for _, c := range []struct {
			phase     string
			got, want string
		}{
			{"pre-sync", hookNames(p.PreSync), pre},
			{"post-sync", hookNames(p.PostSync), post},
			{"sync-fail", hookNames(p.SyncFail), "argo-fail"},
			{"main set", names(p.All()), "ConfigMap/argo-sync"},
		} {
			if c.got != c.want {
				t.Errorf("upgrade %v: %s = %q, want %q", upgrade, c.phase, c.got, c.want)
			}
		}
		for _, h := range p.PostSync {
			if h.Phase != PostSync {
				t.Errorf("upgrade %v: %s in post-sync has phase %s", upgrade, h.Object.GetName(), h.Phase)
			}
		}
	}
}

// TestHookPhases: the phases a hook object runs in, whichever tool's
// annotations it carries, for a first sync and an upgrade alike; none for
// an object applied with the main set or with a bad annotation.
func TestHookPhases(t *testing.T) {
	for doc, want := range map[string]string{
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j, annotations: {tend.dev/hook: post-sync}}}`:                             "post-sync",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j, annotations: {argocd.argoproj.io/hook: "PreSync,SyncFail"}}}`:          "pre-sync sync-fail",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j, annotations: {helm.sh/hook: "pre-upgrade,post-install,post-delete"}}}`: "post-sync post-delete pre-sync",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j, annotations: {argocd.argoproj.io/hook: Sync}}}`:                        "",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j, annotations: {tend.dev/hook: sometimes}}}`:                             "",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j}}`:                                                                      "",
	} {
		var got []string
		for _, ph := range HookPhases(objs(t, doc)[0]) {
			got = append(got, string(ph))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: phases %q, want %q", doc, got, want)
		}
	}
}

func hookNames(hs []Hook) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Object.GetName())
	}
	return strings.Join(s, " ")
}

func TestPlanBadAnnotations(t *testing.T) {
	for _, doc := range []string{
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: a, annotations: {tend.dev/wave: soon}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: a, annotations: {tend.dev/hook: sometimes}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: a, annotations: {tend.dev/hook: pre-sync, tend.dev/hook-delete-policy: never}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: a, annotations: {argocd.argoproj.io/hook: "PreSync,PreDelete"}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: a, annotations: {tend.dev/hook: post-delete, tend.dev/hook-delete-policy: later}}}`,
	} {
		_, err := NewPlan(objs(t, doc), false)
		if err == nil || !strings.Contains(err.Error(), "ConfigMap a/x") {
			t.Errorf("%s: error %v does not name the object", doc, err)
		}
	}
}

// Post-delete hooks of tend, Argo CD (alone or in a list) and Helm are
// kept for the App's deletion: a sync neither applies nor skips them.
func TestPlanPostDeleteHooks(t *testing.T) {
	docs := []string{
		`{apiVersion: batch/v1, kind: Job, metadata: {name: tend-cleanup, namespace: a, annotations: {tend.dev/hook: post-delete, tend.dev/wave: "2"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: argo-cleanup, namespace: a, annotations: {argocd.argoproj.io/hook: PostDelete, argocd.argoproj.io/hook-delete-policy: "HookSucceeded,HookFailed"}}}`,
		`{apiVersion: batch/v1, kind: Job, metadata: {name: argo-both, namespace: a, annotations: {argocd.argoproj.io/hook: "PostSync,PostDelete", argocd.argoproj.io/sync-wave: "-1"}}}`,
		`{apiVersion: v1, kind: ServiceAccount, metadata: {name: helm-cleanup, namespace: a, annotations: {helm.sh/hook: post-delete, helm.sh/hook-weight: "-5"}}}`,
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: main, namespace: a}}`,
	}
	p, err := NewPlan(objs(t, docs...), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hookNames(p.PostDelete), "helm-cleanup argo-both argo-cleanup tend-cleanup"; got != want {
		t.Errorf("post-delete hooks = %q, want %q (by weight)", got, want)
	}
	if got, want := hookNames(p.PostSync), "argo-both"; got != want {
		t.Errorf("post-sync hooks = %q, want %q", got, want)
	}
	if got, want := names(p.All()), "ConfigMap/main"; got != want {
		t.Errorf("main set = %q, want %q", got, want)
	}
	if len(p.Skipped) != 0 {
		t.Errorf("skipped %d objects, want none", len(p.Skipped))
	}
	for _, h := range p.PostDelete {
		if h.Phase != PostDelete {
			t.Errorf("%s: phase %s", h.Object.GetName(), h.Phase)
		}
		if got, want := h.Delete[OnSuccess] && h.Delete[OnFailure], h.Object.GetName() == "argo-cleanup"; got != want {
			t.Errorf("%s: delete policy %v", h.Object.GetName(), h.Delete)
		}
	}
	hooks, err := PostDeleteHooks(objs(t, docs...))
	if err != nil || len(hooks) != 4 {
		t.Errorf("PostDeleteHooks = %d hooks, %v; want 4", len(hooks), err)
	}
}

func TestInventoryRoundTrip(t *testing.T) {
	inv := NewInventory()
	inv.Revision = "abc"
	inv.Entries[ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "a", Name: "web"}] = Entry{Version: "v1", Desired: "d1", Fingerprint: "f1"}
	inv.Entries[ObjectRef{Kind: "Namespace", Name: "a"}] = Entry{Version: "v1", Desired: "d2", Fingerprint: "f2"}
	b, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInventory(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(inv) {
		t.Fatalf("round trip: got %+v, want %+v", got, inv)
	}
	if _, err := DecodeInventory([]byte("garbage")); err == nil {
		t.Fatal("decoded garbage")
	}
}

func TestParseAndRemoveFieldPath(t *testing.T) {
	obj := map[string]any{"spec": map[string]any{
		"replicas": int64(3),
		"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "a", "image": "x"},
			map[string]any{"name": "web", "image": "y"},
		}}},
	}}
	p, ok := parseFieldPath(`.spec.template.spec.containers[name="web"].image`)
	if !ok {
		t.Fatal("parse failed")
	}
	if !removeFieldPath(obj, p) {
		t.Fatal("remove failed")
	}
	c := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	if _, has := c[1].(map[string]any)["image"]; has {
		t.Error("image of web still present")
	}
	if c[0].(map[string]any)["image"] != "x" {
		t.Error("image of a removed")
	}
	p, _ = parseFieldPath(".spec.replicas")
	if !removeFieldPath(obj, p) {
		t.Fatal("remove replicas failed")
	}
	if _, has := obj["spec"].(map[string]any)["replicas"]; has {
		t.Error("replicas still present")
	}
	if _, ok := parseFieldPath("spec"); ok {
		t.Error("parsed a path without a leading dot")
	}
}
