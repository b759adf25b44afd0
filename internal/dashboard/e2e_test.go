package dashboard_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/dashboard"
)

// TestDashboardInBrowser drives the dashboard in Debian's headless
// Chromium with Playwright (e2e/run.mjs): find an App among 200 by
// searching, open its tree, see a change arrive without a reload, sync,
// suspend and resume it, roll it back to an earlier sync and unpin it, see
// a drifted App's hook runs and the diff of its drifted objects (Secret
// values masked), move around by keyboard and on a phone-sized screen. Screenshots of the main views go to docs/images.
func TestDashboardInBrowser(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	ctx := context.Background()
	shopRev := newShop(t, f)
	a := &tendv1.App{}
	if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, a); err != nil {
		t.Fatal(err)
	}
	// What the controller would write about the drift.
	a.Status.Sync, a.Status.Health, a.Status.Revision = "OutOfSync", "Healthy", shopRev
	a.Status.OutOfSync = []tendv1.ObjectReference{{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "shop"}, {Kind: "Secret", Namespace: ns, Name: "shop-db"}}
	a.Status.Conditions = []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "OutOfSync",
		Message: "2 objects differ from git", LastTransitionTime: metav1.Now()}}
	if err := f.env.Client.Status().Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 195; i++ {
		create(t, f.env, &tendv1.App{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%03d", i), Namespace: ns, Labels: map[string]string{"team": "svc"}},
			Spec:       tendv1.AppSpec{SourceRef: tendv1.NamespacedObjectReference{Name: "platform"}, Path: fmt.Sprintf("apps/svc-%03d", i)},
		})
	}
	// A fresh session for the browser: the printed URL with its token.
	l, err := dashboard.ListenLocal(ctx, f.env.Config, controller.Scheme(), dashboard.LocalOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan error, 1), make(chan error, 1)
	go func() { done <- l.Serve(sctx, func(err error) { ready <- err }) }()
	defer func() { cancel(); <-done }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}

	cfg := map[string]any{
		"url": l.URL, "namespace": ns, "total": 200, "app": "web",
		"source": ns + "/platform", "secretValue": secretValue,
		"drifted": "shop", "driftSecrets": []string{shopSecret, shopDrift},
	}
	key := types.NamespacedName{Namespace: ns, Name: "web"}
	app := func() *tendv1.App {
		var a tendv1.App
		if err := f.env.Client.Get(ctx, key, &a); err != nil {
			t.Fatal(err)
		}
		return &a
	}
	browserScript(t, "run.mjs", cfg, func(step string) {
		switch step {
		case "degrade":
			a := app()
			a.Status.Health = "Degraded"
			a.Status.Conditions = []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Degraded",
				Message: "Deployment web: 0 of 1 replicas available", LastTransitionTime: metav1.Now()}}
			if err := f.env.Client.Status().Update(ctx, a); err != nil {
				t.Fatal(err)
			}
		case "synced":
			if app().Annotations[tendv1.AnnotationRequestedAt] == "" {
				t.Error("the Sync button did not request a sync of the App")
			}
		case "resumed":
			if a := app(); a.Spec.Suspend {
				t.Error("the App is still suspended after Resume")
			}
		case "pinned":
			if a := app(); a.Spec.TargetRevision != olderRev {
				t.Errorf("after Roll back: targetRevision %q, want %s", a.Spec.TargetRevision, olderRev)
			}
		case "unpinned":
			if a := app(); a.Spec.TargetRevision != "" {
				t.Errorf("after Unpin: targetRevision %q", a.Spec.TargetRevision)
			}
		default:
			t.Errorf("the browser script asked for an unknown step %q", step)
		}
	})
}
