package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the time zone test must not depend on the machine's zoneinfo

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// Behaviour tests of App spec and status fields (see
// api/v1alpha1/testdata/field-tests.yaml).

// configMapValue returns data.value of a ConfigMap, or "" when there is
// none.
func configMapValue(t *testing.T, e *testenv.Env, ns, name string) string {
	t.Helper()
	cm, err := e.Clientset.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return cm.Data["value"]
}

// patchApp changes an App's spec with a merge patch and returns its new
// generation.
func patchApp(t *testing.T, e *ctlEnv, name string, mutate func(*tendv1.App)) int64 {
	t.Helper()
	a := e.app(t, name)
	orig := a.DeepCopy()
	mutate(a)
	if err := e.c.Patch(context.Background(), a, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	return a.Generation
}

// TestAppSuspendStopsSyncing: a suspended App says so and applies nothing,
// not even a revision its Source fetched meanwhile (which an App on the same
// Source does apply); once resumed, it syncs that revision.
func TestAppSuspendStopsSyncing(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	rev1 := repo.commit("v1", map[string]string{
		"held/cm.yaml":    configMapYAML("held", "v1"),
		"witness/cm.yaml": configMapYAML("witness", "v1"),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("held", "repo", "held", e.Namespace), newApp("witness", "repo", "witness", e.Namespace))
	for _, name := range []string{"held", "witness"} {
		e.waitApp(t, name, "synced at v1", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Revision == rev1 && a.Status.Sync == tendv1.SyncSynced })
	}

	gen := patchApp(t, e, "held", func(a *tendv1.App) { a.Spec.Suspend = true })
	e.waitApp(t, "held", "Ready=False Suspended", 30*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return a.Status.ObservedGeneration == gen && c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonSuspended
	})

	rev2 := repo.commit("v2", map[string]string{
		"held/cm.yaml":    configMapYAML("held", "v2"),
		"witness/cm.yaml": configMapYAML("witness", "v2"),
	})
	e.waitApp(t, "witness", "the App that is not suspended synced v2", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Revision == rev2 })
	// The Source's new revision reconciled the suspended App too; a spec
	// change makes sure it reconciled once more since (its status shows
	// the generation), with v2 fetched.
	gen = patchApp(t, e, "held", func(a *tendv1.App) { a.Spec.Sync.Interval = metav1.Duration{Duration: time.Hour} })
	held := e.waitApp(t, "held", "the spec change reconciled", 30*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return a.Status.ObservedGeneration == gen && c != nil && c.ObservedGeneration == gen
	})
	if c := condition(held, tendv1.ConditionReady); c.Reason != ReasonSuspended || held.Status.Revision != rev1 {
		t.Errorf("suspended App: Ready %s (%s), revision %s; want Suspended at %s", c.Reason, c.Message, held.Status.Revision, rev1)
	}
	if got := configMapValue(t, e.Env, e.Namespace, "held"); got != "v1" {
		t.Fatalf("a suspended App applied v2: held = %q", got)
	}

	patchApp(t, e, "held", func(a *tendv1.App) { a.Spec.Suspend = false })
	e.waitApp(t, "held", "resumed and synced v2", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev2 && a.Status.Sync == tendv1.SyncSynced
	})
	if got := configMapValue(t, e.Env, e.Namespace, "held"); got != "v2" {
		t.Errorf("held = %q after resuming, want v2", got)
	}
}

// TestAppForceConflictsTakesFieldsBack: a field another manager took over
// with a forced apply is taken back by an App with spec.sync.forceConflicts
// and left to that manager by an App without it.
func TestAppForceConflictsTakesFieldsBack(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	cm := func(name, value, other string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  value: %q\n  other: %q\n", name, value, other)
	}
	rev1 := repo.commit("v1", map[string]string{
		"forced/cm.yaml": cm("forced", "from-git", "1"),
		"plain/cm.yaml":  cm("plain", "from-git", "1"),
	})
	e.create(t, gitSource("repo", repo.URL),
		newApp("forced", "repo", "forced", e.Namespace, func(a *tendv1.App) { a.Spec.Sync.ForceConflicts = true }),
		newApp("plain", "repo", "plain", e.Namespace))
	for _, name := range []string{"forced", "plain"} {
		e.waitApp(t, name, "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Revision == rev1 && a.Status.Sync == tendv1.SyncSynced })
	}
	// An operator takes data.value of both over.
	for _, name := range []string{"forced", "plain"} {
		takeover := corev1apply.ConfigMap(name, e.Namespace).WithData(map[string]string{"value": "from-operator"})
		if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Apply(ctx, takeover, metav1.ApplyOptions{FieldManager: "operator-x", Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	// A new revision changes another key: both Apps sync it.
	rev2 := repo.commit("v2", map[string]string{
		"forced/cm.yaml": cm("forced", "from-git", "2"),
		"plain/cm.yaml":  cm("plain", "from-git", "2"),
	})
	for _, name := range []string{"forced", "plain"} {
		e.waitApp(t, name, "synced v2", 60*time.Second, func(a *tendv1.App) bool {
			return a.Status.Revision == rev2 && len(a.Status.History) > 0 && a.Status.History[0].Revision == rev2
		})
	}
	eventually(t, "the forced App took data.value back", 30*time.Second, func() bool {
		return configMapValue(t, e.Env, e.Namespace, "forced") == "from-git"
	})
	got, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["value"] != "from-operator" || got.Data["other"] != "2" {
		t.Errorf("App without forceConflicts: data %v; want value left to the operator and other synced", got.Data)
	}
}

// TestAppRetryBackoffAndMaxBackoff: retries follow spec.sync.retry.backoff
// and stop growing at maxBackoff. With the defaults (5s doubling up to 5m)
// neither App reaches its retry limit within the wait: "backoff" would
// wait 5+10+20+40s, "capped" 0.2+0.4+...+102s.
func TestAppRetryBackoffAndMaxBackoff(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	bad := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  ports: [{port: 99999}]\n"
	}
	repo.commit("bad", map[string]string{"backoff/svc.yaml": bad("backoff"), "capped/svc.yaml": bad("capped")})
	e.create(t, gitSource("repo", repo.URL),
		newApp("backoff", "repo", "backoff", e.Namespace, func(a *tendv1.App) {
			a.Spec.Sync.Retry = &tendv1.RetryPolicy{Limit: 4, Backoff: metav1.Duration{Duration: 200 * time.Millisecond}}
		}),
		newApp("capped", "repo", "capped", e.Namespace, func(a *tendv1.App) {
			a.Spec.Sync.Retry = &tendv1.RetryPolicy{Limit: 10, Backoff: metav1.Duration{Duration: 200 * time.Millisecond}, MaxBackoff: metav1.Duration{Duration: 400 * time.Millisecond}}
		}))
	for name, limit := range map[string]int{"backoff": 4, "capped": 10} {
		a := e.waitApp(t, name, "retry limit reached", 45*time.Second, func(a *tendv1.App) bool {
			c := condition(a, tendv1.ConditionReady)
			return c != nil && c.Reason == ReasonRetryLimit
		})
		failed := 0
		for _, h := range a.Status.History {
			if h.Result == "Failed" {
				failed++
			}
		}
		if failed != limit+1 {
			t.Errorf("%s: %d failed syncs, want %d (the first and %d retries)", name, failed, limit+1, limit)
		}
	}
}

// TestAppSyncWindowTimeZone: a deny window's schedule is read in its
// timeZone. The window opened a minute ago in Asia/Kathmandu (UTC+5:45);
// read in UTC it would open hours from now and block nothing.
func TestAppSyncWindowTimeZone(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("blocked", "x")})
	loc, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().In(loc).Add(-time.Minute)
	schedule := fmt.Sprintf("%d %d * * *", start.Minute(), start.Hour())
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Windows = []tendv1.SyncWindow{{Kind: "deny", Schedule: schedule, TimeZone: "Asia/Kathmandu", Duration: metav1.Duration{Duration: 2 * time.Hour}}}
	}))
	a := e.waitApp(t, "app", "blocked by the window", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonSyncWindow || a.Status.Revision != ""
	})
	if c := condition(a, tendv1.ConditionReady); c.Reason != ReasonSyncWindow {
		t.Fatalf("not blocked by a deny window open in its time zone: Ready %s (%s), revision %q", c.Reason, c.Message, a.Status.Revision)
	}
	until := start.Truncate(time.Minute).Add(2 * time.Hour)
	if a.Status.NextSyncAllowedAt == nil || !a.Status.NextSyncAllowedAt.Time.Equal(until) {
		t.Errorf("nextSyncAllowedAt = %v, want %s", a.Status.NextSyncAllowedAt, until.UTC())
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "blocked", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("applied inside a deny window: %v", err)
	}
}

// startControllerTwoNamespaces starts a controller for the test's
// namespace and a second one, which it returns.
func startControllerTwoNamespaces(t *testing.T) (*ctlEnv, string) {
	t.Helper()
	other := testenv.New(t)
	e := startControllerWith(t, func(o *Options) { o.Namespaces = append(o.Namespaces, other.Namespace) })
	return e, other.Namespace
}

func createIn(t *testing.T, e *ctlEnv, ns string, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetNamespace(ns)
		if err := e.c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s/%s: %v", o, ns, o.GetName(), err)
		}
	}
}

// TestAppSourceRefNamespace: an App renders the Source its
// spec.sourceRef.namespace names, not the one of that name in its own
// namespace.
func TestAppSourceRefNamespace(t *testing.T) {
	e, other := startControllerTwoNamespaces(t)
	theirs, ours := newCtlRepo(t), newCtlRepo(t)
	rev := theirs.commit("theirs", map[string]string{"app/cm.yaml": configMapYAML("cfg", "from-the-other-namespace")})
	ours.commit("ours", map[string]string{"app/cm.yaml": configMapYAML("cfg", "from-the-apps-namespace")})
	createIn(t, e, other, gitSource("repo", theirs.URL))
	e.create(t, gitSource("repo", ours.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.SourceRef.Namespace = other
	}))
	e.waitApp(t, "app", "synced from the other namespace's Source", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != ""
	})
	if got := configMapValue(t, e.Env, e.Namespace, "cfg"); got != "from-the-other-namespace" {
		t.Fatalf("cfg = %q, want the other namespace's Source's (revision %s)", got, rev)
	}
	// The App follows that Source's new revisions.
	theirs.commit("theirs v2", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	eventually(t, "the other namespace's v2 applied", 60*time.Second, func() bool {
		return configMapValue(t, e.Env, e.Namespace, "cfg") == "v2"
	})
}

// TestAppDependsOnNamespace: an App waits for the App its
// spec.dependsOn[].namespace names, not for the one of that name in its own
// namespace.
func TestAppDependsOnNamespace(t *testing.T) {
	e, other := startControllerTwoNamespaces(t)
	repo := newCtlRepo(t)
	repo.commit("apps", map[string]string{
		"db-stuck/deploy.yaml": deploymentYAML("db", "postgres:17", "tend.dev/kwok-pod: not-ready"),
		"db-local/cm.yaml":     configMapYAML("db-local", "x"),
		"web/cm.yaml":          configMapYAML("web", "x"),
	})
	createIn(t, e, other, gitSource("repo", repo.URL), newApp("db", "repo", "db-stuck", other, func(a *tendv1.App) {
		a.Spec.Sync.Prune = false // no finalizer: the namespace goes once the controller stopped
	}))
	// A healthy App of the same name in the App's own namespace.
	e.create(t, gitSource("repo", repo.URL), newApp("db", "repo", "db-local", e.Namespace))
	e.waitApp(t, "db", "the local db Healthy", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Health == "Healthy" && a.Status.Revision != "" })
	e.create(t, newApp("web", "repo", "web", e.Namespace, func(a *tendv1.App) {
		a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "db", Namespace: other}}
	}))
	a := e.waitApp(t, "web", "waiting for the other namespace's db", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonDependencyNotReady || a.Status.Revision != ""
	})
	if c := condition(a, tendv1.ConditionReady); c.Reason != ReasonDependencyNotReady || !strings.Contains(c.Message, other+"/db") {
		t.Fatalf("web does not wait for %s/db: Ready %s (%s), revision %q", other, c.Reason, c.Message, a.Status.Revision)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("web applied before %s/db was healthy: %v", other, err)
	}
	// The other namespace's db becomes healthy: web syncs.
	repo.commit("db ready", map[string]string{"db-stuck/deploy.yaml": deploymentYAML("db", "postgres:17", "")})
	e.waitApp(t, "web", "web synced once its dependency is healthy", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != ""
	})
}

// TestAppHelmValuesFrom: Helm values come from the ConfigMaps and Secrets
// spec.helm.valuesFrom names, each of its kind, under its key (default
// values.yaml), or as one value at a targetPath (commas and backslashes
// kept); an optional one that is missing, or lacks its key, is skipped, a
// required one stops the render naming it.
func TestAppHelmValuesFrom(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	repo.commit("chart", map[string]string{
		"chart/Chart.yaml":  "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/values.yaml": "fromConfigMap: unset\nfromSecret: unset\nfromKey: unset\nauth: {password: unset}\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-values\ndata:\n" +
			"  fromConfigMap: {{ .Values.fromConfigMap | quote }}\n  fromSecret: {{ .Values.fromSecret | quote }}\n  fromKey: {{ .Values.fromKey | quote }}\n" +
			"  fromPath: {{ .Values.auth.password | quote }}\n",
	})
	// A ConfigMap and a Secret of the same name: each reference reads its
	// own kind. The Secret's values.yaml is never named by a key.
	e.create(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vals"}, Data: map[string]string{"values.yaml": "fromConfigMap: configmap\n"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vals"}, StringData: map[string]string{
			"values.yaml": "fromSecret: secret\nfromKey: wrong-key\n",
			"custom.yaml": "fromKey: custom-key\n",
		}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "more"}, StringData: map[string]string{"values.yaml": "fromSecret: secret\n"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": `p4ss,w\rd`}},
	)
	e.create(t, gitSource("repo", repo.URL), newApp("web", "repo", "chart", e.Namespace, func(a *tendv1.App) {
		a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{
			{Kind: "ConfigMap", Name: "vals"},
			{Kind: "Secret", Name: "more"},
			{Kind: "Secret", Name: "vals", Key: "custom.yaml"},
			{Kind: "ConfigMap", Name: "missing", Optional: true},
			{Kind: "Secret", Name: "vals", Key: "absent.yaml", Optional: true},
			{Kind: "Secret", Name: "db", Key: "password", TargetPath: "auth.password"},
		}}
	}))
	e.waitApp(t, "web", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != "" })
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-values", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"fromConfigMap": "configmap", "fromSecret": "secret", "fromKey": "custom-key", "fromPath": `p4ss,w\rd`}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("%s = %q, want %q (data %v)", k, cm.Data[k], v, cm.Data)
		}
	}

	// The same references, required: the render stops and says which.
	e.create(t, newApp("strict", "repo", "chart", e.Namespace, func(a *tendv1.App) {
		a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{
			{Kind: "ConfigMap", Name: "vals"},
			{Kind: "Secret", Name: "vals", Key: "absent.yaml"},
		}}
		a.Spec.Helm.ReleaseName = "strict"
	}))
	e.waitApp(t, "strict", "the missing key reported", 30*time.Second, func(a *tendv1.App) bool {
		msg := readyMessage(a)
		return strings.Contains(msg, "spec.helm.valuesFrom[1]") && strings.Contains(msg, `"absent.yaml"`)
	})
}

// TestAppHelmValuesFromSource: spec.helm.valuesFrom kind Source reads a
// values file from another git Source (Argo CD's multi-source $values). A
// new revision of that Source re-renders the App, though its own Source
// did not change; a missing file stops it with a message naming the entry
// and the file, and an optional one is skipped.
func TestAppHelmValuesFromSource(t *testing.T) {
	e := startController(t)
	charts := newCtlRepo(t)
	chartRev := charts.commit("chart", map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/values.yaml":       "greeting: chart-default\nsize: small\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-values\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  size: {{ .Values.size | quote }}\n",
	})
	values := newCtlRepo(t)
	values.commit("values", map[string]string{"envs/prod/web.yaml": "greeting: hello from git\n"})
	e.create(t, gitSource("charts", charts.URL), gitSource("values", values.URL), newApp("web", "charts", "chart", e.Namespace, func(a *tendv1.App) {
		a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{
			{Kind: "Source", Name: "values", Key: "envs/prod/web.yaml"},
			{Kind: "Source", Name: "values", Key: "envs/prod/absent.yaml", Optional: true},
		}}
	}))
	configMap := func(want string) {
		t.Helper()
		e.waitApp(t, "web", "web-values greeting "+want, 60*time.Second, func(a *tendv1.App) bool {
			cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-values", metav1.GetOptions{})
			return err == nil && cm.Data["greeting"] == want && a.Status.Sync == tendv1.SyncSynced
		})
	}
	configMap("hello from git")

	// A commit to the values repository only: applied, the App's own
	// revision unchanged.
	values.commit("prod greets differently", map[string]string{"envs/prod/web.yaml": "greeting: hello again\nsize: large\n"})
	configMap("hello again")
	if a := e.app(t, "web"); a.Status.Revision != chartRev {
		t.Errorf("revision %s, want the chart repository's %s", a.Status.Revision, chartRev)
	}
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-values", metav1.GetOptions{})
	if err != nil || cm.Data["size"] != "large" {
		t.Errorf("size %q (%v), want large from the values file", cm.Data["size"], err)
	}

	// A file that is not there, required: the App stops and says which.
	e.create(t, newApp("strict", "charts", "chart", e.Namespace, func(a *tendv1.App) {
		a.Spec.Helm = &tendv1.HelmSpec{ReleaseName: "strict", ValuesFrom: []tendv1.ValuesReference{
			{Kind: "Source", Name: "values", Key: "envs/prod/web.yaml"},
			{Kind: "Source", Name: "values", Key: "envs/staging/web.yaml"},
		}}
	}))
	e.waitApp(t, "strict", "the missing file reported", 30*time.Second, func(a *tendv1.App) bool {
		msg := readyMessage(a)
		return strings.Contains(msg, "spec.helm.valuesFrom[1]") && strings.Contains(msg, `has no file "envs/staging/web.yaml"`) &&
			apimeta.IsStatusConditionTrue(a.Status.Conditions, "Stalled")
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "strict-values", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("strict-values applied though its values are missing: %v", err)
	}
}

// TestAppStatusHistoryDurationAndOutOfSync: status.outOfSync names each
// object by group, kind, namespace and name, and a history entry's
// duration covers the whole sync (here one that waits for health until
// spec.health.timeout).
func TestAppStatusHistoryDurationAndOutOfSync(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	repo.commit("apps", map[string]string{
		"app/deploy.yaml": deploymentYAML("stuck", "web:1", "tend.dev/kwok-pod: not-ready"),
		"app/later.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\n  annotations: {tend.dev/wave: \"1\"}\ndata: {a: b}\n",
	})
	const timeout = 3 * time.Second
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Manual = true
		a.Spec.Health.Timeout = metav1.Duration{Duration: timeout}
	}))
	a := e.waitApp(t, "app", "OutOfSync, waiting for tend sync", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncOutOfSync && len(a.Status.OutOfSync) == 2
	})
	got := map[tendv1.ObjectReference]bool{}
	for _, r := range a.Status.OutOfSync {
		got[r] = true
	}
	for _, want := range []tendv1.ObjectReference{
		{Group: "apps", Kind: "Deployment", Namespace: e.Namespace, Name: "stuck"},
		{Group: "", Kind: "ConfigMap", Namespace: e.Namespace, Name: "later"},
	} {
		if !got[want] {
			t.Errorf("outOfSync lacks %+v: %+v", want, a.Status.OutOfSync)
		}
	}

	patchAnnotation := a.DeepCopy()
	patchAnnotation.Annotations = map[string]string{AnnotationRequestedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	if err := e.c.Patch(context.Background(), patchAnnotation, client.MergeFrom(a)); err != nil {
		t.Fatal(err)
	}
	a = e.waitApp(t, "app", "the sync failed on health", 60*time.Second, func(a *tendv1.App) bool {
		return len(a.Status.History) > 0 && a.Status.History[0].Result == "Failed"
	})
	if d := a.Status.History[0].Duration.Duration; d < timeout {
		t.Errorf("history duration = %s; the sync waited for health for %s", d, timeout)
	}
}

// TestAppKustomizeOverlay: spec.kustomize's overlay fields apply to a plain
// YAML path: the live objects carry the name prefix, sit in the overlay's
// namespace (not the destination's), run the image the overlay names and
// carry the patch; references follow the renamed ConfigMap.
func TestAppKustomizeOverlay(t *testing.T) {
	e, other := startControllerTwoNamespaces(t)
	repo := newCtlRepo(t)
	rev := repo.commit("web", map[string]string{
		"web/deploy.yaml": deploymentYAML("web", "nginx:1.0", ""),
		"web/cm.yaml":     configMapYAML("settings", "x"),
		"web/ref.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: uses}\ndata: {value: x}\n",
	})
	e.create(t, gitSource("repo", repo.URL), newApp("web", "repo", "web", e.Namespace, func(a *tendv1.App) {
		a.Spec.Kustomize = &tendv1.KustomizeSpec{
			NamePrefix: "prod-",
			Namespace:  other,
			Images:     []tendv1.KustomizeImage{{Name: "nginx", NewTag: "1.27"}},
			Patches: []tendv1.KustomizePatch{{
				Patch:  "- {op: add, path: /spec/template/spec/containers/0/envFrom, value: [{configMapRef: {name: settings}}]}",
				Target: &tendv1.PatchTarget{Kind: "Deployment", Name: "web"},
			}, {
				Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {patched: \"yes\"}}\n",
			}},
		}
	}))
	e.waitApp(t, "web", "synced at "+rev, 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced
	})
	ctx := context.Background()
	d, err := e.Clientset.AppsV1().Deployments(other).Get(ctx, "prod-web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Deployment with the prefix in the overlay's namespace: %v", err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if got, want := c.Image, "nginx:1.27"; got != want {
		t.Errorf("image = %q, want %q", got, want)
	}
	if got := d.Labels["patched"]; got != "yes" {
		t.Errorf("label patched = %q, want yes (strategic-merge patch)", got)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "prod-settings" {
		t.Errorf("envFrom = %+v, want the JSON 6902 patch's configMapRef, renamed to prod-settings", c.EnvFrom)
	}
	if got := configMapValue(t, e.Env, other, "prod-settings"); got != "x" {
		t.Errorf("ConfigMap prod-settings in %s: value %q, want x", other, got)
	}
	for _, name := range []string{"web", "prod-web"} {
		if _, err := e.Clientset.AppsV1().Deployments(e.Namespace).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment %s in the destination namespace: %v, want none (the overlay's namespace overrides it)", name, err)
		}
	}
}

// TestAppPostBuild: variables from spec.postBuild.substitute and the
// ConfigMaps and Secrets of substituteFrom (later ones winning, the inline
// map over all) are substituted into the rendered objects; a change of a
// ConfigMap it reads is applied at once; strict mode stops the render
// naming the variable; an optional missing object is skipped.
func TestAppPostBuild(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app", map[string]string{
		"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"settings-${cluster}\"}\ndata:\n" +
			"  region: \"${region}\"\n  token: \"${token}\"\n  size: \"${size:=small}\"\n  port: \"${port}\"\n",
	})
	e.create(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-vars"}, Data: map[string]string{"cluster": "prod", "region": "eu-1", "port": "8080"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-secrets"}, StringData: map[string]string{"token": "t0ken", "region": "from-secret"}},
	)
	e.create(t, gitSource("repo", repo.URL), newApp("web", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.PostBuild = &tendv1.PostBuild{
			Substitute: map[string]string{"port": "9090"},
			SubstituteFrom: []tendv1.SubstituteReference{
				{Kind: "ConfigMap", Name: "cluster-vars"},
				{Kind: "Secret", Name: "cluster-secrets"},
				{Kind: "ConfigMap", Name: "absent", Optional: true},
			},
		}
	}))
	settings := func(want map[string]string) func() bool {
		return func() bool {
			cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "settings-prod", metav1.GetOptions{})
			if err != nil {
				return false
			}
			for k, v := range want {
				if cm.Data[k] != v {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "settings-prod with the substituted variables", 60*time.Second,
		settings(map[string]string{"region": "from-secret", "token": "t0ken", "size": "small", "port": "9090"}))

	// A change of a variable's ConfigMap is applied without a commit.
	var vars corev1.ConfigMap
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "cluster-vars"}, &vars); err != nil {
		t.Fatal(err)
	}
	vars.Data["size"] = "large"
	if err := e.c.Update(ctx, &vars); err != nil {
		t.Fatal(err)
	}
	eventually(t, "settings-prod with size from the changed ConfigMap", 60*time.Second, settings(map[string]string{"size": "large"}))

	// Strict: a variable without a default that nothing defines stops the
	// render, and the message names it.
	e.create(t, newApp("strict", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.PostBuild = &tendv1.PostBuild{Strict: true, Substitute: map[string]string{"cluster": "strict", "region": "r", "port": "1"}}
	}))
	e.waitApp(t, "strict", "the undefined variable reported", 30*time.Second, func(a *tendv1.App) bool {
		msg := readyMessage(a)
		return strings.Contains(msg, "spec.postBuild") && strings.Contains(msg, `"token"`)
	})
}
