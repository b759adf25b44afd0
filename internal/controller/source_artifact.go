package controller

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/source/chart"
)

// ArtifactPuller pulls OCI artifacts (chart.Fetcher does).
type ArtifactPuller interface {
	PullArtifact(ctx context.Context, repoURL string, ref chart.ArtifactRef, auth *url.Userinfo, have, dir string) (chart.Artifact, bool, error)
}

// ArtifactPull returns how the OCI artifact of src (spec.oci.ref) is
// pulled: the one its ref selects, or, with digest set, that one (a
// Source's current revision, for the CLI). Its credentials are read through
// c; a missing Secret or key satisfies objstatus.IsPermanent. The
// controller and the CLI pull through it.
func ArtifactPull(ctx context.Context, c client.Reader, charts ArtifactPuller, src *tendv1.Source, digest string) (artifact.PullFunc, error) {
	o := src.Spec.OCI
	var cred *url.Userinfo
	if o.SecretRef != nil {
		var sec corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: o.SecretRef.Name}, &sec); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, objstatus.Permanentf("credentials Secret %s/%s (spec.oci.secretRef) not found; create it with \"username\" and \"password\"", src.Namespace, o.SecretRef.Name)
			}
			return nil, fmt.Errorf("read credentials Secret %s/%s: %w", src.Namespace, o.SecretRef.Name, err)
		}
		user, pass, err := chart.SecretCredentials(sec.Data, chart.OCIHost(o.URL))
		if err != nil {
			return nil, objstatus.Permanentf("credentials Secret %s/%s (spec.oci.secretRef): %v", src.Namespace, o.SecretRef.Name, err)
		}
		cred = url.UserPassword(user, pass)
	}
	ref := chart.ArtifactRef{Tag: o.Ref.Tag, SemVer: o.Ref.SemVer, SemverFilter: o.Ref.SemverFilter, Digest: o.Ref.Digest}
	if digest != "" {
		ref = chart.ArtifactRef{Digest: digest}
	}
	if o.LayerSelector != nil {
		ref.LayerMediaType = o.LayerSelector.MediaType
	}
	repoURL, from := chart.OCIURL(o.URL, o.Insecure), o.URL
	timeout := src.Spec.Timeout.Duration
	return func(ctx context.Context, have, dir string) (artifact.Artifact, bool, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		a, pulled, err := charts.PullArtifact(ctx, repoURL, ref, cred, have, dir)
		if err != nil {
			return artifact.Artifact{}, false, err
		}
		return artifact.Artifact{Revision: a.Digest, Ref: a.Tag, Subject: artifactSubject(a), URL: from}, pulled, nil
	}, nil
}

// artifactSubject says what an artifact holds, as a commit subject does.
func artifactSubject(a chart.Artifact) string {
	s := "tag " + a.Tag
	if a.Tag == "" {
		s = "digest " + a.Digest
	}
	if a.Chart {
		s = "Helm chart, " + s
	}
	switch {
	case a.Source != "" && a.Revision != "":
		s += " (from " + a.Source + " at " + a.Revision + ")"
	case a.Revision != "":
		s += " (from " + a.Revision + ")"
	}
	return s
}

// reconcileArtifact pulls an OCI artifact Source (spec.oci.ref) through
// the artifact Store. A digest that has not changed is not downloaded
// again. Errors are sorted as git's are: a ref, artifact or credentials
// that only a change fixes stall the Source; an unreachable registry is
// retried with backoff. The last good artifact stays.
func (r *SourceReconciler) reconcileArtifact(ctx context.Context, rd client.Reader, src *tendv1.Source, interval time.Duration) (ctrl.Result, error) {
	key := types.NamespacedName{Namespace: src.Namespace, Name: src.Name}
	pull, err := ArtifactPull(ctx, rd, r.charts(), src, "")
	if err != nil {
		if objstatus.IsPermanent(err) {
			stall(&src.Status.Conditions, src.Generation, ReasonSecretInvalid, err.Error())
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		setNotReady(&src.Status.Conditions, src.Generation, ReasonReconcileFailed, err.Error())
		return ctrl.Result{}, err
	}
	start := time.Now()
	selector := ""
	if l := src.Spec.OCI.LayerSelector; l != nil {
		selector = l.MediaType
	}
	art, first, changed, err := r.Artifacts.Pull(ctx, key, selector, pull)
	if r.metrics != nil {
		r.metrics.fetch.WithLabelValues(resultLabel(err)).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		reason := ""
		switch {
		case errors.Is(err, chart.ErrScheme):
			reason = ReasonInvalidSpec
		case errors.Is(err, chart.ErrNotFound) || errors.Is(err, chart.ErrUnauthorized):
			reason = ReasonFetchFailed
		}
		return r.fetchFailed(src, err, reason, interval)
	}
	r.fetched(src, art, "pulled "+art.Revision, "artifact "+art.Revision)
	if r.OnNewRevision != nil && (first || changed) {
		r.OnNewRevision(key)
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}
