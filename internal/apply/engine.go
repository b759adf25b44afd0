// Package apply plans and runs a sync: it sorts an App's rendered objects
// into hooks and ordered steps (Namespaces and CRDs first, then waves),
// applies them with server-side apply as field manager "tend", waits for
// each step to be healthy, runs hooks, prunes what left git, and records an
// inventory of what the App owns.
//
// The inventory makes the steady state free: for each object it keeps a
// hash of what tend last applied and the live object's ownership
// fingerprint right after (see livestate.Fingerprint). A re-sync with the
// same rendered objects and unchanged fingerprints in the watch cache sends
// no request at all: no apply, no dry-run, no GET.
package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tend-gitops/tend/internal/apply/secret"
	"github.com/tend-gitops/tend/internal/diff"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/livestate"
)

// FieldManager is the server-side apply field manager tend writes as.
const FieldManager = "tend"

// AppRef names the App a sync is for.
type AppRef struct{ Namespace, Name string }

func (a AppRef) String() string { return a.Namespace + "/" + a.Name }

// LiveState is the watch cache the engine reads live objects from.
type LiveState interface {
	// Watch starts caching a kind; it returns once the cache is synced.
	Watch(ctx context.Context, gvk schema.GroupVersionKind) error
	// Get returns a cached object; callers must not modify it.
	Get(gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, bool)
	// Observe records an object the engine just wrote.
	Observe(obj *unstructured.Unstructured)
}

// HealthChecker assesses one object.
type HealthChecker interface {
	Check(obj *unstructured.Unstructured) health.Result
}

// Fingerprinter returns an object's ownership fingerprint for a manager.
type Fingerprinter func(obj *unstructured.Unstructured, manager string) string

// Engine runs syncs against one cluster. It is safe for concurrent syncs of
// different Apps.
type Engine struct {
	Dynamic     dynamic.Interface
	Mapper      meta.RESTMapper
	Live        LiveState
	Health      HealthChecker
	Inventory   InventoryStore
	Fingerprint Fingerprinter
	Log         *slog.Logger
	// Concurrency bounds parallel applies within a step (default 8).
	Concurrency int
	// MaxInflight bounds the applies in flight across all syncs of this
	// Engine (default DefaultMaxInflight). Many Apps syncing at once (a
	// cold start) would otherwise queue hundreds of writes in the
	// apiserver, where they wait until they time out.
	MaxInflight int
	// MaxSyncs bounds the syncs working at once (default DefaultMaxSyncs);
	// more wait for a turn before they start. A sync waiting for health, a
	// hook or a deletion gives its turn up while it waits. Without a bound,
	// a cold start of 1,000 Apps ran 1,000 syncs at once, each holding its
	// objects while queueing for MaxInflight, each long enough for its App
	// to show a syncing status first.
	MaxSyncs int
	// PollInterval is how often waits look at the watch cache (default 200ms).
	PollInterval time.Duration

	inflight slots // MaxInflight
	syncs    slots // MaxSyncs
	// parent is the Engine this one was made from by As: its slots are
	// the ones taken.
	parent *Engine
}

// Request is one sync of one App.
type Request struct {
	App      AppRef
	Revision string
	// Objects are the rendered objects, already validated.
	Objects []*unstructured.Unstructured
	// Prune deletes objects that were applied before and are not in Objects.
	Prune bool
	// AllowEmpty lets a render with no objects prune everything.
	AllowEmpty bool
	// CreateNamespace names a Namespace created before anything else when
	// it does not exist (spec.destination.createNamespace). As with Argo
	// CD's CreateNamespace and Helm's --create-namespace, the App does not
	// own it: several Apps may deploy into it, and no prune deletes it.
	CreateNamespace string
	// NamespaceLabels and NamespaceAnnotations are kept on CreateNamespace
	// (spec.destination.namespaceMetadata), server-side applied when they
	// changed since tend last applied them.
	NamespaceLabels, NamespaceAnnotations map[string]string
	// Deleting says the App is being deleted (Objects is empty, Prune and
	// AllowEmpty set): objects annotated argocd.argoproj.io/sync-options:
	// Delete=false are left in the cluster, as Argo CD leaves them.
	Deleting bool
	// ForceConflicts takes over fields other managers own, for every object.
	ForceConflicts bool
	// Recreate deletes and creates again an object whose change the API
	// server refuses as invalid (an immutable field changed), when it
	// accepts the object as a new one; for every object, where the
	// annotations AnnotationRecreate, kustomize.toolkit.fluxcd.io/force:
	// enabled and argocd.argoproj.io/sync-options: Force=true,Replace=true
	// ask it for one.
	Recreate bool
	// TakeOver, when set, makes tend the sole manager of the fields it
	// applies that the listed managers (Argo CD, Flux, Helm, kubectl apply)
	// set before, without changing a value; see TakeOver. Objects the sync
	// does not apply (unchanged since the last sync) are not touched.
	TakeOver *TakeOver
	// Ignore leaves fields to others (an App's ignoreDifferences): they are
	// neither applied (see diff.Ignore.ForApply) nor a reason to apply.
	Ignore *diff.Ignore
	// Force re-applies every object even when the inventory says it is
	// unchanged.
	Force bool
	// DryRun sends every apply as a server-side dry run; nothing changes,
	// no hooks run, nothing is pruned or recorded.
	DryRun bool
	// HookRun names this sync attempt (see AnnotationHookRun): a hook
	// found in the cluster carrying it was created by this attempt before
	// a restart cut it off, and is waited for instead of being deleted and
	// created again, so that a hook Job runs once. Empty: every sync runs
	// its hooks anew.
	HookRun string
	// HealthTimeout bounds each wait for a step or hook (default 5m).
	HealthTimeout time.Duration
	// Health, when set, assesses this App's objects in place of the
	// Engine's checker (an App's own health rules).
	Health HealthChecker
	// Owners are the UIDs of the objects that own the App. One of them
	// among the App's own objects (a Flux Kustomization that applies its
	// own definition, as `flux bootstrap` sets up) has the App's health:
	// it counts as Healthy instead of being waited for.
	Owners []types.UID
	// HealthChecks are objects the App does not apply whose health counts
	// toward its own (spec.health.checks): Sync and PreviewFrom watch
	// their kinds, Assess reads them.
	HealthChecks []Checked
	// WaitHealthy makes the sync wait for the last step to be healthy too
	// (it always waits when there are post-sync hooks).
	WaitHealthy bool
	// Progress, when set, is told about each step as it happens.
	Progress func(Event)
	// Inventory, when set, is the App's inventory as the caller last
	// loaded or saved it; Sync then does not read it from the store. If
	// another writer saved it since, Sync merges both when it saves.
	Inventory *Inventory
	// Started, when set, is called once, when the sync gets its turn (see
	// Engine.MaxSyncs) and begins to work.
	Started func()
	// ObjectsFunc, when set, replaces Objects: Sync calls it once the sync
	// has its turn (PreviewFrom at once), and the objects it returns are
	// the Engine's to modify, not copied. A caller with many syncs waiting
	// for a turn uses it so that they do not all hold their objects
	// meanwhile.
	ObjectsFunc func() []*unstructured.Unstructured
}

// objects returns the request's objects for the Engine to modify: those
// ObjectsFunc makes, or copies of Objects (callers' objects may be shared,
// a render cache's).
func (req *Request) objects() []*unstructured.Unstructured {
	if req.ObjectsFunc != nil {
		return req.ObjectsFunc()
	}
	objs := make([]*unstructured.Unstructured, len(req.Objects))
	for i, o := range req.Objects {
		objs[i] = o.DeepCopy()
	}
	return objs
}

// Event reports progress.
type Event struct {
	Step    string
	Object  ObjectRef
	Action  Action
	Message string
}

// Action is what happened to an object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured"
	// Recreated: deleted and created again, a field of it being
	// immutable (Request.Recreate).
	Recreated  Action = "recreated"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
	Failed     Action = "failed"
	HookRun    Action = "hook-succeeded"
	HookFailed Action = "hook-failed"
	Skipped    Action = "skipped"
	Kept       Action = "kept" // left in the cluster when it left git
)

// ObjectResult is the outcome for one object.
type ObjectResult struct {
	Ref     ObjectRef
	Action  Action
	Message string
}

// Result is the outcome of a sync.
type Result struct {
	Objects []ObjectResult
	// Changed counts objects created, configured, recreated or pruned.
	Changed int
	// Warnings are things the user should know that did not fail the sync,
	// e.g. fields left to another manager.
	Warnings []string
	// Inventory after the sync.
	Inventory *Inventory
	// InventoryMerged is set when another writer had saved the inventory
	// since Request.Inventory was read: the saved one merges both, and
	// may hold objects this sync did not consider for pruning; sync again.
	InventoryMerged bool
}

func (r *Result) add(ref ObjectRef, a Action, msg string) {
	r.Objects = append(r.Objects, ObjectResult{Ref: ref, Action: a, Message: msg})
	if a == Created || a == Configured || a == Recreated || a == Pruned {
		r.Changed++
	}
}

// SyncError is a failed sync; Result still says what happened before.
type SyncError struct {
	Step string
	Err  error
}

func (e *SyncError) Error() string {
	if e.Step == "" {
		return e.Err.Error()
	}
	return e.Step + ": " + e.Err.Error()
}
func (e *SyncError) Unwrap() error { return e.Err }

func (e *Engine) defaults() {
	if e.Concurrency <= 0 {
		e.Concurrency = 8
	}
	if e.PollInterval <= 0 {
		e.PollInterval = 200 * time.Millisecond
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
}

// Sync applies req. It returns a Result even on error, saying what was done.
func (e *Engine) Sync(ctx context.Context, req Request) (*Result, error) {
	e.defaults()
	if req.HealthTimeout <= 0 {
		req.HealthTimeout = 5 * time.Minute
	}
	res := &Result{}
	if err := e.takeTurn(ctx); err != nil {
		return res, err
	}
	turn := &turn{e: e, held: true}
	defer turn.give()
	if req.Started != nil {
		req.Started()
	}
	objs := req.objects()
	inv := req.Inventory
	if inv == nil {
		var err error
		if inv, err = e.Inventory.Load(ctx, req.App); err != nil {
			return res, err
		}
	}
	res.Inventory = inv
	if len(objs) == 0 && len(inv.Entries) > 0 && !req.AllowEmpty {
		return res, &SyncError{Err: fmt.Errorf("render returned no objects; not pruning the %d objects the App owns (set allowEmpty if emptying the App is intended)", len(inv.Entries))}
	}
	plan, err := NewPlan(objs, len(inv.Entries) > 0)
	if err != nil {
		return res, &SyncError{Err: err}
	}
	for _, o := range plan.Skipped {
		res.add(RefOf(o), Skipped, "hook not run in this sync")
	}
	s := &syncRun{e: e, req: req, plan: plan, old: inv, next: inv.Clone(), res: res, turn: turn}
	s.next.Revision = req.Revision
	err = s.run(ctx)
	if !req.DryRun && !s.next.Equal(inv) {
		saved, merged, serr := e.save(ctx, req.App, inv, s.next, plan.All())
		if serr != nil {
			err = errors.Join(err, serr)
		} else {
			res.Inventory, res.InventoryMerged = saved, merged
		}
	}
	return res, err
}

// save stores next, the inventory after a sync that started from old. If
// another writer saved the inventory in between, it merges (see
// mergeInventories) and saves again over that writer's version.
func (e *Engine) save(ctx context.Context, app AppRef, old, next *Inventory, planned []*unstructured.Unstructured) (saved *Inventory, merged bool, err error) {
	err = e.Inventory.Save(ctx, app, next)
	if !errors.Is(err, ErrInventoryChanged) {
		return next, false, err
	}
	theirs, lerr := e.Inventory.Load(ctx, app)
	if lerr != nil {
		return nil, false, errors.Join(err, lerr)
	}
	inPlan := make(map[ObjectRef]bool, len(planned))
	for _, o := range planned {
		inPlan[RefOf(o)] = true
	}
	out := mergeInventories(old, next, theirs, inPlan)
	if err := e.Inventory.Save(ctx, app, out); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// mergeInventories is a three-way merge of the inventory a sync started
// from (old), the one it produced (next) and the one another writer
// stored meanwhile (theirs); the result has theirs' stored version. What
// this sync applied or pruned wins; for the rest, theirs decides, except
// that an object this sync wants (inPlan) stays: the next preview checks
// it against the cluster.
func mergeInventories(old, next, theirs *Inventory, inPlan map[ObjectRef]bool) *Inventory {
	out := theirs.Clone()
	out.Revision = next.Revision
	for ref, e := range next.Entries {
		if o, had := old.Entries[ref]; had && o == e {
			if _, kept := theirs.Entries[ref]; kept || !inPlan[ref] {
				continue // untouched here: as theirs has it, or not
			}
		}
		out.Entries[ref] = e
	}
	for ref := range old.Entries {
		if _, still := next.Entries[ref]; !still {
			delete(out.Entries, ref) // pruned or let go here
		}
	}
	return out
}

// syncRun is the state of one Sync call.
type syncRun struct {
	e    *Engine
	req  Request
	plan *Plan
	old  *Inventory
	next *Inventory
	res  *Result
	turn *turn
	mu   sync.Mutex
}

// turn is a sync's hold on one of the Engine's sync turns.
type turn struct {
	e    *Engine
	held bool
}

func (t *turn) give() {
	if t.held {
		t.held = false
		t.e.root().syncs.give()
	}
}

// pause waits one poll interval, letting another sync work meanwhile, and
// takes a turn again before it returns. An error (ctx ended) means the
// sync has no turn.
func (s *syncRun) pause(ctx context.Context) error {
	if s.turn != nil {
		s.turn.give()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.e.PollInterval):
	}
	if s.turn == nil {
		return nil
	}
	if err := s.e.takeTurn(ctx); err != nil {
		return err
	}
	s.turn.held = true
	return nil
}

func (s *syncRun) progress(step string, ref ObjectRef, a Action, msg string) {
	s.mu.Lock()
	s.res.add(ref, a, msg)
	s.mu.Unlock()
	if s.req.Progress != nil {
		s.req.Progress(Event{Step: step, Object: ref, Action: a, Message: msg})
	}
}

func (s *syncRun) run(ctx context.Context) error {
	// Watch every kind involved (cheap after the first sync), so that
	// ownership, change detection and health read the cache.
	if err := s.watchKinds(ctx, append(s.plan.All(), checkedStubs(s.req.HealthChecks)...), false); err != nil {
		return err
	}
	owned, err := s.prepare(ctx)
	if err != nil {
		return err
	}
	prune := s.pruneCandidates()
	nsStale, err := s.namespaceStale(ctx)
	if err != nil {
		return err
	}
	if !s.req.Force && len(owned) == 0 && len(prune) == 0 && !nsStale {
		return nil // nothing to do: steady state
	}
	if err := s.ensureNamespace(ctx, nsStale); err != nil {
		return err
	}
	steps := s.plan.Steps
	// Namespaces and CRDs come before pre-sync hooks: a hook Job needs its
	// namespace, and may use a custom resource.
	if len(steps) > 0 && steps[0].Prerequisites && len(s.plan.PreSync) > 0 {
		if err := s.runStep(ctx, steps[0], owned, false); err != nil {
			return err
		}
		steps = steps[1:]
	}
	if !s.req.DryRun {
		if err := s.runHooks(ctx, PreSync, s.plan.PreSync); err != nil {
			s.runFailHooks(ctx)
			return &SyncError{Step: "pre-sync hooks", Err: err}
		}
	}
	for i, step := range steps {
		if err := s.runStep(ctx, step, owned, i == len(steps)-1); err != nil {
			return err
		}
	}
	return s.finish(ctx, prune)
}

// runStep applies one step and waits for it as the request says.
func (s *syncRun) runStep(ctx context.Context, step Step, owned map[ObjectRef]string, last bool) error {
	if err := s.applyStep(ctx, step, owned); err != nil {
		s.runFailHooks(ctx)
		return &SyncError{Step: step.Name, Err: err}
	}
	if s.req.DryRun || (last && !s.req.WaitHealthy && len(s.plan.PostSync) == 0) {
		return nil
	}
	if err := s.waitHealthy(ctx, step.Name, step.Objects); err != nil {
		s.runFailHooks(ctx)
		return &SyncError{Step: step.Name, Err: err}
	}
	if step.Prerequisites {
		if err := s.waitServed(ctx, s.plan.All()); err != nil {
			return &SyncError{Step: step.Name, Err: err}
		}
	}
	return nil
}

// finish prunes and runs post-sync hooks.
func (s *syncRun) finish(ctx context.Context, prune []ObjectRef) error {
	if s.req.Prune {
		if err := s.prune(ctx, prune); err != nil {
			return &SyncError{Step: "prune", Err: err}
		}
	} else if len(prune) > 0 {
		s.res.Warnings = append(s.res.Warnings, fmt.Sprintf("%d objects left git but pruning is off; they stay in the cluster", len(prune)))
	}
	if !s.req.DryRun {
		if err := s.runHooks(ctx, PostSync, s.plan.PostSync); err != nil {
			s.runFailHooks(ctx)
			return &SyncError{Step: "post-sync hooks", Err: err}
		}
	}
	return nil
}

// prepare adds the owner annotation to every object, refuses objects another
// App owns, and returns the objects that need applying (keyed by ref), with
// the desired hash of each.
func (s *syncRun) prepare(ctx context.Context) (map[ObjectRef]string, error) {
	need := map[ObjectRef]string{}
	var errs []error
	s.annotateOwner()
	for _, o := range s.plan.All() {
		ref := RefOf(o)
		h, apply, err := s.check(o)
		switch {
		case err != nil:
			errs = append(errs, err)
		case apply:
			need[ref] = h
		}
	}
	if len(errs) > 0 {
		return nil, &SyncError{Err: joinErrors(errs)}
	}
	return need, nil
}

// AnnotationNamespaceMetadataPrefix starts the annotation with which a
// Namespace records, per App, a hash of the labels and annotations the App
// last applied to it (spec.destination.namespaceMetadata), so that a
// change, a removal included, is applied once and a steady state costs
// nothing. The key's name is a hash of the App's namespace and name.
const AnnotationNamespaceMetadataPrefix = "namespace-metadata.tend.dev/"

// namespaceMetadataKey is the App's annotation key on the Namespace.
func (s *syncRun) namespaceMetadataKey() string {
	sum := sha256.Sum256([]byte(s.req.App.String()))
	return AnnotationNamespaceMetadataPrefix + hex.EncodeToString(sum[:8])
}

// namespaceManager is the field manager of the App's Namespace metadata:
// one per App, so that Apps sharing a Namespace each keep their own labels
// and removing one from an App does not remove another App's.
func (s *syncRun) namespaceManager() string {
	m := FieldManager + "/" + s.req.App.String()
	if len(m) > 128 {
		m = FieldManager + "/" + strings.TrimPrefix(s.namespaceMetadataKey(), AnnotationNamespaceMetadataPrefix)
	}
	return m
}

// namespaceMetadataHash is the value of the App's annotation for the
// request's metadata, "" when it has none.
func (s *syncRun) namespaceMetadataHash() string {
	if len(s.req.NamespaceLabels) == 0 && len(s.req.NamespaceAnnotations) == 0 {
		return ""
	}
	b, _ := json.Marshal([]map[string]string{s.req.NamespaceLabels, s.req.NamespaceAnnotations})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// namespaceStale reports whether the Namespace tend creates lacks the
// labels and annotations it should carry (or carries ones removed from
// the App), from the watch cache.
func (s *syncRun) namespaceStale(ctx context.Context) (bool, error) {
	name := s.req.CreateNamespace
	if name == "" || s.req.DryRun || s.req.Deleting {
		return false, nil // a deleted App leaves the Namespace as it is
	}
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	if err := s.e.Live.Watch(ctx, gvk); err != nil {
		return false, err
	}
	live, ok := s.e.Live.Get(gvk, "", name)
	if !ok || live.GetDeletionTimestamp() != nil {
		return false, nil // created by ensureNamespace when needed
	}
	return live.GetAnnotations()[s.namespaceMetadataKey()] != s.namespaceMetadataHash(), nil
}

// ensureNamespace creates Request.CreateNamespace if it does not exist,
// without an owner: it is not part of the App. With namespace metadata, or
// when the metadata changed (stale), it server-side applies the Namespace
// with it instead.
func (s *syncRun) ensureNamespace(ctx context.Context, stale bool) error {
	name := s.req.CreateNamespace
	// A deleted App's prune never creates its namespace.
	if name == "" || s.req.DryRun || s.req.Deleting {
		return nil
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := s.e.Live.Watch(ctx, ns.GroupVersionKind()); err != nil {
		return err
	}
	live, exists := s.e.Live.Get(ns.GroupVersionKind(), "", name)
	exists = exists && live.GetDeletionTimestamp() == nil
	hash := s.namespaceMetadataHash()
	if exists && !stale {
		return nil
	}
	ri, _, err := s.e.resourceFor(ns)
	if err != nil {
		return err
	}
	if hash == "" && !exists {
		if _, err := ri.Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return &SyncError{Step: "namespace", Err: fmt.Errorf("creating Namespace %s (spec.destination.createNamespace): %s", name, serverMessage(err))}
		}
		s.progress("namespace", RefOf(ns), Created, "spec.destination.createNamespace")
		return nil
	}
	// Applied with only what the App keeps, under its own field manager:
	// labels and annotations removed from the App leave the Namespace with
	// that manager's ownership.
	ns.SetLabels(s.req.NamespaceLabels)
	annotations := maps.Clone(s.req.NamespaceAnnotations)
	if hash != "" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[s.namespaceMetadataKey()] = hash
	}
	ns.SetAnnotations(annotations)
	if _, err := ri.Apply(ctx, name, ns, metav1.ApplyOptions{FieldManager: s.namespaceManager(), Force: true}); err != nil {
		return &SyncError{Step: "namespace", Err: fmt.Errorf("applying Namespace %s (spec.destination.namespaceMetadata): %s", name, serverMessage(err))}
	}
	action := Configured
	if !exists {
		action = Created
	}
	s.progress("namespace", RefOf(ns), action, "spec.destination.namespaceMetadata")
	return nil
}

// annotateOwner adds the owner annotation to every object and hook.
func (s *syncRun) annotateOwner() {
	for _, o := range append(s.plan.All(), hookObjects(s.plan)...) {
		setAnnotation(o, AnnotationOwner, s.req.App.String())
	}
}

// check decides whether o (already annotated with its owner) needs
// applying, from the watch cache and the inventory: it refuses an object
// another App owns or a Secret it must not touch, prepares a Secret's
// generated values, and returns the hash the inventory records for o.
func (s *syncRun) check(o *unstructured.Unstructured) (hash string, apply bool, err error) {
	ref := RefOf(o)
	live, ok := s.e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
	if ok {
		if owner := live.GetAnnotations()[AnnotationOwner]; owner != "" && owner != s.req.App.String() {
			return "", false, &OwnershipError{Ref: ref, Owner: owner}
		}
	}
	isSecret := secret.IsSecret(o)
	if isSecret {
		if msg := refuseReplica(live); msg != "" {
			return "", false, fmt.Errorf("%s %s", ref, msg)
		}
		// The markers are part of what tend applies (and hashes);
		// generated values are not: they are added at apply time.
		if err := secret.Prepare(o); err != nil {
			return "", false, fmt.Errorf("%s: %v", ref, err)
		}
	}
	hashed := o
	if s.req.Ignore.Matches(o) {
		// Ignored fields are not what git decides: a change to one is
		// no reason to apply.
		hashed = s.req.Ignore.Strip(o)
	}
	h, err := hashObject(hashed)
	if err != nil {
		return "", false, err
	}
	entry, had := s.old.Entries[ref]
	if !s.req.Force && had && ok && entry.Desired == h && entry.Fingerprint == s.e.Fingerprint(live, FieldManager) && entry.Fingerprint != "" &&
		!(isSecret && secret.NeedsValues(o, live)) {
		return h, false, nil
	}
	return h, true, nil
}

// joinedErrors are several objects' errors: sorted by message, joined by
// "; ", each reachable with errors.As.
type joinedErrors []error

func joinErrors(errs []error) error {
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return joinedErrors(errs)
}

func (e joinedErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedErrors) Unwrap() []error { return e }

// OwnershipError is an object another App owns: a sync refuses it until one
// of the two Apps stops declaring it. Retrying does not help.
type OwnershipError struct {
	Ref   ObjectRef
	Owner string
}

func (e *OwnershipError) Error() string {
	return fmt.Sprintf("%s is owned by App %s; an object can belong to one App only: remove it from one of them", e.Ref, e.Owner)
}

func hookObjects(p *Plan) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, hs := range [][]Hook{p.PreSync, p.PostSync, p.SyncFail} {
		for _, h := range hs {
			out = append(out, h.Object)
		}
	}
	return out
}

// hashObject hashes the object tend is about to apply.
func hashObject(o *unstructured.Unstructured) (string, error) {
	b, err := json.Marshal(o.Object) // encoding/json sorts map keys
	if err != nil {
		return "", fmt.Errorf("%s: %w", describe(o), err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

func (s *syncRun) watchKinds(ctx context.Context, objs []*unstructured.Unstructured, tolerateUnserved bool) error {
	seen := map[schema.GroupVersionKind]bool{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if seen[gvk] {
			continue
		}
		seen[gvk] = true
		if err := s.e.Live.Watch(ctx, gvk); err != nil {
			if meta.IsNoMatchError(err) || isNotServed(err) {
				// A kind whose CRD this sync creates: watched after the
				// CRD step.
				continue
			}
			return fmt.Errorf("watch %s: %w", gvk, err)
		}
	}
	return nil
}

// isNotServed recognises a kind the cluster does not serve (yet).
func isNotServed(err error) bool { return errors.Is(err, livestate.ErrKindNotServed) }
