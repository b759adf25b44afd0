package notify

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/refwatch"
)

// RefOwnerKind is the refwatch owner kind under which a Notifier's Secret
// is watched: whoever handles the Watcher's OnChange reconciles the
// Notifier named by such an owner (Reconciler.RefChanged).
const RefOwnerKind = "Notifier"

func refOwner(n *tendv1.Notifier) refwatch.Owner {
	return refwatch.Owner{Kind: RefOwnerKind, Namespace: n.Namespace, Name: n.Name}
}

// secretReader reads a Notifier's Secret from its watch (refs; nil: from
// next), everything else from next.
type secretReader struct {
	next  client.Reader
	refs  *refwatch.Watcher
	owner refwatch.Owner
}

var _ client.Reader = secretReader{}

func readerFor(next client.Reader, refs *refwatch.Watcher, n *tendv1.Notifier) secretReader {
	return secretReader{next: next, refs: refs, owner: refOwner(n)}
}

func (r secretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok && r.refs != nil {
		return r.refs.Get(ctx, r.owner, key, obj)
	}
	return r.next.Get(ctx, key, obj, opts...)
}

func (r secretReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.next.List(ctx, list, opts...)
}

// keepSecretWatch says n now references exactly its spec.secretRef: the
// watch of a Secret it no longer names stops (unless something else
// reads that Secret).
func keepSecretWatch(refs *refwatch.Watcher, n *tendv1.Notifier) {
	if refs == nil {
		return
	}
	var keep []refwatch.Ref
	if ref := n.Spec.SecretRef; ref != nil {
		keep = append(keep, refwatch.Ref{Kind: refwatch.Secret, Namespace: n.Namespace, Name: ref.Name})
	}
	refs.Keep(refOwner(n), keep)
}
