package controller

import (
	"context"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/render"
)

// Priorities of App reconciles after a Source fetched a new revision. In a
// monorepo one commit touches one App and reconciles all of them (each
// reports the new revision); the Apps whose files changed go first, so a
// push is applied in the time of one reconcile, not of a thousand.
const (
	priorityChanged   = 10
	priorityUnchanged = handler.LowPriority
)

// rendered is what an App's last render read, for the Source handler
// (which runs outside the App's reconcile).
type rendered struct {
	rev   string
	files []string
}

// lastRender is set by the reconcile after each render.
type lastRender struct{ atomic.Pointer[rendered] }

// sourceHandler enqueues the Apps of a Source: on a new revision, those
// whose rendered files changed before the others.
type sourceHandler struct{ r *AppReconciler }

var _ handler.EventHandler = sourceHandler{}

func (h sourceHandler) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.Object, "", q)
}

func (h sourceHandler) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.ObjectNew, newRevision(e.ObjectOld, e.ObjectNew), q)
}

func (h sourceHandler) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.Object, "", q)
}

func (h sourceHandler) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.Object, "", q)
}

// newRevision is the Source's artifact revision when the update changed
// it, else "".
func newRevision(old, cur client.Object) string {
	o, ok1 := old.(*tendv1.Source)
	n, ok2 := cur.(*tendv1.Source)
	if !ok1 || !ok2 || n.Status.Artifact == nil {
		return ""
	}
	if o.Status.Artifact != nil && o.Status.Artifact.Revision == n.Status.Artifact.Revision {
		return ""
	}
	return n.Status.Artifact.Revision
}

func (h sourceHandler) add(ctx context.Context, src client.Object, rev string, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	reqs := h.r.appsOfSource(ctx, src)
	pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request])
	if rev == "" || !ok {
		for _, req := range reqs {
			q.Add(req)
		}
		return
	}
	srcKey := types.NamespacedName{Namespace: src.GetNamespace(), Name: src.GetName()}
	var changed, unchanged []reconcile.Request
	for _, req := range reqs {
		if h.r.unaffected(req.NamespacedName, srcKey, rev) {
			unchanged = append(unchanged, req)
		} else {
			changed = append(changed, req)
		}
	}
	pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(priorityChanged)}, changed...)
	pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(priorityUnchanged)}, unchanged...)
}

// unaffected reports whether revision rev of the App's Source surely
// leaves the App's render as it is: none of the files its last render read
// changed. When unsure (never rendered, or the change is not known) it
// says false.
func (r *AppReconciler) unaffected(app, src types.NamespacedName, rev string) bool {
	r.mu.Lock()
	st := r.state[app]
	r.mu.Unlock()
	if st == nil {
		return false
	}
	last := st.rendered.Load()
	if last == nil {
		return false
	}
	changed := r.Artifacts.ChangedBetween(src, last.rev, rev)
	return changed != nil && !render.Affected(last.files, changed)
}
