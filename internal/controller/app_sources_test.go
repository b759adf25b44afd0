package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// TestAppRendersSeveralSources: an App with spec.sources renders a git
// path, a chart from a chart repository (its values from the first git
// repository) and a path of a second git repository as one set. A change
// to any of them is synced, and what leaves the second repository is
// pruned by the same App; the App's revision names all three. An object
// rendered by two Sources fails the render and leaves what is applied;
// a pin is refused.
func TestAppRendersSeveralSources(t *testing.T) {
	e := startControllerWith(t, func(o *Options) { o.ChartIndexTTL = time.Second })
	ctx := context.Background()
	ns := e.Namespace

	charts := charttest.NewRepo(t, "", "")
	publish := func(version string) {
		charts.Add(t, charttest.Package(t, map[string]string{
			"Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: web\nversion: %s\n", version),
			"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-chart\n" +
				"data:\n  version: {{ .Chart.Version | quote }}\n  color: {{ .Values.color | quote }}\n  release: {{ .Release.Name | quote }}\n",
		}))
	}
	publish("1.0.0")
	platform, extras := newCtlRepo(t), newCtlRepo(t)
	revA := platform.commit("platform", map[string]string{
		"base/cm.yaml":    configMapYAML("base", "v1"),
		"values/web.yaml": "color: blue\n",
	})
	revB := extras.commit("extras", map[string]string{"dashboards/cm.yaml": configMapYAML("dashboard-one", "v1")})

	second := metav1.Duration{Duration: time.Second}
	e.create(t,
		gitSource("platform", platform.URL), gitSource("extras", extras.URL),
		&tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "charts"}, Spec: tendv1.SourceSpec{
			Helm: &tendv1.HelmRepositorySource{URL: charts.URL}, Interval: second,
		}},
		newApp("web", "platform", "base", ns, func(a *tendv1.App) {
			a.Spec.Sync.Interval = second
			a.Spec.Sources = []tendv1.AppSource{
				{SourceRef: tendv1.NamespacedObjectReference{Name: "charts"}, Chart: &tendv1.ChartSpec{Name: "web", Version: "~1.0.0"},
					Helm: &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{{Kind: "Source", Name: "platform", Key: "values/web.yaml"}}}},
				{SourceRef: tendv1.NamespacedObjectReference{Name: "extras"}, Path: "dashboards"},
			}
		}))

	cm := func(name string) map[string]string {
		got, err := e.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			t.Fatal(err)
		}
		return got.Data
	}
	want := revA + ", 1.0.0, " + revB
	app := e.waitApp(t, "web", "synced from all three Sources", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Revision == want && a.Status.Sync == tendv1.SyncSynced
	})
	if d := cm("web-chart"); d["version"] != "1.0.0" || d["color"] != "blue" || d["release"] != "web" {
		t.Errorf("the chart's ConfigMap: %v, want version 1.0.0, the platform's values (blue), release web", d)
	}
	if cm("base") == nil || cm("dashboard-one") == nil {
		t.Errorf("the git paths' ConfigMaps are not applied")
	}
	if app.Status.Objects != 3 {
		t.Errorf("the App holds %d objects, want the three ConfigMaps", app.Status.Objects)
	}

	// The second repository changes: what left it is pruned by the App,
	// what came is created.
	revB = extras.commit("swap", map[string]string{"dashboards/cm.yaml": "", "dashboards/two.yaml": configMapYAML("dashboard-two", "v1")})
	e.waitApp(t, "web", "synced the second repository's change", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Revision == revA+", 1.0.0, "+revB && a.Status.Sync == tendv1.SyncSynced
	})
	eventually(t, "dashboard-one pruned, dashboard-two created", 30*time.Second, func() bool {
		return cm("dashboard-one") == nil && cm("dashboard-two") != nil
	})
	// A new chart version in range, and the values the chart reads from
	// the platform repository.
	publish("1.0.1")
	revA = platform.commit("green", map[string]string{"values/web.yaml": "color: green\n"})
	e.waitApp(t, "web", "synced chart 1.0.1 and the new values", time.Minute, func(a *tendv1.App) bool {
		return a.Status.Revision == revA+", 1.0.1, "+revB && a.Status.Sync == tendv1.SyncSynced
	})
	if d := cm("web-chart"); d["version"] != "1.0.1" || d["color"] != "green" {
		t.Errorf("the chart's ConfigMap: %v, want 1.0.1 and green", d)
	}

	var web tendv1.App
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &web); err != nil {
		t.Fatal(err)
	}

	// An object in two Sources: the render fails naming both, and
	// nothing applied goes.
	extras.commit("dup", map[string]string{"dashboards/base.yaml": configMapYAML("base", "from extras")})
	failed := e.waitApp(t, "web", "render failed on the duplicate", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonRenderFailed
	})
	if msg := readyMessage(failed); !strings.Contains(msg, "ConfigMap "+ns+"/base is rendered by both spec.sourceRef (Source platform) and spec.sources[1] (Source extras)") {
		t.Errorf("Ready does not name the duplicate and its Sources: %s", msg)
	}
	if d := cm("base"); d["value"] != "v1" || cm("dashboard-two") == nil {
		t.Errorf("what was applied changed after a failed render: base %v", d)
	}

	// A pin cannot name the revisions of three Sources.
	if err := e.c.Patch(ctx, &web, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"targetRevision":"`+revA+`"}}`))); err != nil {
		t.Fatal(err)
	}
	stalled := e.waitApp(t, "web", "stalled on the pin", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonInvalidSpec
	})
	if c := condition(stalled, tendv1.ConditionStalled); !strings.Contains(c.Message, "spec.targetRevision pins the revision of one Source, and this App renders 3 (spec.sources)") {
		t.Errorf("Stalled: %s", c.Message)
	}
}

// TestAppSourcesSourceRefNamespace: an entry of spec.sources renders the
// Source its sourceRef.namespace names, not the one of that name in the
// App's namespace, and follows its new revisions.
func TestAppSourcesSourceRefNamespace(t *testing.T) {
	e, other := startControllerTwoNamespaces(t)
	own, theirs, ours := newCtlRepo(t), newCtlRepo(t), newCtlRepo(t)
	own.commit("own", map[string]string{"app/cm.yaml": configMapYAML("own", "v1")})
	theirs.commit("theirs", map[string]string{"extra/cm.yaml": configMapYAML("extra", "from-the-other-namespace")})
	ours.commit("ours", map[string]string{"extra/cm.yaml": configMapYAML("extra", "from-the-apps-namespace")})
	createIn(t, e, other, gitSource("extras", theirs.URL))
	e.create(t, gitSource("own", own.URL), gitSource("extras", ours.URL), newApp("app", "own", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sources = []tendv1.AppSource{{SourceRef: tendv1.NamespacedObjectReference{Name: "extras", Namespace: other}, Path: "extra"}}
	}))
	eventually(t, "the other namespace's extra applied", 60*time.Second, func() bool {
		return configMapValue(t, e.Env, e.Namespace, "extra") == "from-the-other-namespace"
	})
	theirs.commit("theirs v2", map[string]string{"extra/cm.yaml": configMapYAML("extra", "v2")})
	eventually(t, "the other namespace's v2 applied", 60*time.Second, func() bool {
		return configMapValue(t, e.Env, e.Namespace, "extra") == "v2"
	})
}
