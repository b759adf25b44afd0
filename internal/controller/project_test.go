package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// TestProjectRulesCheckedBeforeApply: Apps naming a Project keep its
// rules. An App whose Project does not exist yet waits and syncs once it is
// created (the Project watch, not its hour-long interval); an App whose
// revision renders a kind or a namespace the Project refuses is stalled
// with a condition naming each object and rule, and nothing of it is
// applied; allowing the kinds in the Project syncs it. A reference to a
// Source in another namespace, or a repository the Project does not list,
// is refused before anything is rendered, unless the Project allows
// cross-namespace references.
func TestProjectRulesCheckedBeforeApply(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	role := "tend-project-test-" + e.Namespace
	repo := newCtlRepo(t)
	repo.commit("apps", map[string]string{
		"apps/ok/cm.yaml":  configMapYAML("ok", "1"),
		"apps/bad/cm.yaml": configMapYAML("bad", "1"),
		"apps/bad/role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: " + role + "\n" +
			"rules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get]\n",
		"apps/bad/quota.yaml": "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: bad\nspec:\n  hard:\n    pods: \"10\"\n",
		"apps/bad/other.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: kube-public\ndata: {a: b}\n",
	})
	t.Cleanup(func() {
		_ = e.Clientset.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
		_ = e.Clientset.CoreV1().ConfigMaps("kube-public").Delete(context.Background(), "elsewhere", metav1.DeleteOptions{})
	})
	inProject := func(a *tendv1.App) {
		a.Spec.Project = "team"
		a.Spec.Sync.Interval = metav1.Duration{Duration: time.Hour}
	}
	e.create(t, gitSource("repo", repo.URL),
		newApp("ok", "repo", "apps/ok", e.Namespace, inProject),
		newApp("bad", "repo", "apps/bad", e.Namespace, inProject),
		newApp("cross", "repo", "apps/ok", e.Namespace, inProject, func(a *tendv1.App) { a.Spec.SourceRef.Namespace = "kube-system" }),
	)
	e.waitApp(t, "ok", "waiting for its Project", time.Minute, func(a *tendv1.App) bool {
		r := condition(a, tendv1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == ReasonProjectNotFound &&
			strings.Contains(r.Message, "the Project "+e.Namespace+"/team (spec.project) does not exist")
	})

	p := &tendv1.Project{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: tendv1.ProjectSpec{
			SourceRepos:         []string{"http://127.0.0.1:*/*", "!*/forbidden.git"},
			Destinations:        []tendv1.ProjectDestination{{Cluster: "in-cluster", Namespace: e.Namespace}},
			NamespacedResources: tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Group: "", Kind: "ResourceQuota"}}},
		},
	}
	e.create(t, p)
	e.waitApp(t, "ok", "Synced once its Project exists", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy"
	})
	bad := e.waitApp(t, "bad", "refused by its Project", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonProjectDenied
	})
	msg := condition(bad, tendv1.ConditionStalled).Message
	for _, want := range []string{
		"the Project " + e.Namespace + "/team does not allow it",
		"ClusterRole " + role + ": the cluster-scoped kind ClusterRole.rbac.authorization.k8s.io is not allowed by spec.clusterResources",
		"ResourceQuota " + e.Namespace + "/bad: the kind ResourceQuota is not allowed by spec.namespacedResources",
		`ConfigMap kube-public/elsewhere: namespace "kube-public" on cluster "in-cluster" matches no entry of spec.destinations`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Stalled message %q lacks %q", msg, want)
		}
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "bad", metav1.GetOptions{}); err == nil {
		t.Error("the refused App's ConfigMap was applied")
	}
	cross := e.waitApp(t, "cross", "refused for its Source in another namespace", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonProjectDenied
	})
	if msg := condition(cross, tendv1.ConditionStalled).Message; !strings.Contains(msg, `spec.sourceRef names a Source in namespace "kube-system", and spec.allowCrossNamespaceRefs is not set`) {
		t.Errorf("cross's Stalled message %q does not name spec.sourceRef", msg)
	}

	// The Project allows the kinds and the namespace: bad syncs, on the
	// Project's change alone.
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.ClusterResources.Allow = []tendv1.GroupKindPattern{{Group: "rbac.authorization.k8s.io", Kind: "Cluster*"}}
	p.Spec.NamespacedResources.Deny = nil
	p.Spec.Destinations = append(p.Spec.Destinations, tendv1.ProjectDestination{Namespace: "kube-*"})
	p.Spec.AllowCrossNamespaceRefs = true
	if err := e.c.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	// cross may now name a Source elsewhere (this controller does not
	// watch kube-system, and says so).
	e.waitApp(t, "cross", "past its Project, looking for its Source", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonSourceNotFound && strings.Contains(c.Message, "kube-system/repo is in a namespace this controller does not watch")
	})
	e.waitApp(t, "bad", "Synced once its Project allows it", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return a.Status.Sync == tendv1.SyncSynced && (c == nil || c.Status == metav1.ConditionFalse)
	})
	if _, err := e.Clientset.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{}); err != nil {
		t.Errorf("ClusterRole %s after the Project allowed it: %v", role, err)
	}

	// A repository the Project denies (! wins over the allowing pattern).
	forbidden := gitSource("forbidden", strings.TrimSuffix(repo.URL, "/")+"/../forbidden.git")
	e.create(t, forbidden, newApp("denied-repo", "forbidden", "apps/ok", e.Namespace, inProject))
	denied := e.waitApp(t, "denied-repo", "refused for its repository", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonProjectDenied
	})
	if msg := condition(denied, tendv1.ConditionStalled).Message; !strings.Contains(msg, "which no pattern of spec.sourceRepos allows") {
		t.Errorf("denied-repo's Stalled message %q does not name spec.sourceRepos", msg)
	}
}

// A Source whose URL changed still holds the old repository's files until
// a fetch from the new one succeeds: an App of a Project does not render
// them (the Project allowed the new URL, not the old files).
func TestProjectAppWaitsForTheNewURLsFiles(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app", map[string]string{"app/cm.yaml": configMapYAML("moved", "1")})
	p := &tendv1.Project{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: tendv1.ProjectSpec{
			SourceRepos:  []string{repo.URL},
			Destinations: []tendv1.ProjectDestination{{Namespace: e.Namespace}},
		},
	}
	e.create(t, p, gitSource("repo", repo.URL), newApp("web", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Project = "team"
		a.Spec.Sync.Interval = metav1.Duration{Duration: time.Hour}
	}))
	e.waitApp(t, "web", "Synced", time.Minute, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })

	// The Source moves to a repository nothing answers at; the Project
	// now allows only that one.
	var src tendv1.Source
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: "repo"}, &src); err != nil {
		t.Fatal(err)
	}
	src.Spec.Git.URL = "http://127.0.0.1:1/moved.git"
	if err := e.c.Update(ctx, &src); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.SourceRepos = []string{"http://127.0.0.1:1/*"}
	if err := e.c.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "web", "waiting for the new URL's files", time.Minute, func(a *tendv1.App) bool {
		r := condition(a, tendv1.ConditionReady)
		return r != nil && r.Reason == ReasonArtifactNotReady && strings.Contains(r.Message, "still holds the files of "+repo.URL)
	})
}

// A Namespace labelled tend.dev/project binds every App there that names
// no Project: leaving spec.project out does not leave the Project.
func TestProjectFromNamespaceLabel(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app", map[string]string{"app/cm.yaml": configMapYAML("unbound", "1")})
	ns, err := e.Clientset.CoreV1().Namespaces().Get(ctx, e.Namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[tendv1.LabelProject] = "team"
	if _, err := e.Clientset.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.create(t,
		&tendv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: tendv1.ProjectSpec{
			SourceRepos:         []string{"*"},
			Destinations:        []tendv1.ProjectDestination{{Namespace: e.Namespace}},
			NamespacedResources: tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Kind: "ConfigMap"}}},
		}},
		gitSource("repo", repo.URL), newApp("web", "repo", "app", e.Namespace))
	e.waitApp(t, "web", "refused by the Namespace's Project", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonProjectDenied && strings.Contains(c.Message, "the kind ConfigMap is not allowed by spec.namespacedResources")
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "unbound", metav1.GetOptions{}); err == nil {
		t.Error("the ConfigMap was applied although the Namespace's Project denies it")
	}
}
