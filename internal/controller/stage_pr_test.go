package controller

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/forge/forgetest"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestStagePullRequest: with spec.git.pullRequest a Stage pushes its
// promotion to tend/promote/<stage>, leaves the branch alone and opens a
// pull request through the forge's API (a GitHub API on loopback); once
// merged, the merge commit is the promotion, which passes when the App
// runs it. A pull request closed without merging says so.
func TestStagePullRequest(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	ns := e.Namespace

	reg := charttest.NewRegistry(t, "", "")
	image := reg.Host + "/team/web"
	pushImage(t, image, "1.0.0")
	repo := &ctlRepo{GitRepo: testenv.NewGitRepo(t, nil, testenv.GitPath("team/config.git")), t: t}
	repo.commit("dev", map[string]string{
		"envs/dev/kustomization.yaml": "resources: [deploy.yaml]\nimages:\n- name: " + image + "\n  newTag: 0.9.0\n",
		"envs/dev/deploy.yaml":        deploymentYAML("web", image, ""),
	})
	main := repo.Git("rev-parse", "HEAD")
	srv := forgetest.NewServer(t, "github", "gh-t0ken", "team", "config")
	second := metav1.Duration{Duration: time.Second}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(key.Public())
	e.create(t,
		notifierSecret("forge", map[string]string{"token": "gh-t0ken"}),
		notifierSecret("signing", map[string]string{"identity": string(pem.EncodeToMemory(block))}),
		gitSource("config", repo.URL),
		newApp("web-dev", "config", "envs/dev", ns, func(a *tendv1.App) { a.Spec.Sync.Interval = second }),
		webWarehouse(image),
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "dev"}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web"},
			Git: tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"},
				Signing:     &tendv1.StageSigning{Format: tendv1.SigningSSH, SecretRef: tendv1.LocalObjectReference{Name: "signing"}},
				PullRequest: &tendv1.StagePullRequest{Provider: "github", Address: srv.URL, SecretRef: tendv1.LocalObjectReference{Name: "forge"}}},
			Apps:    []tendv1.LocalObjectReference{{Name: "web-dev"}},
			Updates: []tendv1.StageUpdate{{Image: image, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/dev"}}},
		}},
	)
	waitStage := func(what string, cond func(*tendv1.Stage) bool) *tendv1.Stage {
		t.Helper()
		return waitObject(t, e, "dev", what, &tendv1.Stage{}, cond)
	}
	reason := func(s *tendv1.Stage) string {
		if c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady); c != nil {
			return c.Reason
		}
		return ""
	}
	s := waitStage("a pull request waits", func(s *tendv1.Stage) bool { return reason(s) == ReasonWaitingForMerge })
	p := s.Status.Freight
	if p == nil || p.PullRequest == nil || p.PullRequest.Number != 1 || p.PullRequest.State != "open" || !strings.HasSuffix(p.PullRequest.URL, "/pull/1") {
		t.Fatalf("promotion %+v", p)
	}
	prs := srv.PRs()
	if len(prs) != 1 || prs[0].Head != "tend/promote/dev" || prs[0].Base != "main" || prs[0].Title != "promote dev to web:1.0.0" {
		t.Errorf("pull requests %+v", prs)
	}
	if got := strings.Fields(repo.Git("ls-remote", "origin", "refs/heads/main"))[0]; got != main {
		t.Errorf("main moved to %s: a pull request's promotion was pushed to it", got)
	}
	if got := strings.Fields(repo.Git("ls-remote", "origin", "refs/heads/tend/promote/dev"))[0]; got != p.Revision {
		t.Errorf("tend/promote/dev at %s, want the promotion %s", got, p.Revision)
	}
	// Signed with the Stage's SSH key: git verifies it.
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(allowed, append([]byte("tend@localhost "), ssh.MarshalAuthorizedKey(sshPub)...), 0o644); err != nil {
		t.Fatal(err)
	}
	repo.Git("fetch", "-q", "origin", "tend/promote/dev")
	if out := repo.Git("-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed, "log", "-1", "--format=%G?", "FETCH_HEAD"); out != "G" {
		t.Errorf("the promotion's signature: %q, want G (good)", out)
	}

	// Merged: the merge commit is what the App must run.
	repo.Git("fetch", "-q", "origin", "tend/promote/dev")
	repo.Git("merge", "-q", "--no-ff", "-m", "Merge pull request #1", "FETCH_HEAD")
	repo.Git("push", "-q", "origin", "HEAD:main")
	merge := repo.Git("rev-parse", "HEAD")
	srv.Merge(1, merge)
	s = waitStage("passed after the merge", func(s *tendv1.Stage) bool {
		return s.Status.Freight != nil && s.Status.Freight.VerifiedAt != nil && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	if p := s.Status.Freight; p.Revision != merge || p.PullRequest.State != "merged" {
		t.Errorf("after the merge: %+v, want revision %s", p, merge)
	}
	if d, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || d.Spec.Template.Spec.Containers[0].Image != image+":1.0.0" {
		t.Errorf("the App runs %v, %v", d, err)
	}

	// Closed without merging: the Stage says so.
	pushImage(t, image, "1.1.0")
	waitStage("the second pull request waits", func(s *tendv1.Stage) bool {
		return reason(s) == ReasonWaitingForMerge && s.Status.Freight.PullRequest.Number == 2
	})
	srv.Close(2)
	s = waitStage("read", func(*tendv1.Stage) bool { return true })
	s.Annotations = map[string]string{tendv1.AnnotationRequestedAt: time.Now().Format(time.RFC3339Nano)}
	if err := e.c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	s = waitStage("the closed pull request", func(s *tendv1.Stage) bool { return reason(s) == ReasonPullRequestClosed })
	if p := s.Status.Freight; p.PullRequest.State != "closed" || !strings.Contains(p.Message, "closed without merging") || srv.Refusals() != 0 {
		t.Errorf("closed: %+v; %d refused requests", p, srv.Refusals())
	}

	// A signing Secret without the key: stalled, nothing pushed.
	e.create(t,
		notifierSecret("no-key", map[string]string{"passphrase": "x"}),
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "unsigned"}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web"},
			Git: tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}, Branch: "unsigned",
				Signing: &tendv1.StageSigning{Format: tendv1.SigningOpenPGP, SecretRef: tendv1.LocalObjectReference{Name: "no-key"}}},
			Updates: []tendv1.StageUpdate{{Image: image, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/dev"}}},
		}})
	u := waitObject(t, e, "unsigned", "stalled", &tendv1.Stage{}, func(s *tendv1.Stage) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
	})
	if c := meta.FindStatusCondition(u.Status.Conditions, tendv1.ConditionStalled); c.Reason != ReasonSecretInvalid || !strings.Contains(c.Message, `has no "git.asc" key`) || u.Status.Freight != nil {
		t.Errorf("a Secret without the key: %+v, promoted %+v", c, u.Status.Freight)
	}
}
