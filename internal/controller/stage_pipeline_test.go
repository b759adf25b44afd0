package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// verifyJob is a verification Job spec; kwok runs its pod to success, or
// to failure with the tend.dev/kwok-pod: fail annotation.
func verifyJob(fail bool) *tendv1.StageVerification {
	var ann map[string]string
	if fail {
		ann = map[string]string{"tend.dev/kwok-pod": "fail"}
	}
	return &tendv1.StageVerification{Job: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "check", Image: "registry.example.com/smoke:1"}}},
	}}}
}

// TestStagePipeline: three Stages of one Warehouse. dev takes each new
// image tag, and passes it once its App runs the promotion Healthy and its
// verification Job succeeded; staging takes what passed in dev after it
// soaked there; prod takes what passed in staging once approved. The Apps
// roll the tag out in that order, and Notifiers hear of each promotion
// and of the approval prod waits for. A failing verification in dev
// stops the next tag there (and notifies); a change that would not
// render an App of its Stage pushes nothing. The Source polls hourly: it
// fetches each promotion because the Stage asks it to.
func TestStagePipeline(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	ns := e.Namespace

	reg := charttest.NewRegistry(t, "", "")
	image := reg.Host + "/team/web"
	push := func(tag string) { t.Helper(); pushImage(t, image, tag) }
	push("1.0.0")
	repo := newCtlRepo(t)
	files := map[string]string{}
	for _, env := range []string{"dev", "staging", "prod"} {
		files["envs/"+env+"/kustomization.yaml"] = "resources: [deploy.yaml]\nnamePrefix: " + env + "-\nimages:\n- name: " + image + "\n  newTag: 0.9.0\n"
		files["envs/"+env+"/deploy.yaml"] = deploymentYAML("web", image, "")
	}
	repo.commit("three environments", files)
	sink := newHookSink(t, "k3y")
	second := metav1.Duration{Duration: time.Second}
	kustomize := func(env string) []tendv1.StageUpdate {
		return []tendv1.StageUpdate{{Image: image, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/" + env}}}
	}
	git := tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}}
	web := tendv1.LocalObjectReference{Name: "web"}
	e.create(t,
		notifierSecret("hook", map[string]string{"address": sink.srv.URL, "hmacKey": "k3y"}),
		&tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "hook"}, Spec: tendv1.NotifierSpec{
			Provider: "webhook", SecretRef: &tendv1.LocalObjectReference{Name: "hook"}, Stages: &tendv1.NotifierStages{Names: []string{"dev", "prod"}},
		}},
		// An hour: the Source fetches a promotion because the Stage asks.
		func() *tendv1.Source {
			src := gitSource("config", repo.URL)
			src.Spec.Interval.Duration = time.Hour
			return src
		}(),
		newApp("web-dev", "config", "envs/dev", ns, func(a *tendv1.App) { a.Spec.Sync.Interval = second }),
		newApp("web-staging", "config", "envs/staging", ns, func(a *tendv1.App) { a.Spec.Sync.Interval = second }),
		newApp("web-prod", "config", "envs/prod", ns, func(a *tendv1.App) { a.Spec.Sync.Interval = second }),
		webWarehouse(image),
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "dev"}, Spec: tendv1.StageSpec{
			Warehouse: web, Git: git, Updates: kustomize("dev"),
			Apps:         []tendv1.LocalObjectReference{{Name: "web-dev"}},
			Verification: verifyJob(false),
		}},
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "staging"}, Spec: tendv1.StageSpec{
			Warehouse: web, Git: git, Updates: kustomize("staging"),
			Upstream: &tendv1.StageUpstream{Stage: "dev", Soak: metav1.Duration{Duration: 3 * time.Second}},
			Apps:     []tendv1.LocalObjectReference{{Name: "web-staging"}},
		}},
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: tendv1.StageSpec{
			Warehouse: web, Git: git, Updates: kustomize("prod"), Approval: true,
			Upstream: &tendv1.StageUpstream{Stage: "staging"},
			Apps:     []tendv1.LocalObjectReference{{Name: "web-prod"}},
		}},
	)
	waitStage := func(name, what string, cond func(*tendv1.Stage) bool) *tendv1.Stage {
		t.Helper()
		return waitObject(t, e, name, what, &tendv1.Stage{}, cond)
	}
	passed := func(stage, tag string) *tendv1.Stage {
		t.Helper()
		return waitStage(stage, "passed "+tag, func(s *tendv1.Stage) bool {
			p := s.Status.Freight
			return p != nil && p.Versions == "web:"+tag && p.VerifiedAt != nil && p.HealthySince != nil && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
		})
	}
	deployed := func(env string) string {
		d, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, env+"-web", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}

	// dev: promoted, rolled out, verified by its Job.
	dev := passed("dev", "1.0.0")
	if got := deployed("dev"); got != image+":1.0.0" {
		t.Errorf("dev passed while its Deployment runs %q", got)
	}
	if p := dev.Status.Freight; p.Verification != tendv1.VerificationSucceeded || p.By != "warehouse web" || p.VerifiedAt.Before(p.HealthySince) || p.Message != "" {
		t.Errorf("dev's promotion: %+v", p)
	}
	if h := dev.Status.History; len(h) != 1 || h[0].VerifiedAt == nil || !h[0].HealthySince.Equal(dev.Status.Freight.HealthySince) || h[0].Verification != tendv1.VerificationSucceeded || h[0].By != "warehouse web" {
		t.Errorf("dev's history: %+v", h)
	}
	var jobs batchv1.JobList
	if err := e.c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 1 || jobs.Items[0].Labels[tendv1.LabelStage] != "dev" || !metav1.IsControlledBy(&jobs.Items[0], dev) {
		t.Errorf("verification Jobs: %v %+v", err, jobs.Items)
	}
	// staging: after dev's soak.
	staging := passed("staging", "1.0.0")
	if p := staging.Status.Freight; p.By != "upstream Stage dev" || p.PromotedAt.Time.Before(dev.Status.Freight.HealthySince.Add(3*time.Second)) || p.PromotedAt.Before(dev.Status.Freight.VerifiedAt) {
		t.Errorf("staging promoted %+v before dev's soak (Healthy since %s) ended", p, dev.Status.Freight.HealthySince)
	}
	if got := deployed("staging"); got != image+":1.0.0" {
		t.Errorf("staging passed while its Deployment runs %q", got)
	}
	// prod: waits for approval, and Notifiers say so.
	prod := waitStage("prod", "waiting for approval", func(s *tendv1.Stage) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonWaitingForApproval
	})
	first := staging.Status.Freight.Name
	msg, _ := sink.wait("prod waits for approval", 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "WaitingForApproval" && m.Stage.Name == "prod"
	})
	if !strings.Contains(msg.Message, "tend promote approve prod "+first) {
		t.Errorf("approval notification: %q", msg.Message)
	}
	sink.wait("dev's promotion", 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "Promoted" && m.Stage.Name == "dev" && strings.Contains(m.Message, "web:1.0.0")
	})
	if deployed("prod") == image+":1.0.0" {
		t.Errorf("prod runs 1.0.0 unapproved")
	}
	prod.Annotations = map[string]string{tendv1.AnnotationApprovedFreight: first, tendv1.AnnotationApprovedBy: "alice"}
	if err := e.c.Update(ctx, prod); err != nil {
		t.Fatal(err)
	}
	prod = passed("prod", "1.0.0")
	if prod.Status.Freight.By != "approved by alice" || deployed("prod") != image+":1.0.0" {
		t.Errorf("prod: %+v, runs %q", prod.Status.Freight, deployed("prod"))
	}
	sink.mu.Lock()
	for _, m := range sink.msgs {
		if m.Stage.Name == "staging" || m.App.Name != "" {
			t.Errorf("a Notifier of Stages dev and prod sent %s of %s%s", m.Kind, m.Stage.Name, m.App.Name)
		}
	}
	sink.mu.Unlock()

	// A failing verification in dev: 1.1.0 runs there, fails, and goes
	// no further.
	dev = waitStage("dev", "read", func(*tendv1.Stage) bool { return true })
	dev.Spec.Verification = verifyJob(true)
	if err := e.c.Update(ctx, dev); err != nil {
		t.Fatal(err)
	}
	push("1.1.0")
	dev = waitStage("dev", "failed verification of 1.1.0", func(s *tendv1.Stage) bool {
		p := s.Status.Freight
		return p != nil && p.Versions == "web:1.1.0" && p.Verification == tendv1.VerificationFailed
	})
	if c := meta.FindStatusCondition(dev.Status.Conditions, tendv1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonVerificationFailed || !strings.Contains(c.Message, "delete the Job to verify again") {
		t.Errorf("dev Ready: %+v", c)
	}
	if got := deployed("dev"); got != image+":1.1.0" {
		t.Errorf("dev verified 1.1.0 while running %q", got)
	}
	if p := dev.Status.Freight; p.VerifiedAt != nil || !strings.Contains(p.Message, "failed") || dev.Status.History[0].Message != p.Message || dev.Status.History[1].Verification != tendv1.VerificationSucceeded {
		t.Errorf("dev's failed promotion: %+v, history %+v", p, dev.Status.History)
	}
	sink.wait("dev's failed verification", 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "VerificationFailed" && m.Stage.Name == "dev" && strings.Contains(m.Error, "verification Job")
	})
	staging = waitStage("staging", "waits for 1.1.0 to pass in dev", func(s *tendv1.Stage) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonWaitingForUpstream && strings.Contains(c.Message, "verification Job")
	})
	if staging.Status.Freight.Name != first || deployed("staging") != image+":1.0.0" {
		t.Errorf("staging moved on from 1.0.0 to %+v after dev's verification failed", staging.Status.Freight)
	}
	if err := e.c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 1 {
		t.Errorf("the Job of 1.0.0 was not deleted when 1.1.0's started: %v %d Jobs", err, len(jobs.Items))
	}

	// A change that would not render web-dev: nothing pushed.
	repo.Pull()
	head := repo.Git("rev-parse", "HEAD")
	e.create(t, &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "breaks-render"}, Spec: tendv1.StageSpec{
		Warehouse: web, Git: git, Apps: []tendv1.LocalObjectReference{{Name: "web-dev"}},
		Updates: []tendv1.StageUpdate{{Image: image, Value: &tendv1.ValueUpdate{File: "envs/dev/kustomization.yaml", Key: "resources", From: tendv1.ValueFromTag}}},
	}})
	broken := waitStage("breaks-render", "stalled", func(s *tendv1.Stage) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
	})
	if c := meta.FindStatusCondition(broken.Status.Conditions, tendv1.ConditionStalled); !strings.Contains(c.Message, "the change would not render the App web-dev (spec.apps[0])") || !strings.Contains(c.Message, "nothing was pushed") {
		t.Errorf("Stalled: %s", c.Message)
	}
	if got := strings.Fields(repo.Git("ls-remote", "origin", "refs/heads/main"))[0]; got != head {
		t.Errorf("main moved from %s to %s after a change that does not render", head, got)
	}
}
