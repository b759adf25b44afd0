package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/refwatch"
)

// What references Secrets and ConfigMaps (refwatch owners): an App reads its
// values, decryption keys, chart repository credentials and (pinned to a
// revision) its git Source's credentials; a Cluster's connection and check
// read its kubeconfig; a Source's fetch reads its credentials; a Notifier
// (notify.RefOwnerKind) its Secret; a Warehouse (ownerWarehouse) its
// registries' credentials.
const (
	ownerApp     = "App"
	ownerCluster = "Cluster"
	ownerSource  = "Source"
)

func appOwner(app *tendv1.App) refwatch.Owner {
	return refwatch.Owner{Kind: ownerApp, Namespace: app.Namespace, Name: app.Name}
}

func sourceOwner(src *tendv1.Source) refwatch.Owner {
	return refwatch.Owner{Kind: ownerSource, Namespace: src.Namespace, Name: src.Name}
}

func clusterOwner(cl *tendv1.Cluster) refwatch.Owner {
	return refwatch.Owner{Kind: ownerCluster, Namespace: cl.Namespace, Name: cl.Name}
}

// refClient is the manager's client with the watches of referenced Secrets
// and ConfigMaps beside it. New gives it to the App reconciler and to
// Clusters; its own Get and List are the manager's client's, unchanged:
// only a refReader made from it (readerFor) serves reads from watches.
type refClient struct {
	client.Client
	refs *refwatch.Watcher
}

// refReader reads what one owner references: Secret and ConfigMap Gets
// from watches when its client is a refClient, everything else (and
// everything, for any other client) from the client. done records what the
// owner read, so that watches of objects it no longer references stop.
type refReader struct {
	next  client.Reader
	refs  *refwatch.Watcher // nil: read from next
	owner refwatch.Owner
	read  []refwatch.Ref
}

var _ client.Reader = (*refReader)(nil)

func readerFor(c client.Reader, owner refwatch.Owner) *refReader {
	rd := &refReader{next: c, owner: owner}
	if rc, ok := c.(*refClient); ok {
		rd.refs = rc.refs
	}
	return rd
}

// Get reads a Secret or ConfigMap from its watch (started at the first
// read), anything else from the client.
func (r *refReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if r.refs != nil {
		var kind refwatch.Kind
		switch obj.(type) {
		case *corev1.Secret:
			kind = refwatch.Secret
		case *corev1.ConfigMap:
			kind = refwatch.ConfigMap
		}
		if kind != "" {
			r.read = append(r.read, refwatch.Ref{Kind: kind, Namespace: key.Namespace, Name: key.Name})
			return r.refs.Get(ctx, r.owner, key, obj)
		}
	}
	return r.next.Get(ctx, key, obj, opts...)
}

// List lists from the client.
func (r *refReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.next.List(ctx, list, opts...)
}

// done says the owner now references exactly what was read through r.
func (r *refReader) done() {
	if r.refs != nil {
		r.refs.Keep(r.owner, r.read)
	}
}

// trigger asks a controller to reconcile an object no watch of its own
// reports on (source.Channel): a Secret it reads changed.
type trigger chan event.GenericEvent

func newTrigger() trigger { return make(trigger, 1024) }

// source is the controller's end of the trigger.
func (t trigger) source() source.Source {
	return source.Channel((chan event.GenericEvent)(t), &handler.EnqueueRequestForObject{})
}

// send reconciles obj (only its namespace and name count), without
// blocking the caller. A nil trigger (the controller is not set up) drops it.
func (t trigger) send(obj client.Object) {
	if t == nil {
		return
	}
	ev := event.GenericEvent{Object: obj}
	select {
	case t <- ev:
	default:
		go func() { t <- ev }()
	}
}

// refOwners reconciles whatever read a Secret or ConfigMap that changed
// (was created, updated or deleted): a new values Secret or decryption key
// re-renders the Apps that read it, a new kubeconfig checks the Cluster
// again and reconnects its Apps, new credentials fetch the Source again at
// once (a Source stalled on wrong credentials need not wait its interval).
type refOwners struct {
	apps       *AppReconciler
	sources    trigger
	clusters   trigger
	notifiers  trigger
	warehouses trigger
}

// changed is the refwatch OnChange: it runs on a watch's goroutine and
// does not block.
func (o *refOwners) changed(_ refwatch.Ref, owners []refwatch.Owner) {
	for _, ow := range owners {
		meta := metav1.ObjectMeta{Namespace: ow.Namespace, Name: ow.Name}
		switch ow.Kind {
		case ownerApp:
			o.apps.enqueue(types.NamespacedName{Namespace: ow.Namespace, Name: ow.Name})
		case ownerSource:
			o.sources.send(&tendv1.Source{ObjectMeta: meta})
		case notify.RefOwnerKind:
			o.notifiers.send(&tendv1.Notifier{ObjectMeta: meta})
		case ownerWarehouse:
			o.warehouses.send(&tendv1.Warehouse{ObjectMeta: meta})
		case ownerCluster:
			o.clusters.send(&tendv1.Cluster{ObjectMeta: meta})
			var apps tendv1.AppList
			if err := o.apps.Client.List(context.Background(), &apps, client.InNamespace(ow.Namespace)); err != nil {
				continue // the Apps' own interval still applies
			}
			for _, a := range apps.Items {
				if ref := a.Spec.Destination.ClusterRef; ref != nil && ref.Name == ow.Name {
					o.apps.enqueue(types.NamespacedName{Namespace: a.Namespace, Name: a.Name})
				}
			}
		}
	}
}

// forgetDeleted lets go of the references of deleted Apps, Clusters,
// Sources, Notifiers and Warehouses.
func forgetDeleted(ctx context.Context, mgr manager.Manager, refs *refwatch.Watcher) error {
	for kind, obj := range map[string]client.Object{
		ownerApp: &tendv1.App{}, ownerCluster: &tendv1.Cluster{}, ownerSource: &tendv1.Source{}, notify.RefOwnerKind: &tendv1.Notifier{},
		ownerWarehouse: &tendv1.Warehouse{},
	} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watch %ss for their references: %w", kind, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			DeleteFunc: func(o any) {
				if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = d.Obj
				}
				if m, ok := o.(client.Object); ok {
					refs.Forget(refwatch.Owner{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()})
				}
			},
		}); err != nil {
			return fmt.Errorf("watch %ss for their references: %w", kind, err)
		}
	}
	return nil
}

// readKubeconfig reads a Cluster's kubeconfig Secret from its watch: an
// App's reconcile sends no request for it, and a new kubeconfig reconciles
// the Cluster's Apps.
func readKubeconfig(c client.Reader) func(ctx context.Context, cl, key types.NamespacedName, sec *corev1.Secret) error {
	return func(ctx context.Context, cl, key types.NamespacedName, sec *corev1.Secret) error {
		rd := readerFor(c, refwatch.Owner{Kind: ownerCluster, Namespace: cl.Namespace, Name: cl.Name})
		defer rd.done()
		return rd.Get(ctx, key, sec)
	}
}
