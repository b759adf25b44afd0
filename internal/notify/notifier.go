package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/refwatch"
)

// Secret keys a Notifier's credentials Secret may hold.
const (
	KeyAddress = "address"
	KeyToken   = "token"
	KeyHMAC    = "hmacKey"
)

// ResolveConfig reads the Notifier's Secret and returns its provider
// configuration. Errors name the Notifier, Secret and key; they never
// contain credential values. A missing Secret is a *ConfigError; other
// errors are failures to read it.
func ResolveConfig(ctx context.Context, c client.Reader, n *tendv1.Notifier) (Config, error) {
	cfg := Config{Type: n.Spec.Provider, Address: n.Spec.Address, Channel: n.Spec.Channel, Username: n.Spec.Username}
	if ref := n.Spec.SecretRef; ref != nil {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: n.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return cfg, &ConfigError{fmt.Sprintf("notifier %s/%s: Secret %q (spec.secretRef) not found; create it with the keys %q, %q or %q", n.Namespace, n.Name, ref.Name, KeyAddress, KeyToken, KeyHMAC)}
			}
			return cfg, fmt.Errorf("notifier %s/%s: reading Secret %q: %w", n.Namespace, n.Name, ref.Name, err)
		}
		if v := s.Data[KeyAddress]; len(v) > 0 {
			cfg.Address = string(v)
		}
		cfg.Token = string(s.Data[KeyToken])
		cfg.HMACKey = s.Data[KeyHMAC]
	}
	return cfg, nil
}

// ConfigError is a problem with a Notifier's spec or Secret that only a
// change of them fixes.
type ConfigError struct{ msg string }

func (e *ConfigError) Error() string { return e.msg }

func metav1LabelSelector(n *tendv1.Notifier) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(n.Spec.AppSelector)
}

func nowTime() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

func setReady(st *tendv1.NotifierStatus, gen int64, ok bool, reason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: tendv1.ConditionReady, Status: status, ObservedGeneration: gen, Reason: reason, Message: msg})
}

// updateStatus changes a Notifier's status on its freshest copy, retrying
// on conflicts. Deliveries write status with it: their change (a counter
// incremented) is made again on the copy that won. The reconciler writes
// with objstatus.Writer, which re-applies what it computed.
func updateStatus(ctx context.Context, c client.Client, key types.NamespacedName, retries int, change func(st *tendv1.NotifierStatus, gen int64)) error {
	var err error
	for i := 0; i < retries; i++ {
		var n tendv1.Notifier
		if err = c.Get(ctx, key, &n); err != nil {
			return client.IgnoreNotFound(err)
		}
		change(&n.Status, n.Generation)
		if err = c.Status().Update(ctx, &n); err == nil || !apierrors.IsConflict(err) {
			return err
		}
		// The cache may lag behind our own write: read it again.
		time.Sleep(time.Duration(50*(i+1)) * time.Millisecond)
	}
	return err
}

// Reconciler checks Notifiers' configuration and reports it in status.
// A Notifier that cannot send because of its spec or Secret (a missing
// Secret, a bad selector, a provider without its address) is Stalled, with
// one event, and checked again when it or its Secret changes; a Secret
// that cannot be read (the apiserver failed) is retried with backoff.
type Reconciler struct {
	Client client.Client
	// Refs, when set, watches each Notifier's Secret (that one object, not
	// every Secret) and serves reads of it; with RefChanged, which gets an
	// event for each Notifier whose Secret changed (the Watcher's OnChange
	// sends it for owners of kind RefOwnerKind), a created or fixed Secret
	// is checked at once. Nil reads Secrets with Client, and only a change
	// of the Notifier checks it again.
	Refs       *refwatch.Watcher
	RefChanged <-chan event.GenericEvent
	// Recorder records the event of a Notifier becoming Stalled (default:
	// the manager's).
	Recorder objstatus.EventRecorder
	Log      *slog.Logger
	// Namespaces, when set, are the only namespaces it acts in.
	Namespaces []string
}

// Reasons of the Notifier reconciler's conditions.
const (
	ReasonInvalidConfig   = "InvalidConfig"
	ReasonConfigured      = "Configured"
	ReasonSuspended       = "Suspended"
	ReasonReconcileFailed = "ReconcileFailed"
)

// SetupWithManager registers the reconciler. A Notifier's Secret is
// watched on its own (Refs), so a Notifier whose Secret was missing is
// checked again when it is created.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = objstatus.DistinctNotes(mgr.GetEventRecorder("tend"))
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("notifier").
		For(&tendv1.Notifier{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	if r.RefChanged != nil {
		b = b.WatchesRawSource(source.Channel(r.RefChanged, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

// Reconcile validates one Notifier.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if !r.manages(req.Namespace) {
		return reconcile.Result{}, nil
	}
	var n tendv1.Notifier
	if err := r.Client.Get(ctx, req.NamespacedName, &n); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := n.DeepCopy()
	problem, err := r.check(ctx, &n)
	st, gen := &n.Status, n.Generation
	st.ObservedGeneration = gen
	switch {
	case err != nil:
		meta.RemoveStatusCondition(&st.Conditions, tendv1.ConditionStalled)
		setReady(st, gen, false, ReasonReconcileFailed, err.Error())
	case problem != nil:
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: tendv1.ConditionStalled, Status: metav1.ConditionTrue, ObservedGeneration: gen, Reason: ReasonInvalidConfig, Message: problem.Error()})
		setReady(st, gen, false, ReasonInvalidConfig, problem.Error())
	case n.Spec.Suspend:
		meta.RemoveStatusCondition(&st.Conditions, tendv1.ConditionStalled)
		setReady(st, gen, false, ReasonSuspended, "sending is suspended (spec.suspend)")
	default:
		meta.RemoveStatusCondition(&st.Conditions, tendv1.ConditionStalled)
		// Deliveries set Ready from what they saw; only a state this
		// reconciler set is replaced.
		c := meta.FindStatusCondition(st.Conditions, tendv1.ConditionReady)
		if c == nil || c.Reason == ReasonInvalidConfig || c.Reason == ReasonSuspended || c.Reason == ReasonReconcileFailed {
			setReady(st, gen, true, ReasonConfigured, "ready to send; no message delivered yet")
		}
	}
	_, werr := objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Check"}.Write(ctx, &n, before)
	return reconcile.Result{}, errors.Join(err, werr)
}

// check returns the problem with the Notifier's configuration (a
// *ConfigError or another error only a change fixes), or err when its
// Secret could not be read.
func (r *Reconciler) check(ctx context.Context, n *tendv1.Notifier) (problem, err error) {
	defer keepSecretWatch(r.Refs, n)
	if n.Spec.AppSelector != nil {
		if _, err := metav1LabelSelector(n); err != nil {
			return fmt.Errorf("spec.appSelector: %w", err), nil
		}
	}
	if src := n.Spec.Sources; src != nil && src.Selector != nil {
		if _, err := metav1.LabelSelectorAsSelector(src.Selector); err != nil {
			return fmt.Errorf("spec.sources.selector: %w", err), nil
		}
	}
	for field, list := range map[string][]string{"spec.inclusionList": n.Spec.InclusionList, "spec.exclusionList": n.Spec.ExclusionList} {
		for i, x := range list {
			if _, err := compileRegexp(x); err != nil {
				return fmt.Errorf("%s[%d]: %w", field, i, err), nil
			}
		}
	}
	cfg, err := ResolveConfig(ctx, readerFor(r.Client, r.Refs, n), n)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return err, nil
		}
		return nil, err
	}
	if _, err := New(cfg); err != nil {
		return err, nil
	}
	return nil, nil
}

func (r *Reconciler) manages(ns string) bool {
	if len(r.Namespaces) == 0 {
		return true
	}
	for _, n := range r.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}
