// Package compat reconciles Argo CD and Flux objects found in the cluster,
// as they are: each Application, ApplicationSet, GitRepository,
// HelmRepository, Kustomization and HelmRelease is mapped (by internal/argocd and
// internal/flux, the mapping `tend migrate` prints) to the tend Sources,
// Apps, AppSets and Clusters of the same meaning. tend creates those, owned by the
// object they come from, syncs them as its own, and writes the object's
// status back in its own shape (Argo CD: status.sync, status.health,
// status.operationState; Flux: Ready, Reconciling and Stalled conditions,
// lastAppliedRevision), so that kubectl get applications, flux get and the
// alerts built on them keep working.
//
// A field tend cannot honour stops the object: its status and one event
// name every such field, and nothing of it is applied or changed (what an
// earlier spec applied stays). Deleting the object deletes what it maps
// to; whether that deletes the objects in the cluster follows the old
// tool's rule (Argo CD's resources finalizer, Flux's deletionPolicy), and
// tend removes the finalizers the old tool would have.
package compat

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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// Families tend can reconcile, as --compat names them.
const (
	Argo = "argo"
	Flux = "flux"
)

// HashAnnotation on a generated object is a hash of what was applied, so
// that an unchanged object is not applied again.
const HashAnnotation = "tend.dev/compat-hash"

// Event reasons.
const (
	// ReasonUnsupported: the object has fields tend cannot honour.
	ReasonUnsupported = "Unsupported"
	// ReasonConflict: a tend object of the name it maps to exists and was
	// not made from it.
	ReasonConflict = "NameConflict"
)

// kind is one foreign kind tend reconciles.
type kind struct {
	family string
	gvk    schema.GroupVersionKind
	// convert maps obj to tend objects. A returned error is transient
	// (reading Secrets failed); what cannot be mapped is conversion.err.
	convert func(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, opts Options) (*conversion, error)
	// status is obj's status in its own shape, from what it maps to; nil
	// for kinds without a status (Flux's Alerts), whose problems and
	// warnings are events, recorded in ProblemAnnotation.
	status func(obj *unstructured.Unstructured, o *observed) map[string]any
	// optional kinds are skipped, with a log line, when the cluster lacks
	// their CRD (Flux installed without its notification-controller).
	optional bool
	// watch, when set, adds watches that enqueue obj for changes of the
	// objects it reads (an Alert's Provider).
	watch func(b *builder.Builder, c client.Client) *builder.Builder
	// failClosed: when the object cannot be mapped, what an earlier spec
	// made is deleted rather than kept (an AppProject's Project: older
	// rules may allow what the new ones refuse).
	failClosed bool
	// statusSubresource: the CRD has one (Flux's); Argo CD's does not,
	// and its status is written with the object.
	statusSubresource bool
	// cascading are the finalizers under which the old tool deleted the
	// objects with the object; tend removes them once it has deleted
	// what the object maps to.
	cascading func(finalizers []string) []string
	// request is the old tool's "reconcile now" request on obj (Argo CD's
	// refresh annotation, Flux's requestedAt), "" for none; tend passes
	// it on to what obj maps to as tend.dev/requested-at.
	request func(obj *unstructured.Unstructured) string
	// handled, when set, acknowledges the request on obj after it was
	// passed on (Argo CD removes its refresh annotation).
	handled func(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error
	// adopted, when set, lists what the old tool recorded as applied by
	// obj (Argo CD's status.resources, Flux's status.inventory): the
	// first inventory of the App obj maps to.
	adopted func(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, app *tendv1.App) (map[apply.ObjectRef]string, error)
	// readStatus, when set, writes the status of the objects obj reads
	// and tend does not reconcile alone (a HelmRelease's HelmChart).
	readStatus func(ctx context.Context, c client.Client, obj *unstructured.Unstructured, o *observed) error
}

// conversion is what one object maps to.
type conversion struct {
	// objects to apply: the App (named as the object) first, then its
	// Source and Clusters.
	objects []client.Object
	// app names the App the object maps to ("" for a Source kind).
	app string
	// source names the Source the object maps to or its App reads.
	source string
	// appSet names the AppSet the object maps to ("" for other kinds).
	appSet string
	// sourceNames are a multi-source Application's Sources, one per
	// spec.sources entry ("" for the one the App renders).
	sourceNames []string
	// warnings say where tend behaves differently, without changing what
	// is applied.
	warnings []string
	// err lists every field tend cannot honour; nothing is applied.
	err error
}

// observed is what the status is made from.
type observed struct {
	conv *conversion
	// applyErr is why the objects could not be applied (a name conflict,
	// or a rejected write).
	applyErr error
	app      *tendv1.App
	src      *tendv1.Source
	// sources are conversion.sourceNames' Sources, by name.
	sources map[string]*tendv1.Source
	appSet  *tendv1.AppSet
	// generated are the Apps appSet generated.
	generated []tendv1.App
	now       metav1.Time
}

// problem is the message of what stops the object, "" when nothing does.
func (o *observed) problem() string {
	switch {
	case o.conv.err != nil:
		return o.conv.err.Error() + " (see docs/adopt.md)"
	case o.applyErr != nil:
		return o.applyErr.Error()
	}
	return ""
}

// Reconciler reconciles one foreign kind.
type Reconciler struct {
	Client   client.Client
	Recorder objstatus.EventRecorder
	Log      *slog.Logger
	// Inventory stores App inventories (the controller's store): an App
	// created for an object the old tool applied starts with what that
	// tool recorded, so that tend prunes what left git since, and only
	// that.
	Inventory apply.InventoryStore
	Options   Options
	kind      *kind
}

// Kinds lists the kinds of the families named (argo, flux), for Setup and
// for `tend install --compat`.
func Kinds(families []string) ([]schema.GroupVersionKind, error) {
	ks, err := kindsOf(families)
	if err != nil {
		return nil, err
	}
	out := make([]schema.GroupVersionKind, len(ks))
	for i, k := range ks {
		out[i] = k.gvk
	}
	return out, nil
}

func kindsOf(families []string) ([]*kind, error) {
	var out []*kind
	for _, f := range families {
		switch strings.TrimSpace(f) {
		case Argo:
			out = append(out, argoKinds...)
		case Flux:
			out = append(out, fluxKinds...)
		case "":
		default:
			return nil, fmt.Errorf("compat %q: tend reads argo (Argo CD) and flux (Flux)", f)
		}
	}
	return out, nil
}

// Options adjust how foreign objects map to tend's.
type Options struct {
	// ArgoDecryptionSecret names the Secret, in each Argo CD
	// Application's namespace, with the SOPS keys its App decrypts KSOPS
	// generators and SOPS files with (Argo CD gives them to its
	// repo-server); "" for none.
	ArgoDecryptionSecret string
}

// Setup adds a reconciler for every kind of families to mgr. Their CRDs
// must be installed (tend install --compat).
func Setup(mgr manager.Manager, families []string, inventory apply.InventoryStore, opts Options, log *slog.Logger) error {
	ks, err := kindsOf(families)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if _, err := mgr.GetRESTMapper().RESTMapping(k.gvk.GroupKind(), k.gvk.Version); err != nil {
			if meta.IsNoMatchError(err) && k.optional {
				log.Info("compat: the cluster has no CRD for this kind; its objects are not reconciled (tend install --compat installs it)", "kind", k.gvk.String())
				continue
			}
			if meta.IsNoMatchError(err) {
				return fmt.Errorf("--compat %s: the cluster has no %s %s CRD: install it with tend install --compat %s", k.family, k.gvk.Kind, k.gvk.GroupVersion(), k.family)
			}
			return err
		}
		r := &Reconciler{Client: mgr.GetClient(), Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: log.With("controller", "compat", "kind", k.gvk.Kind), Inventory: inventory, Options: opts, kind: k}
		if err := r.setup(mgr); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) setup(mgr manager.Manager) error {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(r.kind.gvk)
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), obj)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("compat-"+strings.ToLower(r.kind.gvk.Kind)+"-"+r.kind.gvk.Group).
		For(obj).
		Watches(&tendv1.App{}, owner).
		Watches(&tendv1.Source{}, owner).
		Watches(&tendv1.AppSet{}, owner).
		Watches(&tendv1.Notifier{}, owner).
		Watches(&tendv1.Project{}, owner)
	if r.kind.watch != nil {
		b = r.kind.watch(b, mgr.GetClient())
	}
	if r.kind.gvk.Kind == "ApplicationSet" {
		// Its status lists the generated Apps, which the AppSet owns, not
		// the ApplicationSet: an App's change reaches it through the
		// AppSet's name, which is the ApplicationSet's.
		b = b.Watches(&tendv1.App{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			set := o.GetLabels()[tendv1.LabelAppSet]
			if set == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: set}}}
		}))
	}
	return b.Complete(r)
}

// Reconcile maps one object and writes its status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(r.kind.gvk)
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if obj.GetDeletionTimestamp() != nil {
		return r.finalize(ctx, obj)
	}
	conv, err := r.kind.convert(ctx, r.Client, obj, r.Options)
	if err != nil {
		return ctrl.Result{}, err
	}
	o := &observed{conv: conv, now: metav1.Now()}
	if conv.err == nil {
		req := r.kind.request(obj)
		if req != "" {
			for _, obj := range conv.objects {
				ann := obj.GetAnnotations()
				if ann == nil {
					ann = map[string]string{}
				}
				ann[tendv1.AnnotationRequestedAt] = req
				obj.SetAnnotations(ann)
			}
		}
		o.applyErr = r.apply(ctx, obj, conv.objects)
		var transient *transientError
		if errors.As(o.applyErr, &transient) {
			return ctrl.Result{}, transient.err
		}
		if req != "" && o.applyErr == nil && r.kind.handled != nil {
			if err := r.kind.handled(ctx, r.Client, obj); err != nil {
				return ctrl.Result{}, client.IgnoreNotFound(err)
			}
		}
	} else if r.kind.failClosed {
		// What an earlier spec made would allow more than this one
		// means: it goes.
		if err := r.release(ctx, obj, map[string]bool{}); err != nil {
			var transient *transientError
			if errors.As(err, &transient) {
				return ctrl.Result{}, transient.err
			}
			return ctrl.Result{}, err
		}
	}
	if conv.app != "" {
		var app tendv1.App
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: conv.app}, &app); err == nil && ownedBy(&app, obj.GetUID()) {
			o.app = &app
		}
	}
	if conv.appSet != "" {
		var set tendv1.AppSet
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: conv.appSet}, &set); err == nil && ownedBy(&set, obj.GetUID()) {
			o.appSet = &set
			var apps tendv1.AppList
			if err := r.Client.List(ctx, &apps, client.InNamespace(obj.GetNamespace()), client.MatchingLabels{tendv1.LabelAppSet: set.Name}); err == nil {
				o.generated = apps.Items
			}
		}
	}
	for _, name := range conv.sourceNames {
		var src tendv1.Source
		if name == "" || o.sources[name] != nil {
			continue
		}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}, &src); err == nil {
			if o.sources == nil {
				o.sources = map[string]*tendv1.Source{}
			}
			o.sources[name] = &src
		}
	}
	if conv.source != "" {
		var src tendv1.Source
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: conv.source}, &src); err == nil {
			o.src = &src
		}
	}
	if err := r.writeStatus(ctx, obj, o); err != nil {
		return ctrl.Result{}, err
	}
	if r.kind.readStatus != nil {
		return ctrl.Result{}, r.kind.readStatus(ctx, r.Client, obj, o)
	}
	return ctrl.Result{}, nil
}

// Mapped is what one Argo CD or Flux object maps to.
type Mapped struct {
	// App is the App it maps to, nil for a source kind.
	App *tendv1.App
	// Objects are the other tend objects: Sources and Clusters.
	Objects []client.Object
	// Adopted is what the old tool recorded as applied, by API version:
	// the App's first inventory.
	Adopted map[apply.ObjectRef]string
	// Warnings say where tend behaves differently.
	Warnings []string
	// Err names every field tend cannot honour.
	Err error
}

// Map maps obj as the reconciler does, without writing anything (tend
// adopt --dry-run); c reads Argo CD's repository and cluster Secrets. It
// returns nil for kinds tend does not reconcile.
func Map(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, opts Options) (*Mapped, error) {
	ks, _ := kindsOf([]string{Argo, Flux})
	for _, k := range ks {
		if k.gvk != obj.GroupVersionKind() {
			continue
		}
		conv, err := k.convert(ctx, c, obj, opts)
		if err != nil {
			return nil, err
		}
		m := &Mapped{Warnings: conv.warnings, Err: conv.err}
		for _, o := range conv.objects {
			if app, ok := o.(*tendv1.App); ok {
				m.App = app
				continue
			}
			m.Objects = append(m.Objects, o)
		}
		if k.adopted != nil && m.App != nil {
			if m.Adopted, err = k.adopted(ctx, c, obj, m.App); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	return nil, nil
}

// transientError is an apply error worth retrying with backoff.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }

// manager is the field manager of obj's writes to what it maps to: one per
// object, so that objects sharing a Source each own their reference to it.
func fieldManager(uid types.UID) string { return "tend-compat/" + string(uid) }

// apply creates or updates objs, owned by owner, and removes owner from
// what it no longer maps to. A name taken by a tend object not made from
// owner is an error naming both; nothing is applied then.
func (r *Reconciler) apply(ctx context.Context, owner *unstructured.Unstructured, objs []client.Object) error {
	uid := owner.GetUID()
	what := fmt.Sprintf("%s %s/%s", owner.GetKind(), owner.GetNamespace(), owner.GetName())
	type pending struct {
		u    *unstructured.Unstructured
		skip bool
		// seed: a new App, whose first inventory is what the old tool
		// recorded.
		seed *tendv1.App
	}
	var todo []pending
	want := map[string]bool{}
	for _, obj := range objs {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		want[kind+"/"+obj.GetName()] = true
		controller := kind == "App" || kind == "AppSet" || kind == "Notifier" || kind == "Project"
		refs := []metav1.OwnerReference{{
			APIVersion: owner.GetAPIVersion(), Kind: owner.GetKind(), Name: owner.GetName(), UID: uid,
			Controller: &controller,
		}}
		obj.SetOwnerReferences(refs)
		live, err := r.live(ctx, kind, obj.GetNamespace(), obj.GetName())
		if err != nil {
			return &transientError{err}
		}
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if _, ok := ann[tendv1.AnnotationRequestedAt]; !ok && live != nil && ownedBy(live, uid) {
			// The last request passed on stays, so that the object is
			// not applied again without it.
			if v := live.GetAnnotations()[tendv1.AnnotationRequestedAt]; v != "" {
				ann[tendv1.AnnotationRequestedAt] = v
			}
		}
		delete(ann, HashAnnotation)
		obj.SetAnnotations(ann)
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		delete(u, "status")
		unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
		sum, err := hash(u)
		if err != nil {
			return err
		}
		ann[HashAnnotation] = sum
		_ = unstructured.SetNestedStringMap(u, ann, "metadata", "annotations")

		skip := false
		if live != nil {
			mine, foreign, other := false, false, ""
			for _, ref := range live.GetOwnerReferences() {
				switch {
				case ref.UID == uid:
					mine = true
				case isForeign(ref.APIVersion):
					foreign = true
					if controller || (ref.Controller != nil && *ref.Controller) {
						other = ref.Kind + " " + ref.Name
					}
				}
			}
			switch {
			case other != "":
				return fmt.Errorf("%s maps to %s %s/%s, which is made from %s: rename one of them", what, kind, obj.GetNamespace(), obj.GetName(), other)
			case !mine && !foreign:
				return fmt.Errorf("%s maps to %s %s/%s, which exists and is not made from it: rename one of them, or delete the %s", what, kind, obj.GetNamespace(), obj.GetName(), kind)
			}
			skip = mine && live.GetAnnotations()[HashAnnotation] == sum
		}
		p := pending{u: &unstructured.Unstructured{Object: u}, skip: skip}
		if app, ok := obj.(*tendv1.App); ok && live == nil {
			p.seed = app
		}
		todo = append(todo, p)
	}
	for _, p := range todo {
		if p.skip {
			continue
		}
		if p.seed != nil {
			if err := r.seedInventory(ctx, owner, p.seed); err != nil {
				return &transientError{err}
			}
		}
		if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(p.u), client.FieldOwner(fieldManager(uid)), client.ForceOwnership); err != nil {
			if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
				return fmt.Errorf("%s: writing %s %s: %v", what, p.u.GetKind(), p.u.GetName(), err)
			}
			return &transientError{err}
		}
	}
	return r.release(ctx, owner, want)
}

// seedInventory gives the App app, about to be created for owner, the
// inventory the old tool left: each object it recorded as applied, marked
// adopted (apply.AdoptedDesired). An App that has an inventory keeps it.
func (r *Reconciler) seedInventory(ctx context.Context, owner *unstructured.Unstructured, app *tendv1.App) error {
	if r.kind.adopted == nil || r.Inventory == nil {
		return nil
	}
	refs, err := r.kind.adopted(ctx, r.Client, owner, app)
	if err != nil || len(refs) == 0 {
		return err
	}
	ref := apply.AppRef{Namespace: app.Namespace, Name: app.Name}
	inv, err := r.Inventory.Load(ctx, ref)
	if err != nil || len(inv.Entries) > 0 {
		return err
	}
	Seed(inv, refs)
	if err := r.Inventory.Save(ctx, ref, inv); err != nil {
		return err
	}
	r.Log.Info("took over the inventory the old tool left", "object", owner.GetNamespace()+"/"+owner.GetName(), "objects", len(refs))
	return nil
}

// release removes owner from the tend objects it no longer maps to: an
// object only it owned is deleted, a shared one loses owner's reference.
func (r *Reconciler) release(ctx context.Context, owner *unstructured.Unstructured, want map[string]bool) error {
	uid := owner.GetUID()
	var stale []client.Object
	// Every kind live() reads: what an object can map to.
	for kind, list := range map[string]client.ObjectList{
		"App": &tendv1.AppList{}, "Source": &tendv1.SourceList{}, "Cluster": &tendv1.ClusterList{},
		"AppSet": &tendv1.AppSetList{}, "Notifier": &tendv1.NotifierList{}, "Project": &tendv1.ProjectList{},
	} {
		if err := r.Client.List(ctx, list, client.InNamespace(owner.GetNamespace())); err != nil {
			return &transientError{err}
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, item := range items {
			if obj, ok := item.(client.Object); ok && ownedBy(obj, uid) && !want[kind+"/"+obj.GetName()] {
				stale = append(stale, obj)
			}
		}
	}
	for _, obj := range stale {
		if len(obj.GetOwnerReferences()) == 1 {
			if err := r.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				return &transientError{err}
			}
			continue
		}
		gvk, err := r.Client.GroupVersionKindFor(obj)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		u.SetNamespace(obj.GetNamespace())
		u.SetName(obj.GetName())
		if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager(uid)), client.ForceOwnership); err != nil {
			return &transientError{err}
		}
	}
	return nil
}

// live reads the tend object of kind and name from the cache, nil when
// there is none.
func (r *Reconciler) live(ctx context.Context, kind, namespace, name string) (client.Object, error) {
	var obj client.Object
	switch kind {
	case "App":
		obj = &tendv1.App{}
	case "Source":
		obj = &tendv1.Source{}
	case "Cluster":
		obj = &tendv1.Cluster{}
	case "AppSet":
		obj = &tendv1.AppSet{}
	case "Notifier":
		obj = &tendv1.Notifier{}
	case "Project":
		obj = &tendv1.Project{}
	default:
		return nil, fmt.Errorf("compat: cannot apply a %s", kind)
	}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// isForeign says whether apiVersion is Argo CD's or Flux's.
func isForeign(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	return group == "argoproj.io" || strings.HasSuffix(group, ".toolkit.fluxcd.io")
}

func ownedBy(obj metav1.Object, uid types.UID) bool {
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == uid })
}

func hash(u map[string]any) (string, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// finalize deletes the Apps obj maps to and then removes the finalizers
// of the old tool that stand for that, so that deleting the object works
// with the old tool gone. Objects without them are left to Kubernetes'
// garbage collector, which deletes the Apps (each App's deletionPolicy
// says what happens to its objects).
func (r *Reconciler) finalize(ctx context.Context, obj *unstructured.Unstructured) (ctrl.Result, error) {
	if r.kind.cascading == nil {
		return ctrl.Result{}, nil // Flux's Alerts, AppProjects: what they map to goes by garbage collection
	}
	fins := r.kind.cascading(obj.GetFinalizers())
	if len(fins) == 0 {
		return ctrl.Result{}, nil
	}
	var apps tendv1.AppList
	if err := r.Client.List(ctx, &apps, client.InNamespace(obj.GetNamespace())); err != nil {
		return ctrl.Result{}, err
	}
	waiting := 0
	for i := range apps.Items {
		app := &apps.Items[i]
		if !ownedBy(app, obj.GetUID()) {
			continue
		}
		waiting++
		if app.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, app); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if waiting > 0 {
		// The App's deletion (its objects pruned first, by its
		// deletionPolicy) requeues this object; the timer is a backstop.
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	keep := slices.DeleteFunc(slices.Clone(obj.GetFinalizers()), func(f string) bool { return slices.Contains(fins, f) })
	patch := map[string]any{"metadata": map[string]any{"finalizers": keep, "resourceVersion": obj.GetResourceVersion()}}
	b, err := json.Marshal(patch)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, b)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.Log.Info("removed finalizers after deleting what the object maps to", "object", obj.GetNamespace()+"/"+obj.GetName(), "finalizers", fins)
	return ctrl.Result{}, nil
}
