package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestAppHealthChecks: an object named in spec.health.checks, which the
// App does not apply, counts toward the App's health: Missing before it
// exists, then its own state, each change of it seen at once (the App's
// interval is an hour). An App whose ServiceAccount may not get the object
// is Degraded with a message that names the verb, and its state is not
// shown.
func TestAppHealthChecks(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	cs := e.Clientset
	ns := e.Namespace
	other := e.namespace(t, "other", nil)

	repo := newCtlRepo(t)
	rev := repo.commit("v1", map[string]string{
		"gated/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own}\ndata: {ready: \"yes\"}\n",
		"tenant/cm.yaml": configMapYAML("tenant-own", "v1"),
	})
	// A ConfigMap is Healthy when data.ready is "yes", Progressing before.
	rules := []tendv1.HealthRule{{Kind: "ConfigMap", Healthy: "has(object.data) && has(object.data.ready) && object.data.ready == 'yes'", Progressing: "true"}}
	gateCheck := tendv1.HealthCheck{APIVersion: "v1", Kind: "ConfigMap", Name: "gate", Namespace: ns}
	hour := metav1.Duration{Duration: time.Hour}

	// The tenant's account may manage ConfigMaps in its own namespace
	// only.
	e.serviceAccountMay(t, "tenant", "configmaps", ns)
	// The object the tenant checks, in a namespace it may not read, is
	// Healthy: were it read, the tenant's App would be too.
	if _, err := cs.CoreV1().ConfigMaps(other).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	e.create(t, gitSource("repo", repo.URL),
		newApp("gated", "repo", "gated", ns, func(a *tendv1.App) {
			a.Spec.Health.Rules = rules
			a.Spec.Health.Checks = []tendv1.HealthCheck{gateCheck}
			a.Spec.Sync.Interval = hour
		}),
		newApp("tenant", "repo", "tenant", ns, func(a *tendv1.App) {
			a.Spec.ServiceAccountName = "tenant"
			a.Spec.Health.Checks = []tendv1.HealthCheck{{APIVersion: "v1", Kind: "ConfigMap", Name: "elsewhere", Namespace: other}}
			a.Spec.Sync.Interval = hour
		}))

	gated := e.waitApp(t, "gated", "synced, Missing: the gate does not exist", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Revision == rev && a.Status.Health == string(health.Missing)
	})
	if msg := readyMessage(gated); !strings.Contains(msg, "ConfigMap "+ns+"/gate") {
		t.Errorf("Ready does not name the missing check: %s", msg)
	}

	gate, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gate"}, Data: map[string]string{"ready": "no"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "gated", "Progressing: the gate exists, not ready", 30*time.Second, func(a *tendv1.App) bool {
		return a.Status.Health == string(health.Progressing)
	})
	gate.Data["ready"] = "yes"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, gate, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "gated", "Healthy: the gate is ready", 30*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return a.Status.Health == string(health.Healthy) && c != nil && c.Status == metav1.ConditionTrue
	})

	tenant := e.waitApp(t, "tenant", "Degraded: its account may not read the checked object", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == string(health.Degraded)
	})
	msg := readyMessage(tenant)
	for _, want := range []string{"system:serviceaccount:" + ns + ":tenant may not get configmaps in namespace " + other, "ConfigMap " + other + "/elsewhere", "spec.health.checks"} {
		if !strings.Contains(msg, want) {
			t.Errorf("tenant's Ready lacks %q: %s", want, msg)
		}
	}
}

// TestAppHealthCheckOfAKindServedLater: a tenant App's health check of a
// kind the cluster does not serve yet is Missing; once its CRD is
// installed and the object exists in a namespace the tenant's account may
// not read, the App asks the API server again and is Degraded (Forbidden),
// not Healthy from an object it was never allowed to read.
func TestAppHealthCheckOfAKindServedLater(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	ns := e.Namespace
	other := e.namespace(t, "other", nil)
	group := ns + ".example.com"
	e.serviceAccountMay(t, "tenant", "configmaps", ns)
	repo := newCtlRepo(t)
	rev := repo.commit("v1", map[string]string{"tenant/cm.yaml": configMapYAML("tenant-own", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("tenant", "repo", "tenant", ns, func(a *tendv1.App) {
		a.Spec.ServiceAccountName = "tenant"
		a.Spec.Health.Checks = []tendv1.HealthCheck{{APIVersion: group + "/v1", Kind: "Widget", Name: "w", Namespace: other}}
		a.Spec.Sync.Interval = metav1.Duration{Duration: 2 * time.Second}
	}))
	e.waitApp(t, "tenant", "synced, Missing: the kind is not served", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Revision == rev && a.Status.Health == string(health.Missing)
	})

	ext, err := apiextclient.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := testenv.WidgetCRD(group)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	eventually(t, "the Widget created once its CRD is served", 30*time.Second, func() bool {
		w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Widget", "metadata": map[string]any{"name": "w", "namespace": other}}}
		return e.Env.Client.Create(ctx, w) == nil
	})
	tenant := e.waitApp(t, "tenant", "Degraded: its account may not get the Widget", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Health == string(health.Degraded)
	})
	if msg := readyMessage(tenant); !strings.Contains(msg, "may not get widgets."+group+" in namespace "+other) {
		t.Errorf("tenant's Ready does not name the refused get: %s", msg)
	}
}
