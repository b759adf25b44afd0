package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/cluster"
)

// serviceAccount is the ServiceAccount app acts as (spec.serviceAccountName,
// else --default-service-account), "" for tend's own identity.
func (r *AppReconciler) serviceAccount(app *tendv1.App) string {
	if app.Spec.ServiceAccountName != "" {
		return app.Spec.ServiceAccountName
	}
	return r.DefaultServiceAccount
}

// EngineFor returns the engine of the controller's own cluster that app's
// syncs run on: one acting as the App's ServiceAccount (spec or
// --default-service-account), else the controller's. The dashboard's
// diffs compare with it.
func (c *Controller) EngineFor(_ context.Context, app *tendv1.App) (*apply.Engine, error) {
	if sa := c.Apps.serviceAccount(app); sa != "" {
		return c.Clusters.Local.As(app.Namespace, sa)
	}
	return c.Clusters.Local.Engine, nil
}

// ServiceAccountUser is the user app's syncs and renders act as
// ("system:serviceaccount:<namespace>:<name>", from spec.serviceAccountName
// or --default-service-account), "" for tend's own identity.
func (c *Controller) ServiceAccountUser(app *tendv1.App) string {
	if sa := c.Apps.serviceAccount(app); sa != "" {
		return cluster.ServiceAccountUser(app.Namespace, sa)
	}
	return ""
}

// engineFor returns the engine a sync of app runs on: the connection's
// own, or, for an App with a ServiceAccount, one acting as that account,
// once the API server has said the account may create and patch every
// object of objs and delete every object of prune. Otherwise nothing is
// applied: a halt says why (the account is missing, or may not do
// something, named with the verb); an error is a transient failure.
func (r *AppReconciler) engineFor(ctx context.Context, app *tendv1.App, conn *cluster.Conn, objs func() []*unstructured.Unstructured, prune []apply.ObjectRef) (*apply.Engine, *halt, error) {
	sa := r.serviceAccount(app)
	if sa == "" {
		return conn.Engine, nil, nil
	}
	field := "spec.serviceAccountName"
	if app.Spec.ServiceAccountName == "" {
		field = "the controller's --default-service-account"
	}
	ok, err := conn.ServiceAccountExists(ctx, app.Namespace, sa)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, &halt{kind: haltWaiting, reason: ReasonServiceAccountNotFound, after: 30 * time.Second,
			err: fmt.Errorf("the ServiceAccount %s/%s the App acts as (%s) does not exist: create it; nothing is applied until then", app.Namespace, sa, field)}, nil
	}
	denied, err := conn.Denied(ctx, app.Namespace, sa, accessNeeded(conn, objs(), prune))
	if err != nil {
		return nil, nil, err
	}
	if len(denied) > 0 {
		return nil, stalledBy(ReasonForbidden, fmt.Errorf("%s, so nothing of this revision was applied: grant the ServiceAccount these rights (a Role or ClusterRole and its binding) or take the objects out of git",
			cluster.DeniedMessage(cluster.ServiceAccountUser(app.Namespace, sa), denied))), nil
	}
	eng, err := conn.As(app.Namespace, sa)
	return eng, nil, err
}

// deletingEngine is the engine that prunes a deleted App's objects and
// runs its post-delete hooks: as its ServiceAccount. Never as tend: the
// account is the App's spec and its inventory Secret is in the tenant's
// namespace, both the tenant's to write. When the account is gone, the
// engine is nil and missing names it: the objects stay.
func (r *AppReconciler) deletingEngine(ctx context.Context, app *tendv1.App, conn *cluster.Conn) (eng *apply.Engine, missing string, err error) {
	sa := r.serviceAccount(app)
	if sa == "" {
		return conn.Engine, "", nil
	}
	ok, err := conn.ServiceAccountExists(ctx, app.Namespace, sa)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, app.Namespace + "/" + sa, nil
	}
	eng, err = conn.As(app.Namespace, sa)
	return eng, "", err
}

// hookObjects are the objects of hooks, for the access check.
func hookObjects(hooks []apply.Hook) func() []*unstructured.Unstructured {
	return func() []*unstructured.Unstructured {
		out := make([]*unstructured.Unstructured, len(hooks))
		for i, h := range hooks {
			out[i] = h.Object
		}
		return out
	}
}

// accessNeeded lists what applying objs and pruning prune needs: create
// and patch (server-side apply) of each object's kind in its namespace,
// delete of each pruned one. Kinds the cluster does not serve yet are left
// to the sync, which says so.
func accessNeeded(conn *cluster.Conn, objs []*unstructured.Unstructured, prune []apply.ObjectRef) []cluster.Access {
	var need []cluster.Access
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := conn.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			continue
		}
		what := apply.RefOf(o).String()
		for _, verb := range []string{"create", "patch"} {
			need = append(need, cluster.Access{Verb: verb, Resource: m.Resource.GroupResource(), Namespace: o.GetNamespace(), Object: what})
		}
	}
	for _, ref := range prune {
		m, err := conn.Mapper.RESTMapping(ref.GroupKind())
		if err != nil {
			continue
		}
		need = append(need, cluster.Access{Verb: "delete", Resource: m.Resource.GroupResource(), Namespace: ref.Namespace, Object: ref.String()})
	}
	return need
}
