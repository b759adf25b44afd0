package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/render"
)

// syncJob is one sync of an App running in the background.
type syncJob struct {
	done     chan struct{}
	rev      string
	gen      int64
	result   *render.Result
	started  time.Time
	request  string // the requested-at value it answers, if any
	message  string
	rollback string // revision rolled back from
	res      *apply.Result
	err      error
	conn     *cluster.Conn
	cancel   context.CancelFunc
	// fresh is set until the reconcile that started the job ends; that
	// reconcile keeps its status in pending instead of writing it.
	fresh   bool
	pending *tendv1.AppStatus
	// turn is closed when the sync gets its turn to work
	// (apply.Engine.MaxSyncs), at turnAt.
	turn   chan struct{}
	turnAt time.Time
}

// working returns how long the sync has been working since its turn came;
// 0 while it waits for one.
func (j *syncJob) working() time.Duration {
	select {
	case <-j.turn:
		return time.Since(j.turnAt)
	default:
		return 0
	}
}

// writtenStatus is what the App controller keeps of an App it has just
// written: the status and the versions it applies to, not the whole
// object (its spec and managed fields are in the informer cache).
type writtenStatus struct {
	resourceVersion string
	generation      int64
	status          *tendv1.AppStatus
}

func newWritten(app *tendv1.App) *writtenStatus {
	return &writtenStatus{resourceVersion: app.ResourceVersion, generation: app.Generation, status: app.Status.DeepCopy()}
}

// restorePending puts back the status the reconcile that started the job
// found and did not write (see syncStatusDelay).
func (j *syncJob) restorePending(app *tendv1.App) {
	if j.pending != nil {
		app.Status = *j.pending
		j.pending = nil
	}
}

// syncStatusDelay is how long a sync runs before its App's status says it
// is syncing. Most syncs end sooner: their App's status then goes from
// the last result straight to the new one, one write instead of two.
const syncStatusDelay = 2 * time.Second

// startSync runs a sync in its own goroutine; the App is enqueued when it
// ends.
func (r *AppReconciler) startSync(key types.NamespacedName, app *tendv1.App, st *appState, conn *cluster.Conn, eng *apply.Engine, req apply.Request, result *render.Result, request, message, rollbackFrom string) {
	job := &syncJob{done: make(chan struct{}), rev: req.Revision, gen: app.Generation, result: result, started: time.Now(),
		request: request, message: message, rollback: rollbackFrom, conn: conn, fresh: true, turn: make(chan struct{})}
	st.job = job
	r.notify(app, st, notify.SyncStarted, req.Revision, fmt.Sprintf("syncing %s (%s)", shortRev(req.Revision), message), "", nil)
	ctx := r.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, job.cancel = context.WithCancel(ctx)
	// The sync decodes its objects when it gets its turn (Engine.MaxSyncs):
	// Apps waiting for one hold only their encoded render.
	req.ObjectsFunc = func() []*unstructured.Unstructured { return desiredObjects(result) }
	// The attempt's hooks carry the history entry it will write: after a
	// restart that cut it off (no entry written), the same attempt finds
	// its hook Jobs instead of running them again.
	req.HookRun = fmt.Sprintf("%s@%s#%d", app.UID, req.Revision, nextHistoryID(app))
	req.Started = func() {
		job.turnAt = time.Now()
		close(job.turn)
	}
	go func() {
		select {
		case <-job.turn:
		case <-job.done:
			return
		}
		// A sync still working syncStatusDelay after its turn came gets
		// its status written (syncing); one that ends sooner is written
		// once, done.
		t := time.NewTimer(syncStatusDelay)
		defer t.Stop()
		select {
		case <-t.C:
			r.enqueue(key)
		case <-job.done:
		}
	}()
	go func() {
		defer job.cancel()
		defer func() {
			close(job.done)
			r.enqueue(key)
		}()
		job.res, job.err = eng.Sync(ctx, req)
	}()
}

// recordSync turns a finished sync into status, history and events.
func (r *AppReconciler) recordSync(app *tendv1.App, st *appState, job *syncJob) {
	end := time.Now()
	st.lastSyncEnd = end
	if job.res != nil && job.res.Inventory != nil {
		st.inv = job.res.Inventory
		// Someone else (`tend sync`) saved the inventory meanwhile: the
		// merged one may name objects to prune that this sync did not
		// consider. The next reconcile syncs again if anything differs.
		st.inventoryMerged = job.res.InventoryMerged
	}
	if job.request != "" {
		app.Status.LastHandledRequest = job.request
	}
	app.Status.LastAttemptedRevision = job.rev
	changed := 0
	if job.res != nil {
		changed = job.res.Changed
	}
	rec := tendv1.SyncRecord{
		Revision:  job.rev,
		StartedAt: metav1.NewTime(job.started),
		Duration:  metav1.Duration{Duration: end.Sub(job.started).Round(time.Millisecond)},
		Result:    "Succeeded",
		Changed:   int32(changed),
		Message:   job.message,
	}
	if job.err != nil {
		rec.Result = "Failed"
		rec.Message = job.message + ": " + job.err.Error()
		app.Status.Sync = tendv1.SyncFailed
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonSyncFailed, job.err.Error())
		r.event(app, corev1.EventTypeWarning, ReasonSyncFailed, fmt.Sprintf("sync of %s failed: %v", shortRev(job.rev), job.err))
	} else {
		st.syncedResult, st.syncedRev, st.syncedGen = job.result, job.rev, job.gen
		app.Status.Revision = job.rev
		app.Status.Sync = tendv1.SyncSynced
		app.Status.OutOfSync = nil
		if job.rollback != "" {
			app.Status.RolledBackRevision = job.rollback
		} else if job.rev != app.Status.RolledBackRevision {
			app.Status.RolledBackRevision = ""
		}
		if changed > 0 {
			msg := fmt.Sprintf("synced %s: %d objects changed", shortRev(job.rev), changed)
			if re := changesOf(job.res, apply.Recreated); len(re) > 0 {
				// A delete and a create: its pods restart, say, which
				// people want to know of.
				msg += "; deleted and created again, a field of each being immutable: " + strings.Join(re, ", ")
			}
			r.event(app, corev1.EventTypeNormal, ReasonSynced, msg)
		}
	}
	if r.metrics != nil {
		r.metrics.syncs.WithLabelValues(rec.Result).Inc()
		r.metrics.syncSeconds.WithLabelValues(rec.Result).Observe(rec.Duration.Seconds())
	}
	meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
	// A sync that changed nothing and answered nothing is not history
	// (after a restart, every App "syncs" once without writing).
	if job.err != nil || changed > 0 || job.request != "" || job.rollback != "" || (len(app.Status.History) > 0 && app.Status.History[0].Revision != job.rev) || len(app.Status.History) == 0 {
		rec.ID = nextHistoryID(app)
		app.Status.History = append([]tendv1.SyncRecord{rec}, app.Status.History...)
		if len(app.Status.History) > historyLimit {
			app.Status.History = app.Status.History[:historyLimit]
		}
	}
	r.notifySync(app, st, job)
	if r.OnSync != nil {
		var res *apply.Result
		if job.res != nil {
			res = job.res
		}
		r.OnSync(app.DeepCopy(), rec, res, job.err)
	}
	if job.res != nil {
		for _, w := range job.res.Warnings {
			r.event(app, corev1.EventTypeWarning, "SyncWarning", w)
		}
	}
}

// backoff is the delay before retry n of a failed sync.
func backoff(app *tendv1.App, n int) time.Duration {
	base, limit := 5*time.Second, 5*time.Minute
	if rp := app.Spec.Sync.Retry; rp != nil {
		if rp.Backoff.Duration > 0 {
			base = rp.Backoff.Duration
		}
		if rp.MaxBackoff.Duration > 0 {
			limit = rp.MaxBackoff.Duration
		}
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// failuresOf counts the failed syncs of rev at the top of app's history
// (the retries so far) and returns when the last one ended. The count lives
// in status, so a restarted controller continues the backoff.
func failuresOf(app *tendv1.App, rev string) (n int, lastEnd time.Time) {
	for i, h := range app.Status.History {
		if h.Revision != rev || h.Result != "Failed" {
			break
		}
		if i == 0 {
			lastEnd = h.StartedAt.Add(h.Duration.Duration)
		}
		n++
	}
	return n, lastEnd
}

func lastError(app *tendv1.App) string {
	if len(app.Status.History) > 0 {
		return app.Status.History[0].Message
	}
	return ""
}

// assess updates health in status from the watch cache, marks the last
// sync healthy, and starts an auto-rollback when a fresh sync degraded.
func (r *AppReconciler) assess(app *tendv1.App, st *appState, conn *cluster.Conn) {
	since := st.lastSyncEnd
	if since.IsZero() && len(app.Status.History) > 0 {
		h := app.Status.History[0]
		since = h.StartedAt.Add(h.Duration.Duration)
	}
	state, objs := conn.Engine.Assess(st.health(), appspec.Owners(app), st.inv, st.checks.allowed, since, appspec.HealthTimeout(app))
	if len(st.inv.Entries) == 0 && len(st.checks.allowed) == 0 {
		state = health.Healthy
	}
	if len(st.checks.denied) > 0 {
		// Checks the App's ServiceAccount may not read count as
		// Degraded, and say so; their objects' state is not shown.
		state = health.Degraded
		objs = append(slices.Clone(st.checks.denied), objs...)
	}
	prev := app.Status.Health
	app.Status.Health = string(state)
	if state == health.Healthy && len(app.Status.History) > 0 && app.Status.History[0].Result == "Succeeded" && !app.Status.History[0].Healthy {
		app.Status.History[0].Healthy = true
	}
	if prev != "" && prev != string(state) {
		note := fmt.Sprintf("health %s -> %s", prev, state)
		if len(objs) > 0 {
			note += ": " + objs[0].Result.Message
		}
		typ := corev1.EventTypeNormal
		if state == health.Degraded {
			typ = corev1.EventTypeWarning
		}
		r.event(app, typ, "Health"+string(state), note)
		r.notifyHealth(app, st, prev, string(state), objs)
	}
	st.lastHealth = objs
	st.healthSince = since
}

// settle finishes a reconcile with nothing to sync.
func (r *AppReconciler) settle(app *tendv1.App, st *appState, interval time.Duration) (ctrl.Result, error) {
	meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
	app.Status.NextSyncAllowedAt = nil
	app.Status.Objects = int32(len(st.inv.Entries))
	switch {
	case app.Spec.TargetRevision != "":
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, conditionFor(app.Status.Health), "Pinned",
			fmt.Sprintf("pinned to revision %s (rollback); automatic sync of new revisions is paused until spec.targetRevision is cleared", shortRev(app.Spec.TargetRevision)))
	case app.Status.Health == string(health.Healthy):
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonSynced,
			fmt.Sprintf("revision %s applied, %d objects healthy", shortRev(app.Status.Revision), len(st.inv.Entries)))
	default:
		msg := fmt.Sprintf("revision %s applied; health %s", shortRev(app.Status.Revision), app.Status.Health)
		if len(st.lastHealth) > 0 {
			msg += ": " + st.lastHealth[0].Result.Message
		}
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, app.Status.Health, msg)
	}
	after := interval
	if app.Status.Health == string(health.Progressing) {
		// Come back when the health timeout turns Progressing into Degraded.
		after = min(interval, 15*time.Second)
		if d := time.Until(st.healthSince.Add(appspec.HealthTimeout(app))); d > 0 && d < after {
			after = d + 100*time.Millisecond
		}
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

func conditionFor(h string) metav1.ConditionStatus {
	if h == string(health.Healthy) {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// settleWith finishes a reconcile that leaves the App OutOfSync.
func (r *AppReconciler) settleWith(app *tendv1.App, st *appState, interval time.Duration, reason, msg string) (ctrl.Result, error) {
	meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
	app.Status.Objects = int32(len(st.inv.Entries))
	setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	return ctrl.Result{RequeueAfter: interval}, nil
}

// checkDependencies reports what the App waits for ("" when nothing), or a
// dependency cycle.
func (r *AppReconciler) checkDependencies(ctx context.Context, app *tendv1.App) (msg string, cycle bool, err error) {
	if len(app.Spec.DependsOn) == 0 {
		return "", false, nil
	}
	self := app.Namespace + "/" + app.Name
	if path := r.findCycle(ctx, self, app, map[string]bool{}, []string{self}); path != nil {
		return "dependency cycle: " + strings.Join(path, " -> ") + "; remove one of these dependsOn entries", true, nil
	}
	var waits []string
	for _, d := range app.Spec.DependsOn {
		key := refKey(app.Namespace, d)
		ns, name, _ := strings.Cut(key, "/")
		var dep tendv1.App
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &dep); err != nil {
			if apierrors.IsNotFound(err) {
				waits = append(waits, fmt.Sprintf("App %s (in spec.dependsOn) does not exist; create it or remove the entry", key))
				continue
			}
			return "", false, err
		}
		if dep.Status.Health != string(health.Healthy) || dep.Status.Revision == "" {
			state := dep.Status.Health
			switch {
			case state == "":
				state = "not synced yet"
			case dep.Status.Revision == "":
				// It has applied nothing yet (every sync of it failed),
				// which its health alone does not show.
				state += " but has not synced successfully yet"
			}
			waits = append(waits, fmt.Sprintf("waiting for App %s to be Healthy (it is %s)", key, state))
		}
	}
	sort.Strings(waits)
	return strings.Join(waits, "; "), false, nil
}

// findCycle walks dependsOn from app and returns a path back to start.
func (r *AppReconciler) findCycle(ctx context.Context, start string, app *tendv1.App, seen map[string]bool, path []string) []string {
	for _, d := range app.Spec.DependsOn {
		key := refKey(app.Namespace, d)
		if key == start {
			return append(path, key)
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		ns, name, _ := strings.Cut(key, "/")
		var dep tendv1.App
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &dep); err != nil {
			continue
		}
		if p := r.findCycle(ctx, start, &dep, seen, append(path, key)); p != nil {
			return p
		}
	}
	return nil
}

func chartURL(src *tendv1.Source) string {
	switch {
	case src.Spec.Helm != nil:
		return src.Spec.Helm.URL
	case src.Spec.OCI != nil:
		return src.Spec.OCI.URL
	}
	return ""
}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// nextHistoryID is the ID of the next entry of app's sync history.
func nextHistoryID(app *tendv1.App) int64 {
	if len(app.Status.History) == 0 {
		return 1
	}
	return app.Status.History[0].ID + 1
}
