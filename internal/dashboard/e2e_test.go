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
// values masked), approve freight for a Stage of a promotion pipeline,
// move around by keyboard and on a phone-sized screen. Screenshots of the main views go to docs/images.
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
	// A pipeline: dev passed 1.1.0, prod (with approval) runs 1.0.0 and
	// waits for approval of 1.1.0.
	now := metav1.Now()
	wh := &tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: tendv1.WarehouseSpec{
		Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: "registry.example.com/team/web"}}},
	}}
	create(t, f.env, wh)
	image := func(tag string) []tendv1.FreightImage {
		return []tendv1.FreightImage{{Repository: "registry.example.com/team/web", Tag: tag, Digest: "sha256:00"}}
	}
	wh.Status.Freight = []tendv1.Freight{{Name: "bbbbbbbbbbbb", DiscoveredAt: now, Images: image("1.1.0")}, {Name: "aaaaaaaaaaaa", DiscoveredAt: now, Images: image("1.0.0")}}
	if err := f.env.Client.Status().Update(ctx, wh); err != nil {
		t.Fatal(err)
	}
	stage := func(name string, upstream *tendv1.StageUpstream, approval bool, status tendv1.StageStatus) {
		st := &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web"}, Upstream: upstream, Approval: approval,
			Git:     tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "platform"}},
			Updates: []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/" + name}}},
		}}
		create(t, f.env, st)
		st.Status = status
		if err := f.env.Client.Status().Update(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	passed := func(name, versions, by string) *tendv1.Promotion {
		return &tendv1.Promotion{Name: name, Versions: versions, Revision: olderRev, PromotedAt: now, By: by, HealthySince: &now, VerifiedAt: &now}
	}
	stage("dev", nil, false, tendv1.StageStatus{Freight: passed("bbbbbbbbbbbb", "web:1.1.0", "warehouse web"),
		Conditions: []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Promoted", Message: "runs freight bbbbbbbbbbbb (web:1.1.0), passed", LastTransitionTime: now}}})
	stage("prod", &tendv1.StageUpstream{Stage: "dev"}, true, tendv1.StageStatus{Freight: passed("aaaaaaaaaaaa", "web:1.0.0", "approved by alice"),
		Conditions: []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "WaitingForApproval",
			Message: "freight bbbbbbbbbbbb (web:1.1.0) waits for approval: tend promote approve prod bbbbbbbbbbbb -n " + ns, LastTransitionTime: now}}})
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
		case "approved":
			var st tendv1.Stage
			if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "prod"}, &st); err != nil {
				t.Fatal(err)
			}
			if st.Annotations[tendv1.AnnotationApprovedFreight] != "bbbbbbbbbbbb" || st.Annotations[tendv1.AnnotationApprovedBy] == "" {
				t.Errorf("after Approve: annotations %v, want freight bbbbbbbbbbbb approved, and by whom", st.Annotations)
			}
		default:
			t.Errorf("the browser script asked for an unknown step %q", step)
		}
	})
}
