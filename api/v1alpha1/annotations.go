package v1alpha1

// Annotations, labels and the finalizer tend reads and writes, on its own
// resources and on the objects it applies. The packages that act on them
// (internal/apply, internal/apply/secret, internal/controller,
// internal/livestate) refer to these names; users and other tools can
// import them from here.
const (
	// AnnotationRequestedAt, set to any new value on a Source or App, asks
	// tend to reconcile it now (push webhooks and `tend sync` set it).
	AnnotationRequestedAt = "tend.dev/requested-at"
	// AnnotationSyncOptions, with AnnotationRequestedAt, passes options of
	// a requested sync: a comma list of prune, force.
	AnnotationSyncOptions = "tend.dev/sync-options"
	// Finalizer makes tend prune an App's objects when the App is deleted
	// (only Apps with spec.sync.prune carry it).
	Finalizer = "tend.dev/prune-on-delete"
	// FinalizerPostDelete keeps a deleted App until the post-delete hooks
	// of its last synced revision have run (after its objects were
	// pruned). tend adds it while that revision has such hooks, whatever
	// the App's prune setting, as Argo CD adds its post-delete finalizer.
	FinalizerPostDelete = "tend.dev/post-delete-hooks"
	// AnnotationAdoptFrom, on an App, names the Argo CD Application or
	// Flux Kustomization or HelmRelease it replaces, as
	// "<Kind>.<group>/<namespace>/<name>" (tend migrate writes it). An App
	// that has never synced and has no inventory starts with what that
	// object recorded as applied, when it is still in the cluster.
	AnnotationAdoptFrom = "tend.dev/adopt-from"
	// AnnotationApprovedFreight, on a Stage with spec.approval, names the
	// freight (a name from its Warehouse's status.freight) the Stage may
	// promote: `tend promote approve` sets it. Naming older freight rolls
	// the Stage back to it.
	AnnotationApprovedFreight = "tend.dev/approved-freight"
	// AnnotationApprovedBy, on a Stage, names who approved its approved
	// freight (`tend promote approve` writes the user the cluster knows
	// it as); the promotion's status.freight.by says it.
	AnnotationApprovedBy = "tend.dev/approved-by"
	// LabelStage and LabelFreight name, on a verification Job, its Stage
	// and the freight it verifies.
	LabelStage   = "tend.dev/stage"
	LabelFreight = "tend.dev/freight"
	// LabelAppSet names, on an App, the AppSet that generated it.
	LabelAppSet = "tend.dev/appset"

	// AnnotationOwner records the App ("namespace/name") that applied an
	// object.
	AnnotationOwner = "tend.dev/owner"
	// AnnotationWave orders objects into waves (an integer, default 0).
	AnnotationWave = "tend.dev/wave"
	// AnnotationHook makes an object a hook: pre-sync, post-sync,
	// sync-fail or post-delete.
	AnnotationHook = "tend.dev/hook"
	// AnnotationHookDeletePolicy is a comma list of before-create,
	// on-success, on-failure.
	AnnotationHookDeletePolicy = "tend.dev/hook-delete-policy"
	// AnnotationPostDeleteRun, on a post-delete hook tend created, names
	// the deletion it runs for: "<App UID>@<revision>". A restarted
	// controller finds the hook by it instead of creating it again.
	AnnotationPostDeleteRun = "tend.dev/post-delete-run"
	// AnnotationHookRun, on a pre-sync, post-sync or sync-fail hook tend
	// created, names the sync attempt and phase it ran for:
	// "<App UID>@<revision>#<id>/<phase>", id being the sync history entry
	// the attempt will write. A controller
	// restarted in the middle of that sync finds the hook by it and waits
	// for it instead of running it a second time.
	AnnotationHookRun = "tend.dev/hook-run"
	// AnnotationPrune set to "disabled" keeps an object when it leaves git.
	AnnotationPrune = "tend.dev/prune"
	// AnnotationForceConflicts set to "true" takes over fields other
	// managers own.
	AnnotationForceConflicts = "tend.dev/force-conflicts"
	// AnnotationRecreate set to "true" on an object deletes and creates it
	// again when the API server refuses a change to an immutable field of
	// it (the App's spec.sync.recreate, for one object).
	AnnotationRecreate = "tend.dev/recreate"
	// AnnotationIgnoredFields lists, as a JSON array of JSON pointers, the
	// fields of an applied object its App's ignoreDifferences leave to
	// others; drift detection leaves them out.
	AnnotationIgnoredFields = "tend.dev/ignored-fields"

	// AnnotationGenerate lists the keys of a Secret tend generates: a comma
	// list of key or key=length, e.g. "password, api-key=48".
	AnnotationGenerate = "tend.dev/generate"
	// AnnotationGenerateFormat is alnum (default), hex or base64.
	AnnotationGenerateFormat = "tend.dev/generate-format"
	// AnnotationRotateRequestedAt, set to a new value (`tend secret rotate`
	// sets the time), asks for new values at the next sync.
	AnnotationRotateRequestedAt = "tend.dev/rotate-requested-at"
	// AnnotationRotateKeys limits a rotation to some keys (a comma list).
	AnnotationRotateKeys = "tend.dev/rotate-keys"
	// AnnotationRotatedAt is the last rotation request tend handled.
	AnnotationRotatedAt = "tend.dev/rotated-at"
	// AnnotationReplicateTo is a label selector of the namespaces a Secret
	// is copied into.
	AnnotationReplicateTo = "tend.dev/replicate-to"
	// AnnotationReplicaOf, on a copy, names its source: "namespace/name".
	AnnotationReplicaOf = "tend.dev/replica-of"
	// AnnotationReplicaOwner, on a copy, names the App that applied its
	// source: "namespace/name". A controller scoped to some namespaces
	// deletes the copies of a gone source only when this App is in one.
	AnnotationReplicaOwner = "tend.dev/replica-owner"
	// LabelReplicate marks the Secrets replication watches.
	LabelReplicate = "tend.dev/replicate"
	// LabelProject, on a Namespace, names the Project (in that namespace)
	// of every App there whose spec.project is empty: a team cannot leave
	// its Project by leaving spec.project out.
	LabelProject = "tend.dev/project"
)
