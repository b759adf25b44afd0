package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	notifyv1 "github.com/fluxcd/notification-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/tend-gitops/tend/internal/objstatus"
)

// Reasons of a Receiver's Ready condition, as notification-controller
// gives them, and tend's Unsupported.
const (
	ReasonSucceeded        = "Succeeded"
	ReasonTokenNotFound    = notifyv1.TokenNotFoundReason
	ReasonValidationFailed = notifyv1.ValidationFailedReason
	ReasonUnsupported      = "Unsupported"
)

// FluxReceiverStatus writes Flux's Receivers' status as
// notification-controller did, so that `flux get receivers` and what
// reads status.webhookPath keep working: Ready (True, "Receiver
// initialized for path: /hook/..."; False with TokenNotFound, or
// ValidationFailed or Unsupported and Stalled, naming every field tend
// cannot serve), status.webhookPath, observedGeneration and
// lastHandledReconcileAt. A Receiver is checked again after its
// spec.interval (a rotated token changes its path), or when it changes.
type FluxReceiverStatus struct {
	Client client.Client
	// SecretReader reads the token Secrets (the API reader: Secrets are
	// not cached).
	SecretReader client.Reader
	// Recorder records one Warning event when what stops a Receiver
	// changes.
	Recorder objstatus.EventRecorder
	// Namespaces limits the Receivers served, as FluxReceivers'.
	Namespaces []string
	Log        *slog.Logger
}

// SetupWithManager registers the reconciler.
func (r *FluxReceiverStatus) SetupWithManager(mgr ctrl.Manager) error {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(receiverGVK)
	return ctrl.NewControllerManagedBy(mgr).
		Named("flux-receiver").
		For(obj, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(r)
}

// Reconcile writes one Receiver's status.
func (r *FluxReceiverStatus) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, req.Namespace) {
		return ctrl.Result{}, nil
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(receiverGVK)
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var rcv notifyv1.Receiver
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &rcv); err != nil {
		return ctrl.Result{}, fmt.Errorf("read Receiver %s: %w", req.NamespacedName, err)
	}
	interval := 10 * time.Minute
	if rcv.Spec.Interval != nil && rcv.Spec.Interval.Duration > 0 {
		interval = rcv.Spec.Interval.Duration
	}
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: ReasonSucceeded}
	stalled := false
	path := ""
	if problems := r.unsupported(&rcv); len(problems) > 0 {
		ready.Status, ready.Reason, stalled = metav1.ConditionFalse, ReasonUnsupported, true
		ready.Message = strings.Join(problems, "; ") + " (see docs/adopt.md)"
	} else if err := receiverFilters(&rcv); err != nil {
		ready.Status, ready.Reason, stalled = metav1.ConditionFalse, ReasonValidationFailed, true
		ready.Message = err.Error()
	} else {
		token, err := r.token(ctx, &rcv)
		switch {
		case err != nil && !errors.Is(err, errNoToken):
			return ctrl.Result{}, err
		case err != nil:
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonTokenNotFound, strings.TrimPrefix(err.Error(), errNoToken.Error()+": ")
		default:
			path = "/hook/" + receiverDigest(token, rcv.Name, rcv.Namespace)
			ready.Message = "Receiver initialized for path: " + path
		}
	}
	return ctrl.Result{RequeueAfter: interval}, r.write(ctx, obj, ready, stalled, path)
}

var errNoToken = errors.New("no token")

// token reads the Receiver's token; errNoToken says why there is none.
func (r *FluxReceiverStatus) token(ctx context.Context, rcv *notifyv1.Receiver) ([]byte, error) {
	if rcv.Spec.SecretRef == nil {
		return nil, fmt.Errorf("%w: spec.secretRef is not set: name a Secret with the key \"token\"", errNoToken)
	}
	var sec corev1.Secret
	name := rcv.Spec.SecretRef.Name
	if err := r.SecretReader.Get(ctx, types.NamespacedName{Namespace: rcv.Namespace, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %s/%s (spec.secretRef) not found: create it with the key \"token\"", errNoToken, rcv.Namespace, name)
		}
		return nil, fmt.Errorf("read Secret %s/%s of Receiver %s: %w", rcv.Namespace, name, rcv.Name, err)
	}
	token := sec.Data["token"]
	if len(token) == 0 {
		return nil, fmt.Errorf("%w: Secret %s/%s has no key \"token\"", errNoToken, rcv.Namespace, name)
	}
	return token, nil
}

// unsupported names each field of rcv tend does not serve.
func (r *FluxReceiverStatus) unsupported(rcv *notifyv1.Receiver) []string {
	var out []string
	switch rcv.Spec.Type {
	case notifyv1.GenericReceiver, notifyv1.GenericHMACReceiver, notifyv1.GitHubReceiver, notifyv1.GitLabReceiver, notifyv1.BitbucketReceiver:
	default:
		out = append(out, fmt.Sprintf("spec.type %s is not supported: tend serves github, gitlab, bitbucket, generic and generic-hmac", rcv.Spec.Type))
	}
	if len(rcv.Spec.OIDCProviders) > 0 {
		out = append(out, "spec.oidcProviders is not supported")
	}
	for i, res := range rcv.Spec.Resources {
		field := fmt.Sprintf("spec.resources[%d]", i)
		if _, ok := fluxKindVersions[res.Kind]; !ok {
			out = append(out, fmt.Sprintf("%s.kind %s is not supported: tend acts on GitRepository, OCIRepository, HelmRepository, Kustomization and HelmRelease", field, res.Kind))
		}
		if ns := res.Namespace; ns != "" && len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, ns) {
			out = append(out, fmt.Sprintf("%s.namespace %s is not one this controller watches", field, ns))
		}
		if res.Name == "*" && len(res.MatchLabels) == 0 {
			out = append(out, fmt.Sprintf("%s: name \"*\" needs matchLabels", field))
		}
	}
	return out
}

// write patches obj's status when it changed, keeping each condition's
// transition time while its status stays, with one event when the
// problem is new.
func (r *FluxReceiverStatus) write(ctx context.Context, obj *unstructured.Unstructured, ready metav1.Condition, stalled bool, path string) error {
	old, _, _ := unstructured.NestedMap(obj.Object, "status")
	gen := obj.GetGeneration()
	now := metav1.Now().UTC().Format(time.RFC3339)
	cond := func(c metav1.Condition) map[string]any {
		t := now
		conds, _, _ := unstructured.NestedSlice(old, "conditions")
		for _, x := range conds {
			if m, _ := x.(map[string]any); m["type"] == c.Type && m["status"] == string(c.Status) {
				if v, ok := m["lastTransitionTime"].(string); ok {
					t = v
				}
			}
		}
		return map[string]any{"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": c.Message,
			"observedGeneration": gen, "lastTransitionTime": t}
	}
	conds := []any{cond(ready)}
	if stalled {
		conds = append(conds, cond(metav1.Condition{Type: "Stalled", Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message}))
	}
	st := map[string]any{"observedGeneration": gen, "conditions": conds}
	if path != "" {
		st["webhookPath"] = path
	}
	if req := obj.GetAnnotations()[FluxRequestedAt]; req != "" {
		st["lastHandledReconcileAt"] = req
	}
	a, _ := json.Marshal(old)
	b, _ := json.Marshal(st)
	if string(a) == string(b) {
		return nil
	}
	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": st}})
	if err != nil {
		return err
	}
	if err := r.Client.Status().Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return client.IgnoreNotFound(err)
	}
	oldMsg := ""
	if conds, _, _ := unstructured.NestedSlice(old, "conditions"); len(conds) > 0 {
		if m, _ := conds[0].(map[string]any); m["status"] == "False" {
			oldMsg, _ = m["message"].(string)
		}
	}
	if ready.Status == metav1.ConditionFalse && ready.Message != oldMsg && r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, ready.Reason, "Reconcile", "%s", ready.Message)
	}
	return nil
}

// receiverDigest is the hex sha256 of the token, the Receiver's name and
// namespace: the last part of its path, as Flux computes it.
func receiverDigest(token []byte, name, namespace string) string {
	sum := sha256.Sum256([]byte(string(token) + name + namespace))
	return hex.EncodeToString(sum[:])
}
