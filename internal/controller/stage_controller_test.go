package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// TestStagePromotesNewFreight: a Stage on a Warehouse commits each new
// piece of freight into git (a kustomization's image and a values key,
// in one commit, as its author), and the App rendering that branch rolls
// the new image out; every promotion is in the Stage's history. A Stage
// whose update names a kustomization git does not hold stalls naming
// the update, and pushes nothing. A Stage with approval waits for it,
// and promotes the freight approved, older freight too.
func TestStagePromotesNewFreight(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	ns := e.Namespace

	reg := charttest.NewRegistry(t, "", "")
	image := reg.Host + "/team/web"
	push := func(tag string) { t.Helper(); pushImage(t, image, tag) }
	push("1.0.0")
	repo := newCtlRepo(t)
	repo.commit("dev", map[string]string{
		"envs/dev/kustomization.yaml": "resources: [deploy.yaml]\nimages:\n- name: " + image + "\n  newTag: 0.9.0\n",
		"envs/dev/deploy.yaml":        deploymentYAML("web", image, ""),
		"envs/dev/version.yaml":       "# the version dev runs\nimage:\n  tag: 0.9.0\n",
		"envs/prod/version.yaml":      "image:\n  tag: 0.9.0\n",
	})
	second := metav1.Duration{Duration: time.Second}
	e.create(t,
		gitSource("config", repo.URL),
		newApp("web-dev", "config", "envs/dev", ns, func(a *tendv1.App) { a.Spec.Sync.Interval = second }),
		webWarehouse(image),
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "dev"}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web"},
			Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}, Author: &tendv1.GitAuthor{Name: "Release Bot", Email: "release@example.com"}},
			Updates: []tendv1.StageUpdate{
				{Image: image, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/dev"}},
				{Image: image, Value: &tendv1.ValueUpdate{File: "envs/dev/version.yaml", Key: "image.tag", From: tendv1.ValueFromTag}},
			},
		}},
	)
	waitStage := func(name, what string, cond func(*tendv1.Stage) bool) *tendv1.Stage {
		t.Helper()
		return waitObject(t, e, name, what, &tendv1.Stage{}, cond)
	}
	deployedImage := func() string {
		d, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	promoted := func(tag string) *tendv1.Stage {
		t.Helper()
		s := waitStage("dev", "promoted "+tag, func(s *tendv1.Stage) bool {
			return s.Status.Freight != nil && strings.Contains(s.Status.Freight.Versions, "web:"+tag) && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
		})
		eventually(t, "the App rolled out "+tag, time.Minute, func() bool { return deployedImage() == image+":"+tag })
		repo.Pull()
		if got := repo.Git("log", "-1", "--format=%an <%ae>|%s", s.Status.Freight.Revision); got != "Release Bot <release@example.com>|promote dev to web:"+tag {
			t.Errorf("promotion commit: %q", got)
		}
		if got := repo.Git("show", s.Status.Freight.Revision+":envs/dev/version.yaml"); !strings.Contains(got, "# the version dev runs") || !strings.Contains(got, "tag: "+tag) {
			t.Errorf("version.yaml at the promotion:\n%s", got)
		}
		return s
	}
	promoted("1.0.0")
	push("1.1.0")
	s := promoted("1.1.0")
	if len(s.Status.History) != 2 || !strings.Contains(s.Status.History[1].Versions, "web:1.0.0") {
		t.Errorf("history %+v, want 1.1.0 then 1.0.0", s.Status.History)
	}

	// A Stage with approval promotes only the freight approved for it,
	// older freight too.
	e.create(t, &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"},
		Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}},
		Approval:  true,
		Updates:   []tendv1.StageUpdate{{Image: image, Value: &tendv1.ValueUpdate{File: "envs/prod/version.yaml", Key: "image.tag", From: tendv1.ValueFromTag}}},
	}})
	prod := waitStage("prod", "waiting for approval", func(s *tendv1.Stage) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonWaitingForApproval
	})
	newestFreight, oldestFreight := s.Status.History[0].Name, s.Status.History[1].Name
	if c := meta.FindStatusCondition(prod.Status.Conditions, tendv1.ConditionReady); !strings.Contains(c.Message, "freight "+newestFreight+" (web:1.1.0) waits for approval: tend promote approve prod "+newestFreight) || prod.Status.Freight != nil {
		t.Errorf("prod before approval: %s; promoted %+v", c.Message, prod.Status.Freight)
	}
	prod.Annotations = map[string]string{tendv1.AnnotationApprovedFreight: oldestFreight}
	if err := e.c.Update(ctx, prod); err != nil {
		t.Fatal(err)
	}
	prod = waitStage("prod", "promoted the approved 1.0.0", func(s *tendv1.Stage) bool {
		return s.Status.Freight != nil && s.Status.Freight.Name == oldestFreight && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	repo.Pull()
	if got := repo.Git("show", prod.Status.Freight.Revision+":envs/prod/version.yaml"); !strings.Contains(got, "tag: 1.0.0") {
		t.Errorf("prod's version.yaml at its promotion:\n%s", got)
	}
	waitStage("prod", "says newer freight waits", func(s *tendv1.Stage) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && strings.Contains(c.Message, "; newer freight "+newestFreight+" (web:1.1.0) waits for approval")
	})

	// An update of a kustomization git does not hold: nothing pushed.
	head := repo.Git("ls-remote", "origin", "refs/heads/main")
	e.create(t, &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"},
		Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}},
		Updates: []tendv1.StageUpdate{
			{Image: image, Value: &tendv1.ValueUpdate{File: "envs/dev/version.yaml", Key: "image.tag", From: tendv1.ValueFromDigest}},
			{Image: image, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/staging"}},
		},
	}})
	broken := waitStage("broken", "stalled on the missing kustomization", func(s *tendv1.Stage) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
	})
	if c := meta.FindStatusCondition(broken.Status.Conditions, tendv1.ConditionStalled); !strings.Contains(c.Message, "spec.updates[1]: envs/staging has no kustomization.yaml; nothing was pushed") {
		t.Errorf("Stalled: %s", c.Message)
	}
	if got := repo.Git("ls-remote", "origin", "refs/heads/main"); got != head {
		t.Errorf("main moved from %s to %s after a failed update", head, got)
	}
	// Suspended, it says so.
	broken.Spec.Suspend = true
	if err := e.c.Update(ctx, broken); err != nil {
		t.Fatal(err)
	}
	waitStage("broken", "suspended", func(s *tendv1.Stage) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonSuspended
	})

	// spec.git.branch: another branch than the Source's.
	repo.Git("branch", "release")
	repo.Git("push", "-q", "origin", "release")
	e.create(t, &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "release"}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"},
		Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}, Branch: "release"},
		Updates:   []tendv1.StageUpdate{{Image: image, Value: &tendv1.ValueUpdate{File: "envs/dev/version.yaml", Key: "image.ref", From: tendv1.ValueFromReference}}},
	}})
	rel := waitStage("release", "promoted to branch release", func(s *tendv1.Stage) bool {
		return s.Status.Freight != nil && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	if got := repo.Git("ls-remote", "origin", "refs/heads/release"); !strings.HasPrefix(got, rel.Status.Freight.Revision) {
		t.Errorf("branch release at %q, want the promotion %s", got, rel.Status.Freight.Revision)
	}
	if got := repo.Git("ls-remote", "origin", "refs/heads/main"); got != head {
		t.Errorf("main moved from %s to %s by a promotion to branch release", head, got)
	}
}

// pushImage pushes a random image to image:tag (a registry without auth).
func pushImage(t *testing.T, image, tag string) {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(image + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

// webWarehouse is the Warehouse "web" of the Stage tests: image's 1.x
// tags, checked every second.
func webWarehouse(image string) *tendv1.Warehouse {
	return &tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: tendv1.WarehouseSpec{
		Interval:      metav1.Duration{Duration: time.Second},
		Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: image, Constraint: "^1"}}},
	}}
}
