package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/health"
)

// checkIndex maps the objects Apps name in spec.health.checks to those
// Apps, so that a change to one (it is not the App's, so it carries no
// owner annotation) reconciles them.
type checkIndex struct {
	mu    sync.Mutex
	byRef map[apply.ObjectRef]map[types.NamespacedName]bool
	byApp map[types.NamespacedName][]apply.ObjectRef
}

// set records app's checks, replacing those recorded before.
func (x *checkIndex) set(app types.NamespacedName, checks []apply.Checked) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byRef == nil {
		x.byRef = map[apply.ObjectRef]map[types.NamespacedName]bool{}
		x.byApp = map[types.NamespacedName][]apply.ObjectRef{}
	}
	for _, ref := range x.byApp[app] {
		delete(x.byRef[ref], app)
		if len(x.byRef[ref]) == 0 {
			delete(x.byRef, ref)
		}
	}
	delete(x.byApp, app)
	for _, c := range checks {
		if x.byRef[c.Ref] == nil {
			x.byRef[c.Ref] = map[types.NamespacedName]bool{}
		}
		x.byRef[c.Ref][app] = true
		x.byApp[app] = append(x.byApp[app], c.Ref)
	}
}

// apps returns the Apps that check ref.
func (x *checkIndex) apps(ref apply.ObjectRef) []types.NamespacedName {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]types.NamespacedName, 0, len(x.byRef[ref]))
	for app := range x.byRef[ref] {
		out = append(out, app)
	}
	return out
}

// checkAccess is what an App with a ServiceAccount was last found allowed
// to read of its health checks.
type checkAccess struct {
	key     string // the account and the checks asked about
	askedAt time.Time
	allowed []apply.Checked
	denied  []apply.ObjectHealth
	// unmapped: a check's kind was not served when asked, so nothing
	// could be asked about it; it is asked at every reconcile until it
	// is, so that an object of a CRD installed later is not read unasked.
	unmapped bool
}

// readableChecks settles which of checks app may count: all of them when
// the App acts as tend; for an App with a ServiceAccount, those the account
// may get. The API server is asked once per change of the account or the
// checks, again after interval while something is denied (a grant added
// later counts then), and at every reconcile while a check's kind is not
// served (its CRD installed later is asked about before its object is
// read). Denied checks are Degraded results that name the verb.
func (r *AppReconciler) readableChecks(ctx context.Context, app *tendv1.App, st *appState, conn *cluster.Conn, checks []apply.Checked, interval time.Duration) error {
	r.checks.set(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, checks)
	sa := r.serviceAccount(app)
	key := fmt.Sprint(sa, checks)
	if st.checks.key == key && !st.checks.unmapped && (len(st.checks.denied) == 0 || time.Since(st.checks.askedAt) < interval) {
		return nil
	}
	if sa == "" || len(checks) == 0 {
		st.checks = checkAccess{key: key, allowed: checks}
		return nil
	}
	need := make([]cluster.Access, 0, len(checks))
	byAccess := map[cluster.Access]apply.Checked{} // Object names the check: one each
	var (
		allowed  []apply.Checked
		unmapped bool
	)
	for _, c := range checks {
		m, err := conn.Mapper.RESTMapping(c.Ref.GroupKind(), c.Version)
		if err != nil {
			// A kind the cluster does not serve: Missing, nothing to ask
			// yet.
			allowed = append(allowed, c)
			unmapped = true
			continue
		}
		a := cluster.Access{Verb: "get", Resource: m.Resource.GroupResource(), Namespace: c.Ref.Namespace, Object: "health check " + c.Ref.String()}
		need = append(need, a)
		byAccess[a] = c
	}
	denied, err := conn.Denied(ctx, app.Namespace, sa, need)
	if err != nil {
		return err
	}
	user := cluster.ServiceAccountUser(app.Namespace, sa)
	var results []apply.ObjectHealth
	for _, a := range denied {
		results = append(results, apply.ObjectHealth{Ref: byAccess[a].Ref, Result: health.Result{
			State:   health.Degraded,
			Reason:  "Forbidden",
			Message: cluster.DeniedMessage(user, []cluster.Access{a}) + ": grant it get on " + a.Resource.String() + " or take the object out of spec.health.checks",
		}})
		delete(byAccess, a)
	}
	for _, a := range need {
		if c, ok := byAccess[a]; ok {
			allowed = append(allowed, c)
		}
	}
	st.checks = checkAccess{key: key, askedAt: time.Now(), allowed: allowed, denied: results, unmapped: unmapped}
	return nil
}
