package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/source/chart"
	"github.com/tend-gitops/tend/internal/source/git"
)

// EventRecorder records Kubernetes events (events.k8s.io).
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Event reasons.
const (
	ReasonSucceeded        = "Succeeded"
	ReasonFetchFailed      = "FetchFailed"
	ReasonNewRevision      = "NewRevision"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonSecretInvalid    = "SecretInvalid"
	ReasonSuspended        = "Suspended"
	ReasonProgressing      = "Progressing"
	ReasonArtifactNotReady = "ArtifactNotReady"
)

// SourceReconciler fetches Sources on their interval (or when asked)
// through the artifact Store, which keeps one checkout per Source and is
// the one owner of each Source's current revision; the Source's status
// reports it to users. A failed fetch keeps the last good artifact. Chart
// Sources have no artifact (Apps fetch their charts); an OCI Source's
// registry is checked to speak the protocol spec.oci.insecure names.
type SourceReconciler struct {
	Client    client.Client
	Artifacts *artifact.Store
	// Charts checks OCI registries; nil means a Fetcher of the
	// reconciler's own with default options.
	Charts   *chart.Fetcher
	Recorder EventRecorder
	Log      *slog.Logger
	// OnNewRevision is called after a Source's revision changed.
	OnNewRevision func(src types.NamespacedName)
	// Notify, when set, is given the Source's events for Notifiers: a new
	// revision fetched, and each new fetch failure (not each retry).
	Notify func(notify.Event)
	// Workers is the number of concurrent fetches (default 4).
	Workers int

	metrics *tendMetrics
	// refs reconciles a Source whose credentials Secret changed (New sets
	// it; refOwners sends on it).
	refs trigger

	chartsOnce sync.Once
}

// SetupWithManager registers the reconciler.
func (r *SourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	workers := r.Workers
	if workers <= 0 {
		workers = 4
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("source").
		For(&tendv1.Source{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	if r.refs != nil {
		b = b.WatchesRawSource(r.refs.source())
	}
	return b.
		// A failing fetch is retried from 1 s, not 5 ms: it runs git
		// against someone's server.
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, RateLimiter: remoteRetryLimiter()}).
		Complete(r)
}

// AnnotationRequestedAt, set to any new value on a Source or App, asks tend
// to reconcile it now (push webhooks and `tend sync` set it).
const AnnotationRequestedAt = tendv1.AnnotationRequestedAt

// Reconcile fetches one Source.
func (r *SourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var src tendv1.Source
	if err := r.Client.Get(ctx, req.NamespacedName, &src); err != nil {
		if apierrors.IsNotFound(err) {
			if err := r.Artifacts.Remove(req.NamespacedName); err != nil {
				return ctrl.Result{}, fmt.Errorf("remove the checkout of deleted Source %s: %w", req.NamespacedName, err)
			}
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	before := src.DeepCopy()
	res, err := r.reconcile(ctx, &src)
	src.Status.ObservedGeneration = src.Generation
	return finish(ctx, objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Fetch"}, &src, before, res, err)
}

// reconcile fetches src and sets its status. Errors are transient (see
// status.go); permanent problems stall src. The credentials Secret is read
// from its watch (refs.go): a periodic fetch sends the apiserver no
// request for it, and a change to it fetches again at once.
func (r *SourceReconciler) reconcile(ctx context.Context, src *tendv1.Source) (ctrl.Result, error) {
	rd := readerFor(r.Client, sourceOwner(src))
	defer rd.done() // a Source that no longer reads its Secret lets its watch go
	interval := src.Spec.Interval.Duration
	if interval <= 0 {
		interval = time.Minute
	}
	if src.Spec.Suspend {
		setNotReady(&src.Status.Conditions, src.Generation, ReasonSuspended, "fetching is suspended; the last artifact stays available")
		return ctrl.Result{}, nil
	}
	switch {
	case src.Spec.Git != nil:
		return r.reconcileGit(ctx, rd, src, interval)
	case src.Spec.OCIArtifact():
		return r.reconcileArtifact(ctx, rd, src, interval)
	case src.Spec.OCI != nil:
		return r.reconcileOCI(ctx, src, interval)
	case src.Spec.Helm != nil:
		// Chart sources are read when Apps render: charts are fetched
		// (and cached) by name and version then.
		setCondition(&src.Status.Conditions, src.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonSucceeded, "charts are fetched when Apps render")
		meta.RemoveStatusCondition(&src.Status.Conditions, tendv1.ConditionStalled)
		return ctrl.Result{}, nil
	default:
		stall(&src.Status.Conditions, src.Generation, ReasonInvalidSpec, "set one of spec.git, spec.helm or spec.oci")
		return ctrl.Result{}, nil
	}
}

func (r *SourceReconciler) reconcileGit(ctx context.Context, rd client.Reader, src *tendv1.Source, interval time.Duration) (ctrl.Result, error) {
	key := types.NamespacedName{Namespace: src.Namespace, Name: src.Name}
	g := src.Spec.Git
	auth, err := GitAuth(ctx, rd, src)
	if err != nil {
		if objstatus.IsPermanent(err) {
			// Its Secret is watched: creating or fixing it fetches
			// again at once.
			stall(&src.Status.Conditions, src.Generation, ReasonSecretInvalid, err.Error())
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		setNotReady(&src.Status.Conditions, src.Generation, ReasonReconcileFailed, err.Error())
		return ctrl.Result{}, err
	}
	ref := git.Ref{Branch: g.Ref.Branch, Tag: g.Ref.Tag, SemVer: g.Ref.SemVer, Commit: g.Ref.Commit}
	if ref == (git.Ref{}) {
		ref.Branch = "main"
	}
	start := time.Now()
	art, res, first, err := r.Artifacts.Fetch(ctx, key, git.Options{URL: g.URL, Ref: ref, Auth: auth, Timeout: src.Spec.Timeout.Duration})
	if r.metrics != nil {
		r.metrics.fetch.WithLabelValues(resultLabel(err)).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		// Wrong credentials, URL or ref need a change of the Source or
		// its Secret.
		reason := ""
		switch {
		case errors.Is(err, git.ErrInvalid):
			reason = ReasonInvalidSpec
		case fetchNeedsChange(err):
			reason = ReasonFetchFailed
		}
		return r.fetchFailed(src, err, reason, interval)
	}
	r.fetched(src, art, "fetched "+shortRev(art.Revision), "revision "+shortRev(art.Revision))
	if r.OnNewRevision != nil && (first || len(res.ChangedFiles) > 0 || res.ChangedFiles == nil) {
		r.OnNewRevision(key)
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// fetchFailed records a failed fetch of src; the last good artifact
// stays. stallReason, when set, says only a change of the Source or its
// Secret helps (wrong credentials, URL or ref): src is Stalled for that
// reason and fetched again after its interval. Otherwise (unreachable,
// timed out) the fetch is retried with backoff, with one event per
// failure, not one per retry.
func (r *SourceReconciler) fetchFailed(src *tendv1.Source, err error, stallReason string, interval time.Duration) (ctrl.Result, error) {
	msg := err.Error()
	if src.Status.Artifact != nil {
		msg += "; still serving revision " + src.Status.Artifact.Revision
	}
	r.notifyFailure(src, msg, err.Error())
	if stallReason != "" {
		stall(&src.Status.Conditions, src.Generation, stallReason, err.Error())
		setCondition(&src.Status.Conditions, src.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonFetchFailed, msg)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	if was := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady); was == nil || was.Reason != ReasonFetchFailed || was.Message != msg {
		r.event(src, corev1.EventTypeWarning, ReasonFetchFailed, err.Error())
	}
	setNotReady(&src.Status.Conditions, src.Generation, ReasonFetchFailed, msg)
	return ctrl.Result{}, err
}

// fetched records src's artifact art: a new revision is written to its
// status with one event (what, then the subject); ready is the Ready
// message.
func (r *SourceReconciler) fetched(src *tendv1.Source, art artifact.Artifact, what, ready string) {
	meta.RemoveStatusCondition(&src.Status.Conditions, tendv1.ConditionStalled)
	if src.Status.Artifact == nil || src.Status.Artifact.Revision != art.Revision {
		src.Status.Artifact = &tendv1.Artifact{Revision: art.Revision, Ref: art.Ref, Subject: art.Subject, FetchedAt: metav1.NewTime(art.FetchedAt)}
		r.event(src, corev1.EventTypeNormal, ReasonNewRevision, what+": "+art.Subject)
		r.publish(src, notify.Event{Kind: notify.NewRevision, Revision: art.Revision, Subject: art.Subject, Message: what + ": " + art.Subject})
	}
	setCondition(&src.Status.Conditions, src.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonSucceeded, ready)
}

// reconcileOCI checks that an OCI Source's registry answers over the
// protocol spec.oci.insecure names (HTTPS without it, plain HTTP with it);
// charts themselves are fetched, and cached, when Apps render. A registry
// that speaks the other protocol is a mistake in the Source (or the
// registry) that retrying does not fix, and so are rejected credentials:
// the Source is Stalled and checked again only after its interval or when
// its spec changes. An unreachable registry is retried with backoff; a
// registry that answers is checked again after the Source's interval.
func (r *SourceReconciler) reconcileOCI(ctx context.Context, src *tendv1.Source, interval time.Duration) (ctrl.Result, error) {
	o := src.Spec.OCI
	if t := src.Spec.Timeout.Duration; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	err := r.charts().CheckOCI(ctx, chart.OCIURL(o.URL, o.Insecure))
	if err != nil {
		if errors.Is(err, chart.ErrScheme) || errors.Is(err, chart.ErrUnauthorized) || !strings.HasPrefix(o.URL, "oci://") {
			reason := ReasonInvalidSpec
			if errors.Is(err, chart.ErrUnauthorized) {
				reason = ReasonFetchFailed
			}
			r.notifyFailure(src, err.Error(), err.Error())
			stall(&src.Status.Conditions, src.Generation, reason, err.Error())
			setCondition(&src.Status.Conditions, src.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonFetchFailed, err.Error())
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		if was := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady); was == nil || was.Reason != ReasonFetchFailed || was.Message != err.Error() {
			r.event(src, corev1.EventTypeWarning, ReasonFetchFailed, err.Error())
		}
		r.notifyFailure(src, err.Error(), err.Error())
		setNotReady(&src.Status.Conditions, src.Generation, ReasonFetchFailed, err.Error())
		return ctrl.Result{}, err
	}
	msg := "the registry answers over HTTPS; charts are fetched when Apps render"
	if o.Insecure {
		msg = "the registry answers over plain HTTP (spec.oci.insecure); charts are fetched when Apps render"
	}
	setCondition(&src.Status.Conditions, src.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonSucceeded, msg)
	meta.RemoveStatusCondition(&src.Status.Conditions, tendv1.ConditionStalled)
	// Checked again every interval, so that Ready says when the registry
	// stops answering (a 500, or gone), not only what it did once.
	return ctrl.Result{RequeueAfter: interval}, nil
}

// charts returns the Fetcher that checks OCI registries.
func (r *SourceReconciler) charts() *chart.Fetcher {
	r.chartsOnce.Do(func() {
		if r.Charts == nil {
			r.Charts = chart.New(chart.Options{})
		}
	})
	return r.Charts
}

// GitAuth reads a git Source's credentials Secret ("username" and
// "password" or "token" for HTTPS; "identity" and "known_hosts" for SSH,
// or Argo CD's "sshPrivateKey" for "identity", so that an Argo CD
// repository Secret serves as it is), saying which key is missing. A missing Secret or key satisfies
// objstatus.IsPermanent; other errors are failures to read it.
func GitAuth(ctx context.Context, c client.Reader, src *tendv1.Source) (*git.Auth, error) {
	ref := src.Spec.Git.SecretRef
	if ref == nil {
		return nil, nil
	}
	var sec corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: ref.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("credentials Secret %s/%s (spec.git.secretRef) not found; create it, with \"username\" and \"password\" or \"token\" for HTTPS, \"identity\" and \"known_hosts\" for SSH", src.Namespace, ref.Name)
		}
		return nil, fmt.Errorf("read credentials Secret %s/%s: %w", src.Namespace, ref.Name, err)
	}
	a := &git.Auth{
		Username:      string(sec.Data["username"]),
		Password:      string(sec.Data["password"]),
		SSHPrivateKey: sec.Data["identity"],
		SSHKnownHosts: sec.Data["known_hosts"],
	}
	if a.Password == "" {
		a.Password = string(sec.Data["token"])
	}
	if len(a.SSHPrivateKey) == 0 {
		a.SSHPrivateKey = sec.Data["sshPrivateKey"] // Argo CD's name
	}
	isSSH := !hasPrefix(src.Spec.Git.URL, "http://") && !hasPrefix(src.Spec.Git.URL, "https://")
	switch {
	case isSSH && len(a.SSHPrivateKey) == 0:
		return nil, objstatus.Permanentf("credentials Secret %s/%s has no key \"identity\" (the SSH private key) for %s", src.Namespace, ref.Name, src.Spec.Git.URL)
	case isSSH && len(a.SSHKnownHosts) == 0:
		hint := ""
		if len(sec.Data["sshPrivateKey"]) > 0 {
			hint = " (Argo CD keeps them in the ConfigMap argocd-ssh-known-hosts-cm)"
		}
		return nil, objstatus.Permanentf("credentials Secret %s/%s has no key \"known_hosts\"; tend checks SSH host keys: add the output of ssh-keyscan for the host%s", src.Namespace, ref.Name, hint)
	case !isSSH && a.Password == "":
		return nil, objstatus.Permanentf("credentials Secret %s/%s has neither \"password\" nor \"token\" for %s", src.Namespace, ref.Name, src.Spec.Git.URL)
	}
	return a, nil
}

// fetchNeedsChange reports whether a fetch failed for a reason only a
// change of the Source or its Secret fixes (the git package's kinds).
func fetchNeedsChange(err error) bool {
	for _, kind := range []error{git.ErrAuth, git.ErrHostKey, git.ErrRefNotFound, git.ErrRepoNotFound, git.ErrInvalid} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// notifyFailure publishes a FetchFailed event unless src's Ready
// condition already says the same (msg): a failure is told once, not at
// every retry, and not again after a restart.
func (r *SourceReconciler) notifyFailure(src *tendv1.Source, msg, errText string) {
	if was := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady); was != nil && was.Reason == ReasonFetchFailed && was.Message == msg {
		return
	}
	what := "fetch failed"
	if a := src.Status.Artifact; a != nil {
		what += "; still serving revision " + shortRev(a.Revision)
	}
	r.publish(src, notify.Event{Kind: notify.FetchFailed, Message: what, Error: errText})
}

// publish hands a Source's event to Notify.
func (r *SourceReconciler) publish(src *tendv1.Source, e notify.Event) {
	if r.Notify == nil {
		return
	}
	e.Severity, e.Time = notify.SeverityOf(e.Kind), time.Now()
	e.AppNamespace, e.SourceName, e.SourceType, e.Labels = src.Namespace, src.Name, string(src.Spec.Type()), src.Labels
	r.Notify(e)
}

func (r *SourceReconciler) event(obj runtime.Object, typ, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, reason, "%s", note)
	}
}

// setCondition sets a condition, keeping its transition time when the
// status does not change.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > 32000 {
		msg = msg[:32000]
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
