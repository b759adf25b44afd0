package notify

import (
	"context"
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
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Secret keys a Notifier's credentials Secret may hold.
const (
	KeyAddress = "address"
	KeyToken   = "token"
	KeyHMAC    = "hmacKey"
)

// ResolveConfig reads the Notifier's Secret and returns its provider
// configuration. Errors name the Notifier, Secret and key; they never
// contain credential values.
func ResolveConfig(ctx context.Context, c client.Reader, n *tendv1.Notifier) (Config, error) {
	cfg := Config{Type: n.Spec.Provider, Address: n.Spec.Address, Channel: n.Spec.Channel, Username: n.Spec.Username}
	if ref := n.Spec.SecretRef; ref != nil {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: n.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return cfg, fmt.Errorf("notifier %s/%s: Secret %q (spec.secretRef) not found; create it with the keys %q, %q or %q", n.Namespace, n.Name, ref.Name, KeyAddress, KeyToken, KeyHMAC)
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
// on conflicts (deliveries and the reconciler both write it).
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

// Reconciler checks Notifiers' configuration and reports it in status
// (Ready False with the reason when a Notifier cannot send).
type Reconciler struct {
	Client client.Client
	Log    *slog.Logger
	// Namespaces, when set, are the only namespaces it acts in.
	Namespaces []string
}

// SetupWithManager registers the reconciler. A Notifier whose Secret is
// missing is checked again every minute.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("notifier").
		For(&tendv1.Notifier{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
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
	problem := r.check(ctx, &n)
	err := updateStatus(ctx, r.Client, req.NamespacedName, 5, func(st *tendv1.NotifierStatus, gen int64) {
		st.ObservedGeneration = gen
		switch {
		case problem != nil:
			setReady(st, gen, false, "InvalidConfig", problem.Error())
		case n.Spec.Suspend:
			setReady(st, gen, false, "Suspended", "sending is suspended (spec.suspend)")
		default:
			c := meta.FindStatusCondition(st.Conditions, tendv1.ConditionReady)
			if c == nil || c.Reason == "InvalidConfig" || c.Reason == "Suspended" {
				setReady(st, gen, true, "Configured", "ready to send; no message delivered yet")
			}
		}
	})
	if problem != nil {
		// A missing Secret may appear: look again later.
		return reconcile.Result{RequeueAfter: time.Minute}, err
	}
	return reconcile.Result{}, err
}

func (r *Reconciler) check(ctx context.Context, n *tendv1.Notifier) error {
	if n.Spec.AppSelector != nil {
		if _, err := metav1LabelSelector(n); err != nil {
			return fmt.Errorf("spec.appSelector: %w", err)
		}
	}
	cfg, err := ResolveConfig(ctx, r.Client, n)
	if err != nil {
		return err
	}
	if _, err := New(cfg); err != nil {
		return err
	}
	return nil
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
