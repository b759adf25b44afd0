package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/forge"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/git"
)

// track follows the Stage's current promotion where it runs: its Apps
// synced a revision holding the promotion commit and are Healthy (since
// when), then its verification Job. settled is true when the promotion
// passed and still runs Healthy (or the Stage promoted nothing): the
// caller then says what else the Stage waits for. Otherwise track set
// the Ready condition.
func (r *StageReconciler) track(ctx context.Context, s *tendv1.Stage) (res reconcile.Result, settled bool, err error) {
	p := s.Status.Freight
	if p == nil {
		return reconcile.Result{}, true, nil
	}
	if p.PullRequest != nil {
		if res, merged, err := r.followPullRequest(ctx, s, p); !merged {
			return res, false, err
		}
	}
	ok, why, err := r.appsRun(ctx, s, p)
	if err != nil || meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled) {
		return reconcile.Result{}, false, err
	}
	now := metav1.Now()
	if !ok {
		// A break in health restarts the soak of downstream Stages.
		p.HealthySince = nil
		if p.VerifiedAt == nil {
			p.Message = why
			setNotReady(&s.Status.Conditions, s.Generation, ReasonVerifying, fmt.Sprintf("freight %s (%s) at %s: %s", p.Name, p.Versions, shortRev(p.Revision), why))
		} else {
			setNotReady(&s.Status.Conditions, s.Generation, ReasonVerifying, fmt.Sprintf("freight %s (%s) passed, but now %s", p.Name, p.Versions, why))
		}
		return reconcile.Result{}, false, nil
	}
	if p.HealthySince == nil {
		p.HealthySince = &now
	}
	if p.VerifiedAt != nil {
		return reconcile.Result{}, true, nil
	}
	if s.Spec.Verification == nil {
		p.VerifiedAt, p.Message = &now, ""
		return reconcile.Result{}, true, nil
	}
	return r.verify(ctx, s, p)
}

// appsRun says whether each of the Stage's Apps synced a revision that
// holds promotion p and is Healthy; why says what is missing when not.
// An App that does not render the Stage's Source stalls the Stage.
func (r *StageReconciler) appsRun(ctx context.Context, s *tendv1.Stage, p *tendv1.Promotion) (bool, string, error) {
	for i, ref := range s.Spec.Apps {
		var app tendv1.App
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, &app); err != nil {
			if apierrors.IsNotFound(err) {
				// Its creation reconciles the Stage (the App watch).
				return false, fmt.Sprintf("the App %s (spec.apps[%d]) not found", ref.Name, i), nil
			}
			return false, "", err
		}
		rev, renders := revisionOfSource(&app, s.Spec.Git.SourceRef.Name)
		if !renders {
			stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, fmt.Sprintf("spec.apps[%d]: the App %s does not render the Source %s the Stage commits to (spec.git.sourceRef); name the Apps that roll out what the Stage commits", i, app.Name, s.Spec.Git.SourceRef.Name))
			return false, "", nil
		}
		if rev == "" {
			return false, fmt.Sprintf("the App %s has synced nothing yet", app.Name), nil
		}
		holds, err := r.holds(ctx, s, p.Revision, rev)
		if err != nil {
			return false, "", err
		}
		if !holds {
			return false, fmt.Sprintf("the App %s runs %s, not yet the promotion %s", app.Name, shortRev(rev), shortRev(p.Revision)), nil
		}
		if app.Status.Health != string(health.Healthy) {
			h := app.Status.Health
			if h == "" {
				h = "of unknown health"
			}
			return false, fmt.Sprintf("the App %s runs it and is %s", app.Name, h), nil
		}
	}
	return true, "", nil
}

// revisionOfSource is the revision app last synced of its Source named
// src in its own namespace ("" when none yet), and whether it renders
// that Source at all (spec.sourceRef or an entry of spec.sources).
func revisionOfSource(app *tendv1.App, src string) (string, bool) {
	parts := strings.Split(app.Status.Revision, ", ")
	at := func(i int) string {
		if i < len(parts) && len(parts) == len(app.Spec.Sources)+1 {
			return parts[i]
		}
		return ""
	}
	same := func(ref tendv1.NamespacedObjectReference) bool {
		return ref.Name == src && (ref.Namespace == "" || ref.Namespace == app.Namespace)
	}
	if same(app.Spec.SourceRef) {
		return at(0), true
	}
	for i, e := range app.Spec.Sources {
		if same(e.SourceRef) {
			return at(i + 1), true
		}
	}
	return "", false
}

// holds says whether revision tip holds the promotion commit: it is the
// commit or a descendant, asked of the Stage's repository once per pair.
func (r *StageReconciler) holds(ctx context.Context, s *tendv1.Stage, commit, tip string) (bool, error) {
	if commit == tip {
		return true, nil
	}
	key := commit + " " + tip
	r.mu.Lock()
	known, ok := r.contains[key]
	r.mu.Unlock()
	if ok {
		return known, nil
	}
	var src tendv1.Source
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Git.SourceRef.Name}, &src); err != nil {
		return false, err
	}
	if src.Spec.Git == nil {
		return false, nil
	}
	auth, err := GitAuth(ctx, r.Client, &src)
	if err != nil {
		return false, err
	}
	yes, err := r.Git.Contains(ctx, git.Options{URL: src.Spec.Git.URL, Auth: auth, Timeout: src.Spec.Timeout.Duration}, stageBranch(s, &src), commit, tip)
	if err != nil {
		return false, fmt.Errorf("does %s hold the promotion %s: %w", shortRev(tip), shortRev(commit), err)
	}
	r.mu.Lock()
	if r.contains == nil || len(r.contains) > 1024 {
		r.contains = map[string]bool{}
	}
	r.contains[key] = yes
	r.mu.Unlock()
	return yes, nil
}

// verificationJob names the Job that verifies promotion p of s.
func verificationJob(s *tendv1.Stage, p *tendv1.Promotion) string {
	sum := sha256.Sum256([]byte(p.Name + " " + p.Revision))
	name := s.Name
	if len(name) > 45 {
		name = name[:45]
	}
	return strings.TrimRight(name, "-.") + "-verify-" + hex.EncodeToString(sum[:])[:10]
}

// verify runs the Stage's verification Job for promotion p, which its
// Apps run Healthy, and reads its result.
func (r *StageReconciler) verify(ctx context.Context, s *tendv1.Stage, p *tendv1.Promotion) (reconcile.Result, bool, error) {
	name := verificationJob(s, p)
	var job batchv1.Job
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: name}, &job)
	switch {
	case apierrors.IsNotFound(err):
		// A new promotion's Job (or one deleted to verify again).
		if err := r.startVerification(ctx, s, p, name); err != nil {
			return reconcile.Result{}, false, err
		}
		if meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled) {
			return reconcile.Result{}, false, nil
		}
		p.Verification = tendv1.VerificationRunning
		p.Message = fmt.Sprintf("the verification Job %s runs", name)
		setNotReady(&s.Status.Conditions, s.Generation, ReasonVerifying, fmt.Sprintf("freight %s (%s): %s", p.Name, p.Versions, p.Message))
		return reconcile.Result{}, false, nil
	case err != nil:
		return reconcile.Result{}, false, err
	}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			now := metav1.Now()
			p.Verification, p.VerifiedAt, p.Message = tendv1.VerificationSucceeded, &now, ""
			r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, "Verified", "Verify", "freight %s (%s) passed: the verification Job %s succeeded", p.Name, p.Versions, name)
			return reconcile.Result{}, true, nil
		case batchv1.JobFailed:
			msg := fmt.Sprintf("the verification Job %s failed (%s: %s); freight %s (%s) does not pass on. `kubectl logs -n %s job/%s` shows why; delete the Job to verify again", name, c.Reason, c.Message, p.Name, p.Versions, s.Namespace, name)
			if p.Verification != tendv1.VerificationFailed {
				r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, ReasonVerificationFailed, "Verify", "%s", msg)
				r.publish(s, notify.VerificationFailed, p.Revision, fmt.Sprintf("freight %s (%s) failed verification", p.Name, p.Versions), msg)
			}
			p.Verification, p.Message = tendv1.VerificationFailed, msg
			setNotReady(&s.Status.Conditions, s.Generation, ReasonVerificationFailed, msg)
			return reconcile.Result{}, false, nil
		}
	}
	p.Verification = tendv1.VerificationRunning
	p.Message = fmt.Sprintf("the verification Job %s runs", name)
	setNotReady(&s.Status.Conditions, s.Generation, ReasonVerifying, fmt.Sprintf("freight %s (%s): %s", p.Name, p.Versions, p.Message))
	return reconcile.Result{}, false, nil
}

// startVerification deletes the Stage's Jobs of earlier promotions and
// creates the Job named name for p. A Job the apiserver refuses stalls
// the Stage naming spec.verification.job.
func (r *StageReconciler) startVerification(ctx context.Context, s *tendv1.Stage, p *tendv1.Promotion, name string) error {
	var old batchv1.JobList
	if err := r.Client.List(ctx, &old, client.InNamespace(s.Namespace), client.MatchingLabels{tendv1.LabelStage: s.Name}); err != nil {
		return err
	}
	for i := range old.Items {
		if j := &old.Items[i]; j.Name != name && metav1.IsControlledBy(j, s) {
			if err := r.Client.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{tendv1.LabelStage: s.Name, tendv1.LabelFreight: labelValue(p.Name)}},
		Spec:       *s.Spec.Verification.Job.DeepCopy(),
	}
	if job.Spec.Template.Spec.RestartPolicy == "" {
		job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	if job.Spec.BackoffLimit == nil {
		job.Spec.BackoffLimit = ptr.To[int32](0) // a check that fails, failed
	}
	if err := controllerutil.SetControllerReference(s, job, r.Client.Scheme()); err != nil {
		return err
	}
	err := r.Client.Create(ctx, job)
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, ReasonVerifying, "Verify", "freight %s (%s) runs Healthy; the verification Job %s started", p.Name, p.Versions, name)
		return nil
	case apierrors.IsInvalid(err), apierrors.IsForbidden(err), apierrors.IsBadRequest(err):
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, fmt.Sprintf("spec.verification.job: the Job %s was refused: %v", name, err))
		return nil
	}
	return err
}

// labelValue makes s a valid label value (at most 63 characters).
func labelValue(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-_.")
}

// renderCheck renders, before a push, the Stage's Apps that render its git
// Source from the changed checkout.
type renderCheck struct {
	r    *StageReconciler
	src  *tendv1.Source
	apps []*tendv1.App
	idx  []int
}

// renderChecks loads the Apps a change must still render: those of
// spec.apps whose spec.sourceRef is the Stage's Source. Apps not found
// yet are skipped.
func (r *StageReconciler) renderChecks(ctx context.Context, s *tendv1.Stage, src *tendv1.Source) (*renderCheck, error) {
	rc := &renderCheck{r: r, src: src}
	for i, ref := range s.Spec.Apps {
		var app tendv1.App
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, &app); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if ns := app.Spec.SourceRef.Namespace; app.Spec.SourceRef.Name == src.Name && (ns == "" || ns == s.Namespace) && app.Spec.Chart == nil {
			rc.apps, rc.idx = append(rc.apps, &app), append(rc.idx, i)
		}
	}
	return rc, nil
}

// run renders each App from dir, the checkout with the Stage's changes.
func (rc *renderCheck) run(ctx context.Context, dir string) error {
	for k, app := range rc.apps {
		opts, err := appspec.RenderOptions(ctx, rc.r.Client, storeFiles{rc.r.Artifacts}, app, rc.src)
		if err != nil {
			return fmt.Errorf("the change would not render the App %s (spec.apps[%d]): %w", app.Name, rc.idx[k], err)
		}
		if _, err := (&render.Renderer{Charts: rc.r.Charts}).Render(ctx, dir, opts); err != nil {
			return fmt.Errorf("the change would not render the App %s (spec.apps[%d]): %w", app.Name, rc.idx[k], err)
		}
	}
	return nil
}

// pullRequestBranch is the branch a Stage proposes its promotions on.
func pullRequestBranch(s *tendv1.Stage) string { return "tend/promote/" + s.Name }

// forgeClient is the API client of spec.git.pullRequest, with the token of
// its Secret. A nil client comes with the error to return, or with none
// when the Stage stalled.
func (r *StageReconciler) forgeClient(ctx context.Context, s *tendv1.Stage, src *tendv1.Source) (*forge.Client, error) {
	pr := s.Spec.Git.PullRequest
	var sec corev1.Secret
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: pr.SecretRef.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, fmt.Sprintf("spec.git.pullRequest.secretRef: the Secret %s/%s not found; create it with a \"token\" key (an access token that may open pull requests)", s.Namespace, pr.SecretRef.Name))
			return nil, nil
		}
		return nil, err
	}
	token := strings.TrimSpace(string(sec.Data["token"]))
	if token == "" {
		stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, fmt.Sprintf("spec.git.pullRequest.secretRef: the Secret %s/%s has no \"token\" key", s.Namespace, pr.SecretRef.Name))
		return nil, nil
	}
	c, err := forge.NewClient(pr.Provider, pr.Address, token, src.Spec.Git.URL)
	if err != nil {
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, "spec.git.pullRequest: "+err.Error())
		return nil, nil
	}
	return c, nil
}

// pullRequestPoll is how often an open pull request is read when nothing
// else reconciles its Stage (its Apps syncing the merge do).
const pullRequestPoll = time.Minute

// followPullRequest reads the pull request proposing p until it is merged
// (p's revision is then the merge commit) or closed. done is true once it
// is merged.
func (r *StageReconciler) followPullRequest(ctx context.Context, s *tendv1.Stage, p *tendv1.Promotion) (res reconcile.Result, done bool, err error) {
	pr := p.PullRequest
	switch pr.State {
	case forge.StateMerged:
		return reconcile.Result{}, true, nil
	case forge.StateOpen:
		var src tendv1.Source
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Git.SourceRef.Name}, &src); err != nil {
			if apierrors.IsNotFound(err) {
				stall(&s.Status.Conditions, s.Generation, ReasonSourceNotFound, fmt.Sprintf("spec.git.sourceRef: the Source %s/%s not found; create it or fix spec.git.sourceRef", s.Namespace, s.Spec.Git.SourceRef.Name))
				return reconcile.Result{}, false, nil
			}
			return reconcile.Result{}, false, err
		}
		if s.Spec.Git.PullRequest == nil || src.Spec.Git == nil {
			break // proposed before the spec changed: what it says now decides
		}
		c, err := r.forgeClient(ctx, s, &src)
		if c == nil {
			return reconcile.Result{}, false, err
		}
		now, err := c.Get(ctx, pr.Number)
		if err != nil {
			if forge.IsPermanent(err) {
				stall(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, fmt.Sprintf("spec.git.pullRequest: reading pull request #%d: %v", pr.Number, err))
				return reconcile.Result{}, false, nil
			}
			return reconcile.Result{}, false, fmt.Errorf("read pull request #%d of Stage %s/%s: %w", pr.Number, s.Namespace, s.Name, err)
		}
		pr.State = now.State
		switch now.State {
		case forge.StateMerged:
			if now.MergeCommit != "" {
				p.Revision = now.MergeCommit
			}
			r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, "Merged", "Promote", "pull request #%d of freight %s (%s) was merged as %s", pr.Number, p.Name, p.Versions, shortRev(p.Revision))
			return reconcile.Result{}, true, nil
		case forge.StateOpen:
			p.Message = fmt.Sprintf("pull request #%d (%s) waits to be merged", pr.Number, pr.URL)
			setNotReady(&s.Status.Conditions, s.Generation, ReasonWaitingForMerge, fmt.Sprintf("freight %s (%s): %s", p.Name, p.Versions, p.Message))
			return reconcile.Result{RequeueAfter: pullRequestPoll}, false, nil
		}
	}
	p.Message = fmt.Sprintf("pull request #%d (%s) was closed without merging; new freight, or a change of the Stage, proposes it again", pr.Number, pr.URL)
	setNotReady(&s.Status.Conditions, s.Generation, ReasonPullRequestClosed, fmt.Sprintf("freight %s (%s): %s", p.Name, p.Versions, p.Message))
	return reconcile.Result{}, false, nil
}

// signer is the signer of spec.git.signing, from its Secret. A nil signer
// comes with the error to return, or with none when the Stage stalled.
func (r *StageReconciler) signer(ctx context.Context, s *tendv1.Stage) (git.Signer, error) {
	sg := s.Spec.Git.Signing
	var sec corev1.Secret
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: sg.SecretRef.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, fmt.Sprintf("spec.git.signing.secretRef: the Secret %s/%s not found; create it with the signing key", s.Namespace, sg.SecretRef.Name))
			return nil, nil
		}
		return nil, err
	}
	key, build := "git.asc", git.NewOpenPGPSigner
	if sg.Format == tendv1.SigningSSH {
		key, build = "identity", git.NewSSHSigner
	}
	if len(sec.Data[key]) == 0 {
		stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, fmt.Sprintf("spec.git.signing.secretRef: the Secret %s/%s has no %q key (the %s private key)", s.Namespace, sg.SecretRef.Name, key, sg.Format))
		return nil, nil
	}
	signer, err := build(sec.Data[key], sec.Data["passphrase"])
	if err != nil {
		stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, fmt.Sprintf("spec.git.signing.secretRef: the Secret %s/%s: %v", s.Namespace, sg.SecretRef.Name, err))
		return nil, nil
	}
	return signer, nil
}
