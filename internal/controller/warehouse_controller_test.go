package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// TestWarehouseFindsFreight: a Warehouse subscribed to an image (in a
// registry behind basic auth), a chart and a git Source records their
// newest versions as freight, and new freight, newest first, when an image
// tag in range is pushed, a commit is fetched or a chart is published;
// each is an event. A bad subscription stalls it naming the field, a
// missing Secret stalls it until the Secret is created; the freight found
// stays meanwhile.
func TestWarehouseFindsFreight(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	ns := e.Namespace

	reg := charttest.NewRegistry(t, "bot", "s3cret-registry-pw")
	repo := reg.Host + "/team/web"
	push := func(tag string) string {
		t.Helper()
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewTag(repo + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "bot", Password: "s3cret-registry-pw"})); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	d100 := push("1.0.0")
	push("2.0.0") // out of range
	// The chart is in the same registry (plain HTTP, behind the same
	// credentials).
	reg.Push(t, charttest.Package(t, map[string]string{"Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n"}))
	git := newCtlRepo(t)
	rev1 := git.commit("v1", map[string]string{"README": "one"})

	second := metav1.Duration{Duration: time.Second}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, StringData: map[string]string{"username": "bot", "password": "s3cret-registry-pw"}},
		gitSource("config", git.URL),
		&tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: tendv1.WarehouseSpec{
			Interval: second, FreightLimit: 3,
			Subscriptions: []tendv1.Subscription{
				{Image: &tendv1.ImageSubscription{Repository: repo, Constraint: "^1", SecretRef: &tendv1.LocalObjectReference{Name: "regcred"}}},
				{Chart: &tendv1.ChartSubscription{RepoURL: reg.URL, Name: "web", Constraint: "~1", Insecure: true, SecretRef: &tendv1.LocalObjectReference{Name: "regcred"}}},
				{Git: &tendv1.GitSubscription{SourceRef: tendv1.LocalObjectReference{Name: "config"}}},
			},
		}})

	get := func() *tendv1.Warehouse {
		var w tendv1.Warehouse
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &w); err != nil {
			t.Fatal(err)
		}
		return &w
	}
	wait := func(what string, cond func(w *tendv1.Warehouse) bool) *tendv1.Warehouse {
		t.Helper()
		return waitObject(t, e, "web", what, &tendv1.Warehouse{}, cond)
	}
	newest := func(w *tendv1.Warehouse) *tendv1.Freight {
		if len(w.Status.Freight) == 0 {
			return &tendv1.Freight{}
		}
		return &w.Status.Freight[0]
	}
	w := wait("the first freight", func(w *tendv1.Warehouse) bool {
		f := newest(w)
		return len(f.Images) == 1 && len(f.Charts) == 1 && len(f.Commits) == 1
	})
	f := newest(w)
	if im := f.Images[0]; im.Tag != "1.0.0" || im.Digest != d100 {
		t.Errorf("image %+v, want 1.0.0 at %s", im, d100)
	}
	if c := f.Charts[0]; c.Version != "1.0.0" || f.Commits[0].Revision != rev1 || f.Name == "" {
		t.Errorf("freight %+v, want chart 1.0.0 and commit %s", f, rev1)
	}
	if c := meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "web:1.0.0, chart web 1.0.0, config@"+rev1[:12]) {
		t.Errorf("Ready: %+v", c)
	}
	first := f.Name

	d110 := push("1.1.0")
	w = wait("freight with image 1.1.0", func(w *tendv1.Warehouse) bool { return newest(w).Images[0].Tag == "1.1.0" })
	if newest(w).Images[0].Digest != d110 || len(w.Status.Freight) != 2 || w.Status.Freight[1].Name != first {
		t.Errorf("after 1.1.0: %+v, want it first at %s and the first freight second", w.Status.Freight, d110)
	}
	rev2 := git.commit("v2", map[string]string{"README": "two"})
	wait("freight with the new commit", func(w *tendv1.Warehouse) bool { return newest(w).Commits[0].Revision == rev2 })
	reg.Push(t, charttest.Package(t, map[string]string{"Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.1\n"}))
	w = wait("freight with chart 1.0.1", func(w *tendv1.Warehouse) bool { return newest(w).Charts[0].Version == "1.0.1" })
	// Four found, three kept (spec.freightLimit): the first is gone.
	if len(w.Status.Freight) != 3 || w.Status.Freight[2].Name == first {
		t.Errorf("%d pieces of freight, want the newest 3", len(w.Status.Freight))
	}
	var events corev1.EventList
	if err := e.c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, ev := range events.Items {
		if ev.Reason == ReasonFreightFound && ev.InvolvedObject.Name == "web" {
			found++
		}
	}
	if found < 4 {
		t.Errorf("%d FreightFound events, want one per piece of freight found (4)", found)
	}

	// A bad filter stalls the Warehouse naming the field; the freight
	// stays.
	w = get()
	w.Spec.Subscriptions[0].Image.AllowTags = "("
	if err := e.c.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	w = wait("stalled on allowTags", func(w *tendv1.Warehouse) bool {
		c := meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonInvalidSpec && w.Status.ObservedGeneration == w.Generation
	})
	if c := meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionStalled); !strings.Contains(c.Message, `spec.subscriptions[0]: allowTags "(" is not a regular expression`) || len(w.Status.Freight) != 3 {
		t.Errorf("Stalled: %s; freight %d", c.Message, len(w.Status.Freight))
	}
	// A Secret that does not exist stalls it until it is created.
	w.Spec.Subscriptions[0].Image.AllowTags = ""
	w.Spec.Subscriptions[0].Image.SecretRef.Name = "later"
	w.Spec.Interval = metav1.Duration{Duration: time.Hour}
	if err := e.c.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	wait("stalled on the missing Secret", func(w *tendv1.Warehouse) bool {
		c := meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonSecretInvalid && strings.Contains(c.Message, "the Secret "+ns+"/later not found")
	})
	e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later"}, StringData: map[string]string{"username": "bot", "password": "s3cret-registry-pw"}})
	w = wait("Ready once the Secret exists", func(w *tendv1.Warehouse) bool {
		c := meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionStalled) == nil
	})

	// Suspended, it says so; resumed, it checks again.
	w.Spec.Suspend = true
	w.Spec.Interval = second
	if err := e.c.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	wait("suspended", func(w *tendv1.Warehouse) bool {
		c := meta.FindStatusCondition(w.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonSuspended && len(w.Status.Freight) == 3
	})
	push("1.2.0")
	w = get()
	w.Spec.Suspend = false
	if err := e.c.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	wait("freight with image 1.2.0 once resumed", func(w *tendv1.Warehouse) bool { return newest(w).Images[0].Tag == "1.2.0" })
}
