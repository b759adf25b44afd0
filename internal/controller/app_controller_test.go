package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func TestAppFollowsGitSource(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	rev1 := repo.commit("web v1", map[string]string{
		"apps/web/deploy.yaml":    deploymentYAML("web", "nginx:1.27", ""),
		"apps/web/config.yaml":    configMapYAML("web-config", "v1"),
		"apps/web/obsolete.yaml":  configMapYAML("obsolete", "x"),
		"apps/web/README.md":      "not a manifest",
		"apps/other/ignored.yaml": configMapYAML("other", "x"),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("web", "repo", "apps/web", e.Namespace))

	a := e.waitApp(t, "web", "Synced and Healthy at "+rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && a.Status.Revision == rev1
	})
	if a.Status.Objects != 3 {
		t.Errorf("objects = %d, want 3", a.Status.Objects)
	}
	if c := condition(a, tendv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v", c)
	}
	if len(a.Status.History) != 1 || a.Status.History[0].Revision != rev1 || a.Status.History[0].Result != "Succeeded" || a.Status.History[0].Changed != 3 {
		t.Errorf("history = %+v", a.Status.History)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a file outside the App's path was applied: %v", err)
	}

	// Printer columns: what `kubectl get apps` shows.
	table := getTable(t, e.Config, "/apis/tend.dev/v1alpha1/namespaces/"+e.Namespace+"/apps")
	if !strings.Contains(table, "Synced") || !strings.Contains(table, "Healthy") || !strings.Contains(table, rev1) {
		t.Errorf("kubectl get apps does not show sync, health and revision:\n%s", table)
	}

	// A new commit changes one object and removes another.
	rev2 := repo.commit("web v2", map[string]string{
		"apps/web/config.yaml":   configMapYAML("web-config", "v2"),
		"apps/web/obsolete.yaml": "",
	})
	e.waitApp(t, "web", "revision "+rev2, 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev2 && a.Status.Sync == tendv1.SyncSynced
	})
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v2" {
		t.Fatalf("web-config not updated: %v %v", cm.Data, err)
	}
	eventually(t, "obsolete pruned", 10*time.Second, func() bool {
		_, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "obsolete", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// Events tell the story.
	eventually(t, "events for the Source and the App", 10*time.Second, func() bool {
		evs, err := e.Clientset.EventsV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		var newRev, synced bool
		for _, ev := range evs.Items {
			newRev = newRev || (ev.Regarding.Kind == "Source" && ev.Reason == ReasonNewRevision)
			synced = synced || (ev.Regarding.Kind == "App" && ev.Reason == ReasonSynced && strings.Contains(ev.Note, rev2[:12]))
		}
		return newRev && synced
	})

	// Drift: a hand edit is undone (selfHeal).
	patch := []byte(`{"data":{"value":"edited by hand"}}`)
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Patch(ctx, "web-config", "application/merge-patch+json", patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "hand edit undone", 15*time.Second, func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "web-config", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "v2"
	})
	t.Logf("drift corrected in %s", time.Since(start).Round(10*time.Millisecond))
}

func getTable(t *testing.T, cfg *rest.Config, path string) string {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.AcceptContentTypes = "application/json;as=Table;g=meta.k8s.io;v=v1"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = clientSchemeCodecs()
	rc, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rc.Get().AbsPath(path).SetHeader("Accept", c.AcceptContentTypes).DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var tbl metav1.Table
	if err := json.Unmarshal(b, &tbl); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, col := range tbl.ColumnDefinitions {
		sb.WriteString(col.Name + "\t")
	}
	sb.WriteString("\n")
	for _, row := range tbl.Rows {
		for _, cell := range row.Cells {
			b, _ := json.Marshal(cell)
			sb.WriteString(string(b) + "\t")
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func TestDependsOn(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("db stuck", map[string]string{
		"db/deploy.yaml": deploymentYAML("db", "postgres:17", "tend.dev/kwok-pod: not-ready"),
		"web/cm.yaml":    configMapYAML("web", "x"),
	})
	e.create(t, gitSource("repo", repo.URL),
		newApp("db", "repo", "db", e.Namespace),
		newApp("web", "repo", "web", e.Namespace, func(a *tendv1.App) {
			a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "db"}}
		}))
	a := e.waitApp(t, "web", "waiting for db", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonDependencyNotReady && strings.Contains(c.Message, "db")
	})
	if a.Status.Revision != "" {
		t.Fatalf("web synced before db was healthy: %+v", a.Status)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("web's objects applied before db was healthy: %v", err)
	}
	// db's pods become ready: db turns Healthy, then web syncs.
	repo.commit("db ready", map[string]string{"db/deploy.yaml": deploymentYAML("db", "postgres:17", "")})
	db := e.waitApp(t, "db", "db Healthy", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Health == "Healthy" && a.Status.Sync == tendv1.SyncSynced })
	web := e.waitApp(t, "web", "web Synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != "" })
	if web.Status.History[0].StartedAt.Before(&db.Status.History[0].StartedAt) {
		t.Errorf("web synced at %s, before db at %s", web.Status.History[0].StartedAt, db.Status.History[0].StartedAt)
	}

	// A cycle is reported, and nothing is applied.
	e.create(t,
		newApp("a", "repo", "web", e.Namespace, func(a *tendv1.App) { a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "b"}} }),
		newApp("b", "repo", "web", e.Namespace, func(a *tendv1.App) { a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "a"}} }))
	e.waitApp(t, "a", "cycle reported", 30*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonDependencyCycle && strings.Contains(c.Message, "a -> ") && strings.Contains(c.Message, "/b")
	})
}

func TestSyncWindowDenyBlocksAutoSync(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("blocked", "x")})
	// A daily deny window that opened a minute ago and lasts two hours.
	start := time.Now().UTC().Add(-time.Minute)
	schedule := fmt.Sprintf("%d %d * * *", start.Minute(), start.Hour())
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Windows = []tendv1.SyncWindow{{Kind: "deny", Schedule: schedule, Duration: metav1.Duration{Duration: 2 * time.Hour}}}
	}))
	a := e.waitApp(t, "app", "blocked by the window", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonSyncWindow
	})
	until := start.Truncate(time.Minute).Add(2 * time.Hour)
	if msg := readyMessage(a); !strings.Contains(msg, "until "+until.Format(time.RFC3339)) || a.Status.NextSyncAllowedAt == nil || !a.Status.NextSyncAllowedAt.Time.Equal(until) {
		t.Errorf("does not say until %s: %q, nextSyncAllowedAt %v", until, msg, a.Status.NextSyncAllowedAt)
	}
	if a.Status.Sync != tendv1.SyncOutOfSync {
		t.Errorf("sync = %s, want OutOfSync", a.Status.Sync)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "blocked", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("applied inside a deny window: %v", err)
	}
}

func TestRollbackAndAutoRollback(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	rev1 := repo.commit("v1", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1"), "app/deploy.yaml": deploymentYAML("web", "web:1", "")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.AutoRollback = true
		a.Spec.Health.Timeout = metav1.Duration{Duration: 3 * time.Second}
	}))
	e.waitApp(t, "app", "v1 healthy", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev1 && a.Status.Health == "Healthy" && len(a.Status.History) > 0 && a.Status.History[0].Healthy
	})
	rev2 := repo.commit("v2", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	e.waitApp(t, "app", "v2 healthy", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev2 && a.Status.Health == "Healthy" && a.Status.History[0].Healthy
	})

	// Manual rollback to the v1 history entry: pin it.
	a := e.app(t, "app")
	var entry *tendv1.SyncRecord
	for i := range a.Status.History {
		if a.Status.History[i].Revision == rev1 {
			entry = &a.Status.History[i]
		}
	}
	if entry == nil {
		t.Fatalf("no history entry for %s: %+v", rev1, a.Status.History)
	}
	a.Spec.TargetRevision = entry.Revision
	if err := e.c.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	a = e.waitApp(t, "app", "rolled back to v1", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev1 && a.Status.Sync == tendv1.SyncSynced
	})
	if cm, _ := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "cfg", metav1.GetOptions{}); cm.Data["value"] != "v1" {
		t.Fatalf("rollback did not restore cfg: %v", cm.Data)
	}
	e.waitApp(t, "app", "pinned message", 30*time.Second, func(a *tendv1.App) bool {
		return strings.Contains(readyMessage(a), "paused until spec.targetRevision is cleared")
	})
	// Unpin: the App follows the Source again.
	a.Spec.TargetRevision = ""
	if err := e.c.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "app", "back at v2", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev2 && a.Status.Health == "Healthy" && a.Status.History[0].Healthy
	})

	// A broken image: pods never become ready, health degrades after the
	// timeout, and tend re-applies v2.
	rev3 := repo.commit("v3 broken", map[string]string{"app/deploy.yaml": deploymentYAML("web", "web:broken", "tend.dev/kwok-pod: not-ready")})
	a = e.waitApp(t, "app", "auto-rollback to v2", 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.RolledBackRevision == rev3 && a.Status.Revision == rev2 && a.Status.Health == "Healthy"
	})
	// git still holds the broken revision: the App says so and waits.
	if a.Status.Sync != tendv1.SyncOutOfSync || !strings.Contains(readyMessage(a), "rolled back") {
		t.Errorf("after auto-rollback: sync %s, Ready %q", a.Status.Sync, readyMessage(a))
	}
	if !strings.Contains(a.Status.History[0].Message, "auto-rollback") || !strings.Contains(a.Status.History[0].Message, rev3[:12]) {
		t.Errorf("history does not report the rollback: %+v", a.Status.History[0])
	}
	d, err := e.Clientset.AppsV1().Deployments(e.Namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "web:1" {
		t.Fatalf("deployment not restored: %v %v", d.Spec.Template.Spec.Containers, err)
	}
}

func TestBadInputIsReportedAndNothingIsTouched(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("ok", map[string]string{"good/cm.yaml": configMapYAML("good", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("good", "repo", "good", e.Namespace))
	e.waitApp(t, "good", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != "" })

	for _, tc := range []struct {
		app  *tendv1.App
		want string
	}{
		{newApp("no-source", "missing", "good", e.Namespace), "Source " + e.Namespace + "/missing not found"},
		{newApp("no-path", "repo", "does/not/exist", e.Namespace), `"does/not/exist"`},
		{newApp("no-keys", "repo", "good", e.Namespace, func(a *tendv1.App) {
			a.Spec.Decryption = &tendv1.Decryption{SecretRef: tendv1.LocalObjectReference{Name: "keys"}}
		}), ".agekey"},
		{newApp("bad-cron", "repo", "good", e.Namespace, func(a *tendv1.App) {
			a.Spec.Sync.Windows = []tendv1.SyncWindow{{Kind: "deny", Schedule: "at noon", Duration: metav1.Duration{Duration: time.Hour}}}
		}), "spec.sync.windows[0].schedule"},
		{newApp("no-dep", "repo", "good", e.Namespace, func(a *tendv1.App) {
			a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "ghost"}}
		}), "App " + e.Namespace + "/ghost (in spec.dependsOn) does not exist"},
	} {
		e.create(t, tc.app)
		if tc.app.Name == "no-keys" {
			e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys"}, StringData: map[string]string{"wrong-name": "AGE-SECRET-KEY-1XYZ"}})
		}
		a := e.waitApp(t, tc.app.Name, "a condition naming "+tc.want, 30*time.Second, func(a *tendv1.App) bool {
			return strings.Contains(readyMessage(a), tc.want)
		})
		if c := condition(a, tendv1.ConditionReady); c.Status != metav1.ConditionFalse {
			t.Errorf("%s: Ready = %s", tc.app.Name, c.Status)
		}
		if strings.Contains(readyMessage(a), "AGE-SECRET-KEY") {
			t.Errorf("%s: secret material in status: %s", tc.app.Name, readyMessage(a))
		}
	}
	// The good App's objects were never touched.
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "good", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v1" {
		t.Fatalf("good object changed: %v %v", cm, err)
	}
	var apps tendv1.AppList
	if err := e.c.List(ctx, &apps, client.InNamespace(e.Namespace)); err != nil {
		t.Fatal(err)
	}
}
