package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

const tunedConfigMapYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {value: from-git, tuned: from-git}
`

// createSyncApp creates an App of Source "repo" for path, with mutate applied.
func (cl *testCluster) createSyncApp(t *testing.T, name, path string, mutate func(*tendv1.App)) {
	t.Helper()
	app := &tendv1.App{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.Namespace},
		Spec: tendv1.AppSpec{
			SourceRef:   tendv1.NamespacedObjectReference{Name: "repo"},
			Path:        path,
			Destination: tendv1.Destination{Namespace: cl.Namespace},
			Sync:        tendv1.SyncPolicy{Prune: true, SelfHeal: true},
		},
	}
	if mutate != nil {
		mutate(app)
	}
	if err := cl.c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
}

func (cl *testCluster) waitApp(t *testing.T, name, what string, cond func(*tendv1.App) bool) *tendv1.App {
	t.Helper()
	var app tendv1.App
	eventually(t, "App "+name+" "+what, 2*time.Minute, func() bool {
		err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: cl.Namespace, Name: name}, &app)
		return err == nil && cond(&app)
	})
	return &app
}

func syncedAndHealthy(a *tendv1.App) bool {
	return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy"
}

// tendOwns reports whether tend's apply entry in obj's managedFields owns
// the field (a fieldsV1 path such as "f:spec" "f:replicas").
func tendOwns(fields []metav1.ManagedFieldsEntry, path ...string) bool {
	for _, f := range fields {
		if f.Manager != "tend" || f.Operation != metav1.ManagedFieldsOperationApply || f.Subresource != "" || f.FieldsV1 == nil {
			continue
		}
		raw := f.FieldsV1.GetRawString()
		idx := 0
		for _, p := range path {
			i := strings.Index(raw[idx:], `"`+p+`"`)
			if i < 0 {
				return false
			}
			idx += i
		}
		return true
	}
	return false
}

// TestIgnoreDifferencesInControllerAndDiff: another writer changes ignored
// fields (a JSON pointer and a jq expression) and one that is not ignored;
// the controller restores only the latter, never re-applies the Deployment
// whose only change was ignored, the App stays Synced, and `tend diff`
// agrees that nothing would change.
func TestIgnoreDifferencesInControllerAndDiff(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	cl.startController(t)
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("web", map[string]string{
		"apps/web/deploy.yaml": strings.Replace(webDeploymentYAML, "replicas: 1", "replicas: 2", 1),
		"apps/web/cfg.yaml":    tunedConfigMapYAML,
	})
	cl.createSource(t, "repo", repo.URL, nil)
	cl.createSyncApp(t, "web", "apps/web", func(a *tendv1.App) {
		a.Spec.IgnoreDifferences = []tendv1.IgnoreDifference{
			{Group: "apps", Kind: "Deployment", Name: "web", JSONPointers: []string{"/spec/replicas"}},
			{Kind: "ConfigMap", JQPathExpressions: []string{`.data.tuned`}},
		}
	})
	cl.waitApp(t, "web", "Synced and Healthy at "+rev, func(a *tendv1.App) bool { return syncedAndHealthy(a) && a.Status.Revision == rev })
	if code, out, stderr := cl.tend(t, "diff", "web"); code != ExitOK {
		t.Fatalf("diff after the first sync: exit %d: %s\n%s", code, stderr, out)
	}

	// Someone scales the Deployment by hand (a field tend would otherwise
	// take back from kubectl), and edits the ConfigMap: the ignored key
	// and one that is not.
	d, err := cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !tendOwns(d.ManagedFields, "f:spec", "f:replicas") {
		t.Fatalf("tend does not own spec.replicas after creating the Deployment: %v", d.ManagedFields)
	}
	five := int32(5)
	d.Spec.Replicas = &five
	if _, err := cl.Clientset.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["tuned"], cm.Data["value"] = "by-hand", "by-hand"
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	// tend restores the field that is not ignored...
	eventually(t, "ConfigMap cfg's value restored", time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "from-git"
	})
	// ...and leaves the ignored ones.
	cm, err = cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["tuned"] != "by-hand" {
		t.Errorf("ConfigMap cfg's tuned = %q, want the hand edit kept (jqPathExpressions)", cm.Data["tuned"])
	}
	d, err = cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 5 {
		t.Errorf("replicas = %d, want the hand edit kept (jsonPointers)", *d.Spec.Replicas)
	}
	if tendOwns(d.ManagedFields, "f:spec", "f:replicas") {
		t.Error("tend applied the Deployment again although only an ignored field changed")
	}
	a := cl.waitApp(t, "web", "Synced", func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	if len(a.Status.OutOfSync) != 0 {
		t.Errorf("outOfSync = %v, want none", a.Status.OutOfSync)
	}
	for _, r := range a.Status.History {
		if r.Result != "Succeeded" {
			t.Errorf("history has a failed sync: %+v", r)
		}
	}
	code, out, stderr := cl.tend(t, "diff", "web")
	if code != ExitOK || strings.TrimSpace(out) != "2 unchanged" {
		t.Fatalf("diff after ignored changes: exit %d: %s\n%s", code, stderr, out)
	}

	// A change in git to an ignored field is not applied either; the
	// other fields of the object still are.
	rev2 := repo.Commit("web 2", map[string]string{
		"apps/web/deploy.yaml": strings.Replace(strings.Replace(webDeploymentYAML, "replicas: 1", "replicas: 3", 1), "web:1", "web:2", 1),
	})
	cl.waitApp(t, "web", "Synced at "+rev2, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev2 })
	d, err = cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 5 || d.Spec.Template.Spec.Containers[0].Image != "web:2" {
		t.Errorf("after a commit: replicas %d image %s, want 5 (ignored) and web:2", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
}

// TestDiffAgreesWithSyncOnControllersFields: a controller (not a person)
// took spec.replicas; a sync leaves it to that controller, so after a sync
// `tend diff` shows nothing to change and exits 0, noting the field.
func TestDiffAgreesWithSyncOnControllersFields(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	cl.startController(t)
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("web", map[string]string{"apps/web/deploy.yaml": webDeploymentYAML})
	cl.createSource(t, "repo", repo.URL, nil)
	cl.createSyncApp(t, "web", "apps/web", func(a *tendv1.App) { a.Spec.Sync.SelfHeal = false })
	cl.waitApp(t, "web", "Synced and Healthy at "+rev, func(a *tendv1.App) bool { return syncedAndHealthy(a) && a.Status.Revision == rev })

	// An autoscaler scales it through the scale subresource.
	scale, err := cl.Clientset.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 4
	if _, err := cl.Clientset.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler"}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cl.tend(t, "sync", "web", "--timeout", "2m")
	if code != ExitOK {
		t.Fatalf("sync: exit %d: %s\n%s", code, stderr, out)
	}
	var d *appsv1.Deployment
	if d, err = cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 4 {
		t.Fatalf("the sync took replicas back from the autoscaler: %v %v", d.Spec.Replicas, err)
	}
	code, out, stderr = cl.tend(t, "diff", "web")
	if code != ExitOK || !strings.Contains(out, "1 unchanged") || !strings.Contains(out, "fields left to the controllers that own them") {
		t.Fatalf("diff after the sync: exit %d, want 0 and a note: %s\n%s", code, stderr, out)
	}
}
