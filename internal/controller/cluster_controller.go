package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// Reasons of Cluster conditions and events (besides ReasonInvalidSpec,
// ReasonSecretInvalid and ReasonSuspended).
const (
	// ClusterReasonConnected: the API server answered.
	ClusterReasonConnected = "Connected"
	// ClusterReasonSecretNotFound: the kubeconfig Secret does not exist.
	ClusterReasonSecretNotFound = "SecretNotFound"
	// ClusterReasonUnreachable: no answer, or not one from an API server.
	ClusterReasonUnreachable = "Unreachable"
	// ClusterReasonUnauthorized: the API server rejected the credentials.
	ClusterReasonUnauthorized = "Unauthorized"
)

const (
	// clusterCheckInterval is how often a connected Cluster is checked.
	clusterCheckInterval = 5 * time.Minute
	// clusterCheckTimeout bounds one version request.
	clusterCheckTimeout = 10 * time.Second
)

// ClusterReconciler checks the connection to every Cluster: it builds
// (through Clusters, so Apps share it) the connection its kubeconfig Secret
// describes, asks the API server for its version, and reports the result
// in status.kubeVersion and the Ready condition. The kubeconfig Secret is
// read from its own watch (refs.go; never a watch of every Secret), so a
// fixed Secret is picked up at once.
//
// Nothing from a kubeconfig but the server's URL ever reaches status,
// events or logs.
type ClusterReconciler struct {
	Client   client.Client
	Clusters *cluster.Clusters
	Recorder EventRecorder
	Log      *slog.Logger
	// Apps, when set, reconciles the Apps deploying to a Cluster as soon as
	// it is connected, and when it is deleted: an App created before its
	// Cluster need not wait for its interval.
	Apps *AppReconciler

	// refs reconciles a Cluster whose kubeconfig Secret changed (New sets
	// it; refOwners sends on it).
	refs trigger
}

// SetupWithManager registers the reconciler.
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("cluster").
		For(&tendv1.Cluster{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	if r.refs != nil {
		// The kubeconfig Secret's own watch (refs.go) reports its changes.
		b = b.WatchesRawSource(r.refs.source())
	}
	return b.
		// An unreachable cluster holds a worker for up to clusterCheckTimeout.
		// Unreachable clusters are retried from 1 s, doubling.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, RateLimiter: remoteRetryLimiter()}).
		Complete(r)
}

// Reconcile checks one Cluster's connection.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cl tendv1.Cluster
	if err := r.Client.Get(ctx, req.NamespacedName, &cl); err != nil {
		if apierrors.IsNotFound(err) {
			r.Clusters.Drop(req.NamespacedName)
			r.enqueueApps(ctx, req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	before := cl.DeepCopy()
	res, err := r.reconcile(ctx, &cl)
	wrote, werr := objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Check"}.Write(ctx, &cl, before)
	if werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	if wrote {
		r.announce(ctx, before, &cl)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return res, nil
}

// reconcile checks cl's connection and sets its status. Errors are
// transient (see status.go): the Cluster is checked again with backoff.
func (r *ClusterReconciler) reconcile(ctx context.Context, cl *tendv1.Cluster) (ctrl.Result, error) {
	version, err := r.check(ctx, cl)
	st := &cl.Status
	st.ObservedGeneration = cl.Generation
	var nr *notReady
	switch {
	case err == nil:
		st.KubeVersion = version
		meta.RemoveStatusCondition(&st.Conditions, tendv1.ConditionStalled)
		setCondition(&st.Conditions, cl.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ClusterReasonConnected, "connected, Kubernetes "+version)
		return ctrl.Result{RequeueAfter: clusterCheckInterval}, nil
	case !errors.As(err, &nr):
		// Reading the Cluster's Secret failed.
		setNotReady(&st.Conditions, cl.Generation, ReasonReconcileFailed, err.Error())
		return ctrl.Result{}, err
	case nr.reason == ReasonSuspended:
		setNotReady(&st.Conditions, cl.Generation, nr.reason, nr.msg)
		return ctrl.Result{}, nil
	case nr.stalled:
		// A change of the Cluster or its Secret (both watched) is what
		// helps; the interval's check catches a fix elsewhere (RBAC, the
		// server's certificate).
		st.KubeVersion = ""
		stall(&st.Conditions, cl.Generation, nr.reason, nr.msg)
		return ctrl.Result{RequeueAfter: clusterCheckInterval}, nil
	default:
		// Unreachable: retried with backoff. It keeps the version it
		// last answered with.
		setNotReady(&st.Conditions, cl.Generation, nr.reason, nr.msg)
		return ctrl.Result{}, err
	}
}

// announce records an event and a log line when the connection's state
// changed, and has the Cluster's Apps reconciled when it got connected.
func (r *ClusterReconciler) announce(ctx context.Context, old, cl *tendv1.Cluster) {
	was := meta.FindStatusCondition(old.Status.Conditions, tendv1.ConditionReady)
	now := meta.FindStatusCondition(cl.Status.Conditions, tendv1.ConditionReady)
	if now == nil {
		return
	}
	changed := was == nil || was.Status != now.Status || was.Reason != now.Reason
	if !changed && old.Status.KubeVersion == cl.Status.KubeVersion {
		return
	}
	key := types.NamespacedName{Namespace: cl.Namespace, Name: cl.Name}
	typ := corev1.EventTypeWarning
	if now.Status == metav1.ConditionTrue {
		typ = corev1.EventTypeNormal
	}
	// A Stalled Cluster's event was recorded with its status (one per
	// problem, objstatus.Writer).
	if r.Recorder != nil && !meta.IsStatusConditionTrue(cl.Status.Conditions, tendv1.ConditionStalled) {
		r.Recorder.Eventf(cl, nil, typ, now.Reason, "Check", "%s", now.Message)
	}
	r.log().Info("cluster connection changed", "cluster", key, "ready", now.Status, "reason", now.Reason, "kubeVersion", cl.Status.KubeVersion)
	if now.Status == metav1.ConditionTrue && (was == nil || was.Status != metav1.ConditionTrue) {
		r.enqueueApps(ctx, key)
	}
}

// enqueueApps reconciles the Apps deploying to a Cluster.
func (r *ClusterReconciler) enqueueApps(ctx context.Context, cluster types.NamespacedName) {
	if r.Apps == nil {
		return
	}
	var apps tendv1.AppList
	if err := r.Client.List(ctx, &apps, client.InNamespace(cluster.Namespace)); err != nil {
		return // the Apps' own interval still applies
	}
	for _, a := range apps.Items {
		if ref := a.Spec.Destination.ClusterRef; ref != nil && ref.Name == cluster.Name {
			r.Apps.enqueue(types.NamespacedName{Namespace: a.Namespace, Name: a.Name})
		}
	}
}

// notReady is a check result saying why the Cluster is not Ready: a
// permanent problem the user has to act on (stalled), or a transient one
// retried with backoff (the server did not answer).
type notReady struct {
	reason  string
	msg     string
	stalled bool // only a change of the Cluster or its Secret helps
}

func (e *notReady) Error() string { return e.msg }

// check connects to the Cluster and returns its Kubernetes version. Errors
// are *notReady, except failures to read the Secret (transient).
func (r *ClusterReconciler) check(ctx context.Context, cl *tendv1.Cluster) (string, error) {
	rd := readerFor(r.Client, clusterOwner(cl))
	defer rd.done() // a suspended or invalid Cluster lets its Secret's watch go
	if cl.Spec.Suspend {
		return "", &notReady{reason: ReasonSuspended, msg: "suspended (spec.suspend): Apps deploying to this cluster are not synced and the connection is not checked"}
	}
	ref := cl.Spec.KubeconfigSecretRef
	if ref.Name == "" {
		return "", &notReady{reason: ReasonInvalidSpec, stalled: true, msg: "spec.kubeconfigSecretRef.name is empty; name the Secret holding the cluster's kubeconfig"}
	}
	if errs := validation.IsDNS1123Subdomain(ref.Name); len(errs) > 0 {
		return "", &notReady{reason: ReasonInvalidSpec, stalled: true, msg: fmt.Sprintf("spec.kubeconfigSecretRef.name %q is not a valid Secret name: %s", ref.Name, strings.Join(errs, "; "))}
	}
	dataKey := ref.Key
	if dataKey == "" {
		dataKey = cluster.DefaultKubeconfigKey
	} else if errs := validation.IsConfigMapKey(dataKey); len(errs) > 0 {
		return "", &notReady{reason: ReasonInvalidSpec, stalled: true, msg: fmt.Sprintf("spec.kubeconfigSecretRef.key %q is not a valid Secret key: %s", dataKey, strings.Join(errs, "; "))}
	}
	secName := cl.Namespace + "/" + ref.Name
	var sec corev1.Secret
	if err := rd.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: ref.Name}, &sec); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return "", &notReady{reason: ClusterReasonSecretNotFound, stalled: true, msg: fmt.Sprintf("Secret %s (spec.kubeconfigSecretRef.name) not found; create it with the cluster's kubeconfig, flattened, under the key %q", secName, dataKey)}
		case apierrors.IsForbidden(err):
			return "", &notReady{reason: ReasonSecretInvalid, stalled: true, msg: fmt.Sprintf("tend may not read Secret %s; allow its ServiceAccount to get Secrets in namespace %s", secName, cl.Namespace)}
		}
		return "", fmt.Errorf("read kubeconfig Secret %s: %w", secName, err)
	}
	_, from, err := cluster.ConfigFromSecret(&sec, ref)
	if err != nil {
		return "", &notReady{reason: ReasonSecretInvalid, stalled: true, msg: err.Error()}
	}
	conn, err := r.Clusters.Get(ctx, cl.Namespace, &tendv1.LocalObjectReference{Name: cl.Name})
	if err != nil {
		if objstatus.IsPermanent(err) {
			return "", &notReady{reason: ReasonSecretInvalid, stalled: true, msg: err.Error()}
		}
		return "", err // reading the Cluster or its Secret failed
	}
	return probeVersion(conn.Config, secName, from)
}

func (r *ClusterReconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}
