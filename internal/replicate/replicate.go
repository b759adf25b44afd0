// Package replicate copies Secrets an App applied with the annotation
// tend.dev/replicate-to into the namespaces it selects, keeps the copies
// equal to their source and deletes them when they are no longer wanted.
// A controller scoped to some namespaces (--namespaces) acts only on the
// sources, and the copies of gone sources, of Apps in those namespaces.
package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/apply/secret"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// Reasons of replication events.
const (
	ReasonReplicated         = "Replicated"
	ReasonReplicationRefused = "ReplicationRefused"
	ReasonReplicationFailed  = "ReplicationFailed"
)

// FieldManagerReplicate is the field manager copies are written with.
const FieldManagerReplicate = "tend-replicate"

// indexReplicaOf indexes copies by their source, "namespace/name".
const indexReplicaOf = "tend.dev/replica-of"

// refusedRetry is how often a copy that would overwrite someone else's
// Secret is tried again (that Secret is not watched).
const refusedRetry = time.Minute

// Reconciler copies Secrets an App applied with the annotation
// tend.dev/replicate-to (a label selector) into every namespace it selects
// but their own, keeps the copies equal to the source (data, type,
// immutable, labels other than tend's), and deletes copies whose namespace
// no longer matches, whose source lost the annotation or is gone.
//
// It never caches every Secret of the cluster: its own cache holds only
// Secrets labelled tend.dev/replicate (the engine labels sources "source",
// copies carry "copy"), with values replaced by hashes, and the metadata of
// Namespaces. Sources are read from the API server when copied, so a
// generated value is copied as the live Secret holds it.
//
// A copy is created, never applied over an existing Secret: a Secret of the
// same name that is not a copy of this source is left alone, and events on
// the source Secret and its App say why.
type Reconciler struct {
	// Client reads sources from the API server and writes copies (the
	// manager's client, which does not cache Secrets).
	Client   client.Client
	Recorder objstatus.EventRecorder
	Log      *slog.Logger
	// Namespaces, when set, limits replication to sources applied by Apps
	// in these namespaces (copies may go anywhere): when a source is gone,
	// only its copies whose AnnotationReplicaOwner names an App in these
	// namespaces are deleted.
	Namespaces []string
	// WriterFor, when set, says who writes a source's copies: the
	// controller sets it to the ServiceAccount the source's App acts as,
	// and that App's Project, so that an App can copy a Secret only where
	// it could apply one. Nil, or a nil Writer, is tend itself.
	WriterFor func(ctx context.Context, src *corev1.Secret) (*Writer, error)

	cache cache.Cache
}

// Writer is who creates and updates one source's copies. Copies are
// deleted by tend itself: removing what replication made is not a write
// the App asked for.
type Writer struct {
	// Client writes as the App's ServiceAccount.
	Client client.Client
	// As is that account's user name, for messages.
	As string
	// Allowed, when set, says why a copy may not go into a namespace
	// (nil: it may): the App's Project.
	Allowed func(namespace string) error
}

// replicateCache runs the reconciler's cache with the manager's caches,
// before the controllers that read it.
type replicateCache struct{ cache.Cache }

func (c replicateCache) GetCache() cache.Cache { return c.Cache }

var namespaceMeta = &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}}

// SetupWithManager builds the reconciler's cache and registers it.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	marked, err := labels.NewRequirement(secret.LabelReplicate, selection.In, []string{secret.ReplicateSource, secret.ReplicateCopy})
	if err != nil {
		return err
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:     mgr.GetScheme(),
		Mapper:     mgr.GetRESTMapper(),
		HTTPClient: mgr.GetHTTPClient(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.NewSelector().Add(*marked), Transform: hashSecretData},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return fmt.Errorf("replication cache: %w", err)
	}
	if err := c.IndexField(ctx, &corev1.Secret{}, indexReplicaOf, func(o client.Object) []string {
		if o.GetLabels()[secret.LabelReplicate] != secret.ReplicateCopy {
			return nil
		}
		if src := o.GetAnnotations()[secret.AnnotationReplicaOf]; src != "" {
			return []string{src}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.Add(replicateCache{c}); err != nil {
		return err
	}
	r.cache = c
	return ctrl.NewControllerManagedBy(mgr).
		Named("replicate").
		WatchesRawSource(source.Kind(c, client.Object(&corev1.Secret{}), handler.EnqueueRequestsFromMapFunc(r.sourceOf))).
		WatchesRawSource(source.Kind(c, client.Object(namespaceMeta.DeepCopy()), handler.EnqueueRequestsFromMapFunc(r.sources), predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// hashSecretData keeps no Secret value in the cache: each is replaced by
// its keyed hash (livestate.HashSecretValue), enough to tell whether a copy
// equals its source.
func hashSecretData(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	s.ManagedFields = nil
	delete(s.Annotations, livestate.LastAppliedAnnotation)
	for k, v := range s.Data {
		if !livestate.IsSecretValueHash(string(v)) {
			s.Data[k] = []byte(livestate.HashSecretValue(v))
		}
	}
	s.StringData = nil
	return s, nil
}

// sourceOf maps a cached Secret to the source to reconcile: itself, or the
// source of a copy.
func (r *Reconciler) sourceOf(_ context.Context, o client.Object) []reconcile.Request {
	switch o.GetLabels()[secret.LabelReplicate] {
	case secret.ReplicateSource:
		if !r.managedSource(o) {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
	case secret.ReplicateCopy:
		// A copy made for an App another controller manages is none of
		// this one's business: reconciling its source would read it
		// from the API server for nothing.
		if !r.managedCopy(o) {
			return nil
		}
		if key, ok := replicaSourceKey(o.GetAnnotations()[secret.AnnotationReplicaOf]); ok {
			return []reconcile.Request{{NamespacedName: key}}
		}
	}
	return nil
}

// sources maps a Namespace to the sources this reconciler manages whose
// selector matches it. It is called with the old and the new Namespace of
// a change, so a namespace that stops matching is seen too.
func (r *Reconciler) sources(ctx context.Context, ns client.Object) []reconcile.Request {
	var list corev1.SecretList
	if err := r.cache.List(ctx, &list, client.MatchingLabels{secret.LabelReplicate: secret.ReplicateSource}); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		s := &list.Items[i]
		if s.Namespace == ns.GetName() || !r.managedSource(s) {
			continue
		}
		if sel, ok, err := secret.ReplicateSelector(s.Annotations); err == nil && ok && sel.Matches(labels.Set(ns.GetLabels())) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
		}
	}
	return out
}

// managedSource reports whether o was applied by an App this controller
// manages.
func (r *Reconciler) managedSource(o client.Object) bool {
	owner, ok := replicaOwner(o)
	return ok && replicaManages(r.Namespaces, owner.Namespace)
}

func replicaOwner(o client.Object) (apply.AppRef, bool) {
	ns, name, ok := strings.Cut(o.GetAnnotations()[apply.AnnotationOwner], "/")
	if !ok || ns == "" || name == "" {
		return apply.AppRef{}, false
	}
	return apply.AppRef{Namespace: ns, Name: name}, true
}

// managedCopy reports whether copy c was made for an App this controller
// manages. A scoped controller cannot tell for a copy that does not say
// (made before copies recorded their App): it is left alone.
func (r *Reconciler) managedCopy(c client.Object) bool {
	if len(r.Namespaces) == 0 {
		return true
	}
	ns, _, ok := strings.Cut(c.GetAnnotations()[secret.AnnotationReplicaOwner], "/")
	return ok && replicaManages(r.Namespaces, ns)
}

func replicaManages(managed []string, ns string) bool {
	return len(managed) == 0 || slices.Contains(managed, ns)
}

func replicaSourceKey(s string) (types.NamespacedName, bool) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}

func (r *Reconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Reconcile brings the copies of one source Secret in line with it.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.Namespace + "/" + req.Name
	var src corev1.Secret
	if err := r.Client.Get(ctx, req.NamespacedName, &src); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: its copies go too, those of Apps this controller
			// manages (the copies say whose they are).
			return ctrl.Result{}, r.removeCopies(ctx, key, nil, nil)
		}
		return ctrl.Result{}, err
	}
	if !r.managedSource(&src) {
		return ctrl.Result{}, nil
	}
	sel, ok, err := secret.ReplicateSelector(src.Annotations)
	if err != nil {
		// tend does not apply such an annotation; someone edited it.
		// Keep the copies until it is fixed.
		r.event(&src, corev1.EventTypeWarning, ReasonReplicationFailed, err.Error())
		return ctrl.Result{}, nil
	}
	if !ok || src.Labels[secret.LabelReplicate] != secret.ReplicateSource || !src.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.removeCopies(ctx, key, nil, &src)
	}

	var nsList metav1.PartialObjectMetadataList
	nsList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.cache.List(ctx, &nsList); err != nil {
		return ctrl.Result{}, err
	}
	targets := map[string]bool{}
	for _, ns := range nsList.Items {
		if ns.Name != src.Namespace && ns.DeletionTimestamp.IsZero() && sel.Matches(labels.Set(ns.Labels)) {
			targets[ns.Name] = true
		}
	}
	copies, err := r.copiesOf(ctx, key)
	if err != nil {
		return ctrl.Result{}, err
	}
	w := &Writer{Client: r.Client}
	if r.WriterFor != nil {
		got, err := r.WriterFor(ctx, &src)
		if err != nil {
			return ctrl.Result{}, err
		}
		if got != nil {
			w = got
		}
	}
	var (
		created, updated, refused []string
		refusals                  []string // why, one per refused namespace
		errs                      []error
		lagging                   bool
	)
	for _, ns := range secret.SortedKeys(targets) {
		action, err := r.ensureCopy(ctx, w, &src, ns, copies[ns])
		var forbidden *forbiddenCopy
		switch {
		case errors.As(err, &forbidden):
			refused = append(refused, ns)
			refusals = append(refusals, forbidden.why)
			r.log().Info("Copy refused: the App may not write it", "source", key, "namespace", ns)
		case errors.Is(err, errReplicaRefused):
			refused = append(refused, ns)
			refusals = append(refusals, fmt.Sprintf("Secret %s/%s exists and is not a copy tend made: not overwriting it (delete or rename it)", ns, src.Name))
			r.log().Info("Copy refused: a Secret of that name exists", "source", key, "namespace", ns)
		case errors.Is(err, errReplicaNotCached):
			lagging = true // just made; the watch brings it
		case err != nil:
			errs = append(errs, fmt.Errorf("copy %s into namespace %s: %w", key, ns, err))
		case action == "created":
			created = append(created, ns)
		case action == "updated":
			updated = append(updated, ns)
		}
	}
	if len(refusals) > 0 {
		// One event for all: events of one object and reason are merged
		// into a series that keeps the first note only.
		where := fmt.Sprintf("%d namespaces", len(refused))
		if len(refused) == 1 {
			where = "namespace " + refused[0]
		}
		r.event(&src, corev1.EventTypeWarning, ReasonReplicationRefused, fmt.Sprintf("not copying %s into %s: %s; change %s so that it does not select them, or remove the cause",
			key, where, strings.Join(refusals, "; "), secret.AnnotationReplicateTo))
	}
	if err := r.removeCopies(ctx, key, targets, &src); err != nil {
		errs = append(errs, err)
	}
	if len(created)+len(updated) > 0 {
		var parts []string
		if len(created) > 0 {
			parts = append(parts, "copied into "+strings.Join(created, ", "))
		}
		if len(updated) > 0 {
			parts = append(parts, "updated the copies in "+strings.Join(updated, ", "))
		}
		r.event(&src, corev1.EventTypeNormal, ReasonReplicated, strings.Join(parts, "; "))
		r.log().Info("Secret replicated", "source", key, "created", created, "updated", updated)
	}
	if err := errors.Join(errs...); err != nil {
		r.event(&src, corev1.EventTypeWarning, ReasonReplicationFailed, err.Error())
		return ctrl.Result{}, err
	}
	switch {
	case lagging:
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case len(refused) > 0:
		return ctrl.Result{RequeueAfter: refusedRetry}, nil
	}
	return ctrl.Result{}, nil
}

// copiesOf returns the cached copies of a source by namespace.
func (r *Reconciler) copiesOf(ctx context.Context, key string) (map[string]*corev1.Secret, error) {
	var list corev1.SecretList
	if err := r.cache.List(ctx, &list, client.MatchingFields{indexReplicaOf: key}); err != nil {
		return nil, err
	}
	out := map[string]*corev1.Secret{}
	for i := range list.Items {
		out[list.Items[i].Namespace] = &list.Items[i]
	}
	return out, nil
}

var (
	errReplicaRefused   = errors.New("a Secret of that name exists and is not this source's copy")
	errReplicaNotCached = errors.New("the copy exists but is not in the cache yet")
)

// desiredCopy is what the copy of src in ns should be.
func desiredCopy(src *corev1.Secret, ns string) *corev1.Secret {
	lbls := map[string]string{}
	for k, v := range src.Labels {
		if !strings.HasPrefix(k, "tend.dev/") {
			lbls[k] = v
		}
	}
	lbls[secret.LabelReplicate] = secret.ReplicateCopy
	annotations := map[string]string{secret.AnnotationReplicaOf: src.Namespace + "/" + src.Name}
	if owner, ok := replicaOwner(src); ok {
		annotations[secret.AnnotationReplicaOwner] = owner.Namespace + "/" + owner.Name
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: src.Name, Namespace: ns, Labels: lbls,
			Annotations: annotations,
		},
		Type:      src.Type,
		Data:      src.Data,
		Immutable: src.Immutable,
	}
}

// ensureCopy creates or updates the copy in ns. cached is the copy the
// cache holds (values hashed), nil if none. It returns "created",
// "updated" or "".
func (r *Reconciler) ensureCopy(ctx context.Context, w *Writer, src *corev1.Secret, ns string, cached *corev1.Secret) (string, error) {
	want := desiredCopy(src, ns)
	owner := client.FieldOwner(FieldManagerReplicate)
	if w.Allowed != nil {
		if err := w.Allowed(ns); err != nil {
			return "", &forbiddenCopy{why: fmt.Sprintf("namespace %s: %v", ns, err)}
		}
	}
	// forbidden turns the API server's refusal of the App's
	// ServiceAccount into a refusal naming it.
	forbidden := func(verb string, err error) error {
		if w.As != "" && apierrors.IsForbidden(err) {
			return &forbiddenCopy{why: fmt.Sprintf("%s may not %s Secrets in namespace %s", w.As, verb, ns)}
		}
		return errors.New(replicaAPIMessage(err))
	}
	if cached == nil {
		err := w.Client.Create(ctx, want, owner)
		if apierrors.IsAlreadyExists(err) {
			var existing corev1.Secret
			if gerr := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &existing); gerr != nil {
				return "", gerr
			}
			if !isCopyOf(&existing, src) {
				return "", errReplicaRefused
			}
			return "", errReplicaNotCached
		}
		if err != nil {
			return "", forbidden("create", err)
		}
		return "created", nil
	}
	if sameCopy(cached, want) {
		return "", nil
	}
	if cached.Type != want.Type || (cached.Immutable != nil && *cached.Immutable) {
		// Neither can change in place: replace the copy.
		uid := cached.UID
		err := w.Client.Delete(ctx, cached, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", forbidden("delete", err)
		}
		if err := w.Client.Create(ctx, want, owner); err != nil {
			return "", forbidden("create", err)
		}
		return "updated", nil
	}
	upd := cached.DeepCopy() // resourceVersion: update only what was checked
	upd.Labels = want.Labels
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	maps.Copy(upd.Annotations, want.Annotations)
	upd.Data = want.Data
	upd.Immutable = want.Immutable
	if err := w.Client.Update(ctx, upd, owner); err != nil {
		return "", forbidden("update", err)
	}
	return "updated", nil
}

// forbiddenCopy is a copy the source's App may not write: its
// ServiceAccount's RBAC or its Project refuses it.
type forbiddenCopy struct{ why string }

func (e *forbiddenCopy) Error() string { return "copy forbidden: " + e.why }

// isCopyOf reports whether s is a copy replication made of src.
func isCopyOf(s, src *corev1.Secret) bool {
	return s.Labels[secret.LabelReplicate] == secret.ReplicateCopy && s.Annotations[secret.AnnotationReplicaOf] == src.Namespace+"/"+src.Name
}

// sameCopy compares a cached copy (values hashed) with the desired one.
func sameCopy(cached, want *corev1.Secret) bool {
	if cached.Type != want.Type || !maps.Equal(cached.Labels, want.Labels) ||
		cached.Annotations[secret.AnnotationReplicaOf] != want.Annotations[secret.AnnotationReplicaOf] ||
		cached.Annotations[secret.AnnotationReplicaOwner] != want.Annotations[secret.AnnotationReplicaOwner] ||
		(cached.Immutable != nil && *cached.Immutable) != (want.Immutable != nil && *want.Immutable) ||
		len(cached.Data) != len(want.Data) {
		return false
	}
	for k, v := range want.Data {
		if !bytes.Equal(cached.Data[k], []byte(livestate.HashSecretValue(v))) {
			return false
		}
	}
	return true
}

// removeCopies deletes the cached copies of key outside keep, in the
// order of their namespaces. src, when set, is the source (which this
// controller manages) and is told about it; without it (the source is
// gone) a scoped controller deletes only the copies it can tell are of an
// App in its namespaces.
func (r *Reconciler) removeCopies(ctx context.Context, key string, keep map[string]bool, src *corev1.Secret) error {
	copies, err := r.copiesOf(ctx, key)
	if err != nil {
		return err
	}
	var removed, foreign []string
	var errs []error
	for _, ns := range slices.Sorted(maps.Keys(copies)) {
		c := copies[ns]
		if keep[ns] {
			continue
		}
		if src == nil && !r.managedCopy(c) {
			foreign = append(foreign, ns)
			continue
		}
		uid := c.UID
		if err := r.Client.Delete(ctx, c, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete the copy of %s in namespace %s: %s", key, ns, replicaAPIMessage(err)))
			continue
		}
		removed = append(removed, ns)
	}
	if len(foreign) > 0 {
		r.log().Info("Copies of a gone Secret left to the controller of their App's namespace", "source", key, "namespaces", foreign)
	}
	if len(removed) > 0 {
		r.log().Info("Secret copies removed", "source", key, "namespaces", removed)
		if src != nil {
			r.event(src, corev1.EventTypeNormal, ReasonReplicated, "removed the copies in "+strings.Join(removed, ", "))
		}
	}
	return errors.Join(errs...)
}

// event records an event on the source Secret and, for warnings, on the App
// that applied it.
func (r *Reconciler) event(src *corev1.Secret, typ, reason, note string) {
	if r.Recorder == nil {
		return
	}
	if len(note) > maxNote {
		// The API refuses longer notes, and the event with them.
		note = note[:maxNote-len("…")] + "…"
	}
	ref := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: src.Name, Namespace: src.Namespace, UID: src.UID}}
	r.Recorder.Eventf(ref, nil, typ, reason, "Replicate", "%s", note)
	if owner, ok := replicaOwner(src); ok && typ == corev1.EventTypeWarning {
		app := &tendv1.App{TypeMeta: metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "App"}, ObjectMeta: metav1.ObjectMeta{Name: owner.Name, Namespace: owner.Namespace}}
		r.Recorder.Eventf(app, ref, typ, reason, "Replicate", "%s", note)
	}
}

// maxNote is the longest note an Event may have (events.k8s.io/v1).
const maxNote = 1024

// replicaAPIMessage is the API server's message of err.
func replicaAPIMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}
