package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Behaviour tests of Cluster, AppSet and Notifier fields (see
// api/v1alpha1/testdata/field-tests.yaml).

// TestClusterKubeconfigSecretRefKey: a Cluster reads its kubeconfig from
// the Secret key kubeconfigSecretRef.key names (here the test cluster's
// own, under "config"; the default key "kubeconfig" holds something
// else), and an App deploys through it.
func TestClusterKubeconfigSecretRefKey(t *testing.T) {
	var ctl *Controller
	// Registered first, so it runs after the controller stopped.
	t.Cleanup(func() {
		if ctl == nil {
			return
		}
		for _, conn := range ctl.Clusters.All() {
			if conn != ctl.Clusters.Local {
				conn.Close()
			}
		}
	})
	e := startController(t)
	ctl = e.ctrl
	kc, err := clientcmd.LoadFromFile(e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.FlattenConfig(kc); err != nil {
		t.Fatal(err)
	}
	raw, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	repo := newCtlRepo(t)
	rev := repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("through-the-cluster", "v1")})
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "self-kubeconfig"}, Data: map[string][]byte{
			"config":     raw,
			"kubeconfig": []byte("not a kubeconfig"),
		}},
		remoteCluster("self", "self-kubeconfig", func(cl *tendv1.Cluster) { cl.Spec.KubeconfigSecretRef.Key = "config" }),
		gitSource("repo", repo.URL),
		newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
			a.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: "self"}
		}),
	)
	e.waitCluster(t, "self", "Ready", 60*time.Second, clusterReady)
	e.waitApp(t, "app", "synced through the Cluster", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev
	})
	if got := configMapValue(t, e.Env, e.Namespace, "through-the-cluster"); got != "v1" {
		t.Errorf("through-the-cluster = %q, want v1", got)
	}
}

// TestAppSetSourceRefNamespace: a directories generator reads the Source
// its sourceRef.namespace names, not the one of that name in the AppSet's
// namespace.
func TestAppSetSourceRefNamespace(t *testing.T) {
	e, other := startControllerTwoNamespaces(t)
	theirs, ours := newCtlRepo(t), newCtlRepo(t)
	theirs.commit("theirs", map[string]string{
		"apps/alpha/cm.yaml": configMapYAML("alpha", "x"),
		"apps/beta/cm.yaml":  configMapYAML("beta", "x"),
	})
	ours.commit("ours", map[string]string{"apps/gamma/cm.yaml": configMapYAML("gamma", "x")})
	createIn(t, e, other, gitSource("repo", theirs.URL))
	ref := tendv1.NamespacedObjectReference{Name: "repo", Namespace: other}
	e.create(t, gitSource("repo", ours.URL), &tendv1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Name: "set"},
		Spec: tendv1.AppSetSpec{
			Generators: []tendv1.Generator{{Directories: &tendv1.DirectoriesGenerator{SourceRef: ref, Include: []string{"apps/*"}}}},
			Template: tendv1.AppTemplate{
				Metadata: tendv1.AppTemplateMeta{Name: "{{path.basename}}"},
				Spec: tendv1.AppSpec{
					SourceRef:   ref,
					Path:        "{{path}}",
					Destination: tendv1.Destination{Namespace: e.Namespace},
					Sync:        tendv1.SyncPolicy{Prune: true},
				},
			},
		},
	})
	// The AppSet creates its Apps one at a time: wait for its status to
	// say it is done, then compare what exists.
	var set tendv1.AppSet
	eventually(t, "the AppSet Ready with its Apps", 60*time.Second, func() bool {
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "set"}, &set); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(set.Status.Conditions, tendv1.ConditionReady) && set.Status.ObservedGeneration == set.Generation
	})
	var apps tendv1.AppList
	if err := e.c.List(context.Background(), &apps, client.InNamespace(e.Namespace)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range apps.Items {
		names = append(names, a.Name)
	}
	if got, want := strings.Join(names, ","), "alpha,beta"; got != want {
		t.Fatalf("generated Apps %s (status.apps %v), want %s (the directories of %s/repo)", got, set.Status.Apps, want, other)
	}
	e.waitApp(t, "alpha", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != "" })
}

// TestNotifierStatusObservedGenerationAndSuspend: a Notifier's status
// tells which generation it reflects and that it is suspended, and that
// it is ready again once resumed.
func TestNotifierStatusObservedGenerationAndSuspend(t *testing.T) {
	e := startController(t)
	e.create(t, &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "hook"}, Spec: tendv1.NotifierSpec{
		Provider: "webhook", Address: "http://127.0.0.1:1/hook", Suspend: true,
	}})
	wait := func(what string, cond func(*tendv1.Notifier) bool) *tendv1.Notifier {
		t.Helper()
		var n tendv1.Notifier
		eventually(t, what, 30*time.Second, func() bool {
			return e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "hook"}, &n) == nil && cond(&n)
		})
		return &n
	}
	ready := func(n *tendv1.Notifier) *metav1.Condition {
		return meta.FindStatusCondition(n.Status.Conditions, tendv1.ConditionReady)
	}
	n := wait("Ready=False Suspended", func(n *tendv1.Notifier) bool {
		c := ready(n)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "Suspended"
	})
	if n.Status.ObservedGeneration != n.Generation {
		t.Errorf("observedGeneration = %d, want %d", n.Status.ObservedGeneration, n.Generation)
	}
	orig := n.DeepCopy()
	n.Spec.Suspend = false
	if err := e.c.Patch(context.Background(), n, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	gen := n.Generation
	n = wait("the resumed Notifier's status", func(n *tendv1.Notifier) bool { return n.Status.ObservedGeneration == gen })
	if c := ready(n); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("resumed Notifier: Ready %+v, want True", c)
	}
}
