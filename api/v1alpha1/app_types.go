package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppSpec says what to deploy and how.
type AppSpec struct {
	// SourceRef names the Source to render from.
	SourceRef NamespacedObjectReference `json:"sourceRef"`
	// Path inside a git Source: a kustomization, a chart directory or plain
	// YAML. Defaults to the repository root.
	// +optional
	Path string `json:"path,omitempty"`
	// Recursive includes subdirectories of a plain YAML path.
	// +optional
	Recursive bool `json:"recursive,omitempty"`
	// Include keeps, of a plain YAML path, only the manifest files whose
	// path relative to path matches one of these globs: * matches any
	// characters, / included; ? one character; [a-z] a class; {a,b}
	// either (Argo CD's directory.include). Example: "{web,db}/*.yaml".
	// +optional
	Include []string `json:"include,omitempty"`
	// Exclude leaves out the manifest files of a plain YAML path whose
	// relative path matches one of these globs, even when included.
	// +optional
	Exclude []string `json:"exclude,omitempty"`
	// Chart names a chart in a Helm or OCI Source.
	// +optional
	Chart *ChartSpec `json:"chart,omitempty"`
	// Helm configures chart rendering (for spec.chart or a chart directory).
	// +optional
	Helm *HelmSpec `json:"helm,omitempty"`
	// Kustomize configures kustomize rendering.
	// +optional
	Kustomize *KustomizeSpec `json:"kustomize,omitempty"`
	// Sources are more Sources the App renders besides spec.sourceRef,
	// each with its own path, chart, Helm and kustomize options (Argo CD's
	// multi-source Applications map to them). The objects of all are one
	// set: applied together in one sync (kinds, waves and hooks ordered
	// across all), one inventory, pruned together. An object rendered by
	// two of them fails the render. The App's revision is its Sources'
	// revisions joined by ", " in order. Destination, post-build,
	// decryption and sync options are the App's. An App with sources is
	// not pinned: spec.targetRevision and spec.sync.autoRollback are
	// refused with them.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Sources []AppSource `json:"sources,omitempty"`
	// Decryption decrypts SOPS-encrypted files.
	// +optional
	Decryption *Decryption `json:"decryption,omitempty"`
	// Destination is where objects go.
	// +optional
	Destination Destination `json:"destination,omitempty"`
	// Project names a Project in the App's namespace whose rules the App
	// must keep (repositories, destinations, kinds, references to other
	// namespaces); checked before anything of a revision is applied. Empty:
	// no Project, no such rules.
	// +optional
	Project string `json:"project,omitempty"`
	// ServiceAccountName names a ServiceAccount in the App's namespace that
	// tend impersonates for every write of the App's objects (apply, prune,
	// hooks), so that the account's RBAC is what limits the App. Before a
	// sync, tend asks the API server whether the account may create,
	// patch and delete what the sync would touch; if not, nothing is
	// applied and the App's Ready condition names the object and the verb.
	// Empty: the controller's --default-service-account, or tend's own
	// identity when that is not set.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// DependsOn lists Apps that must be Healthy before this one syncs.
	// +optional
	DependsOn []NamespacedObjectReference `json:"dependsOn,omitempty"`
	// Sync policy.
	// +optional
	Sync SyncPolicy `json:"sync,omitempty"`
	// Health configures health assessment.
	// +optional
	Health HealthSpec `json:"health,omitempty"`
	// TargetRevision pins the App to a revision of its Source instead of
	// following it. Set by `tend rollback`; clear it to follow the Source
	// again.
	// +optional
	TargetRevision string `json:"targetRevision,omitempty"`
	// IgnoreDifferences leaves fields to others: tend neither applies nor
	// reports them.
	// +optional
	IgnoreDifferences []IgnoreDifference `json:"ignoreDifferences,omitempty"`
	// PostBuild substitutes variables (${name}) in the rendered objects,
	// as Flux's Kustomization spec.postBuild does.
	// +optional
	PostBuild *PostBuild `json:"postBuild,omitempty"`
	// Suspend stops syncing; nothing is applied or pruned.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// DeletionPolicy says what deleting the App does to its objects:
	// MirrorPrune (the default) deletes them when spec.sync.prune is set,
	// Delete always deletes them, Orphan leaves them in the cluster.
	// +optional
	// +kubebuilder:validation:Enum=MirrorPrune;Delete;Orphan
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
}

// AppSource is one more Source an App renders (spec.sources); its fields
// mean what the App's own fields of the same names mean.
type AppSource struct {
	// SourceRef names the Source to render from.
	SourceRef NamespacedObjectReference `json:"sourceRef"`
	// Path inside a git Source: a kustomization, a chart directory or plain
	// YAML. Defaults to the repository root.
	// +optional
	Path string `json:"path,omitempty"`
	// Recursive includes subdirectories of a plain YAML path.
	// +optional
	Recursive bool `json:"recursive,omitempty"`
	// Include keeps, of a plain YAML path, only the files matching one of
	// these globs (as the App's spec.include).
	// +optional
	Include []string `json:"include,omitempty"`
	// Exclude leaves out the files of a plain YAML path matching one of
	// these globs (as the App's spec.exclude).
	// +optional
	Exclude []string `json:"exclude,omitempty"`
	// Chart names a chart in a Helm or OCI Source.
	// +optional
	Chart *ChartSpec `json:"chart,omitempty"`
	// Helm configures chart rendering (for chart or a chart directory).
	// The release is named after the App unless helm.releaseName says
	// otherwise.
	// +optional
	Helm *HelmSpec `json:"helm,omitempty"`
	// Kustomize configures kustomize rendering.
	// +optional
	Kustomize *KustomizeSpec `json:"kustomize,omitempty"`
}

// Values of AppSpec.DeletionPolicy.
const (
	DeletionMirrorPrune = "MirrorPrune"
	DeletionDelete      = "Delete"
	DeletionOrphan      = "Orphan"
)

// DeletesObjects says whether deleting the App deletes its objects.
func (s *AppSpec) DeletesObjects() bool {
	switch s.DeletionPolicy {
	case DeletionDelete:
		return true
	case DeletionOrphan:
		return false
	}
	return s.Sync.Prune
}

// PostBuild substitutes ${name} in every rendered object with Flux's
// envsubst rules (${name:=default}, ${name:position}, ${name/from/to}, ...);
// objects annotated or labelled kustomize.toolkit.fluxcd.io/substitute:
// disabled are left as they are.
type PostBuild struct {
	// Substitute holds variables by name; it wins over SubstituteFrom.
	// +optional
	Substitute map[string]string `json:"substitute,omitempty"`
	// SubstituteFrom reads variables from the keys of ConfigMaps and
	// Secrets in the App's namespace, later ones winning.
	// +optional
	SubstituteFrom []SubstituteReference `json:"substituteFrom,omitempty"`
	// SubstituteStrategy: WithVariables (default) substitutes only when
	// some variable is defined; Always substitutes anyway (for defaults).
	// +kubebuilder:validation:Enum=WithVariables;Always
	// +optional
	SubstituteStrategy string `json:"substituteStrategy,omitempty"`
	// Strict fails the render when a variable without a default is not
	// defined, instead of substituting the empty string.
	// +optional
	Strict bool `json:"strict,omitempty"`
}

// SubstituteReference names a ConfigMap or Secret whose keys are
// variables.
type SubstituteReference struct {
	// Kind is ConfigMap or Secret.
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	Kind string `json:"kind"`
	// Name of the object, in the App's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Optional tolerates a missing object: no variables from it.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// ChartSpec names a chart in a chart repository or registry.
type ChartSpec struct {
	// Name of the chart.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Version is an exact version or a semver range; empty means latest.
	// +optional
	Version string `json:"version,omitempty"`
}

// HelmSpec configures Helm rendering.
type HelmSpec struct {
	// ReleaseName defaults to the App's name.
	// +optional
	ReleaseName string `json:"releaseName,omitempty"`
	// Values are inline values, merged last.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Values *apiextensionsv1.JSON `json:"values,omitempty"`
	// ValuesFiles are files relative to spec.path, merged in order after the
	// chart's own values.
	// +optional
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// ValuesFrom are Secrets, ConfigMaps and files of git Sources holding
	// values, merged in order after valuesFiles and before values.
	// +optional
	ValuesFrom []ValuesReference `json:"valuesFrom,omitempty"`
}

// ValuesReference names values held in a Secret, a ConfigMap, or a file of
// a git Source (Argo CD's multi-source `$values`).
type ValuesReference struct {
	// Kind is Secret, ConfigMap or Source.
	// +kubebuilder:validation:Enum=Secret;ConfigMap;Source
	Kind string `json:"kind"`
	// Name of the object, in the App's namespace.
	Name string `json:"name"`
	// Key holding YAML values; default "values.yaml". For a Source, the
	// path of a file in its current revision, relative to its root.
	// +optional
	Key string `json:"key,omitempty"`
	// Optional makes a missing object, key or file no error.
	// +optional
	Optional bool `json:"optional,omitempty"`
	// TargetPath, when set, places the key's content as one value at this
	// path of the values (Helm --set syntax, e.g. "auth.password" or
	// "hosts[0]"), instead of reading the key as a YAML map of values.
	// +optional
	TargetPath string `json:"targetPath,omitempty"`
}

// KustomizeSpec configures kustomize, and the overlay tend builds around
// whatever spec.path renders (plain YAML, a kustomization or a chart's
// output): the fields below other than allowRemoteBases are the fields of
// an in-memory kustomization whose only resource is that output, as
// Argo CD's and Flux's kustomize options are.
type KustomizeSpec struct {
	// AllowRemoteBases lets kustomizations load bases from URLs.
	// +optional
	AllowRemoteBases bool `json:"allowRemoteBases,omitempty"`
	// NamePrefix is prepended to every object's name (references to
	// renamed objects are updated), as kustomize's namePrefix.
	// +optional
	NamePrefix string `json:"namePrefix,omitempty"`
	// NameSuffix is appended to every object's name, as kustomize's
	// nameSuffix.
	// +optional
	NameSuffix string `json:"nameSuffix,omitempty"`
	// Namespace overrides the namespace of every namespaced object, as
	// kustomize's namespace (and Flux's targetNamespace).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Images change container images, as kustomize's images.
	// +optional
	Images []KustomizeImage `json:"images,omitempty"`
	// Patches are strategic-merge or JSON 6902 patches, as kustomize's
	// patches.
	// +optional
	Patches []KustomizePatch `json:"patches,omitempty"`
	// Components are kustomize components (kind Component), directories
	// relative to spec.path inside the same Source.
	// +optional
	Components []string `json:"components,omitempty"`
	// CommonLabels are added to every object's metadata.labels, not to
	// selectors or pod templates: kustomize's labels with includeSelectors
	// and includeTemplates false, as Flux's commonMetadata.labels and Argo
	// CD's labelWithoutSelector (not kustomize's commonLabels, which also
	// changes selectors).
	// +optional
	CommonLabels map[string]string `json:"commonLabels,omitempty"`
	// CommonAnnotations are added to every object and to pod templates, as
	// kustomize's commonAnnotations.
	// +optional
	CommonAnnotations map[string]string `json:"commonAnnotations,omitempty"`
	// Replicas set the replica count of workloads by name, as kustomize's
	// replicas.
	// +optional
	Replicas []KustomizeReplica `json:"replicas,omitempty"`
}

// KustomizeImage changes the images of containers whose image name is
// Name, as an entry of kustomize's images.
type KustomizeImage struct {
	// Name is the image name to match, without tag or digest.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// NewName replaces the image name.
	// +optional
	NewName string `json:"newName,omitempty"`
	// NewTag replaces the tag.
	// +optional
	NewTag string `json:"newTag,omitempty"`
	// Digest replaces the tag with a digest (sha256:...).
	// +optional
	Digest string `json:"digest,omitempty"`
}

// KustomizePatch is one entry of kustomize's patches: a strategic-merge
// patch (a YAML object) or a JSON 6902 patch (a YAML list of operations,
// which needs a target).
type KustomizePatch struct {
	// Patch is the patch itself, inline. Set patch or path.
	// +optional
	Patch string `json:"patch,omitempty"`
	// Path is a file holding the patch, relative to spec.path.
	// +optional
	Path string `json:"path,omitempty"`
	// Target selects the objects to patch; without it, a strategic-merge
	// patch applies to the object it names.
	// +optional
	Target *PatchTarget `json:"target,omitempty"`
}

// PatchTarget selects objects, as kustomize's patch target: every field
// set must match (name and namespace are regular expressions).
type PatchTarget struct {
	// Group of the objects.
	// +optional
	Group string `json:"group,omitempty"`
	// Version of the objects.
	// +optional
	Version string `json:"version,omitempty"`
	// Kind of the objects.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the objects (a regular expression).
	// +optional
	Name string `json:"name,omitempty"`
	// Namespace of the objects (a regular expression).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// LabelSelector the objects' labels match.
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`
	// AnnotationSelector the objects' annotations match.
	// +optional
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// KustomizeReplica sets the replicas of the workloads named Name.
type KustomizeReplica struct {
	// Name of the Deployment, StatefulSet, ReplicaSet or
	// ReplicationController.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Count of replicas.
	// +kubebuilder:validation:Minimum=0
	Count int64 `json:"count"`
}

// Decryption configures SOPS decryption.
type Decryption struct {
	// SecretRef names a Secret in the App's namespace whose keys ending in
	// ".agekey" (or the key "keys.txt", sops's age key file) hold age
	// identities and ".asc" hold armored OpenPGP private keys.
	SecretRef LocalObjectReference `json:"secretRef"`
}

// Destination is where an App's objects go.
// +kubebuilder:validation:XValidation:rule="!has(self.namespaceMetadata) || (has(self.createNamespace) && self.createNamespace)",message="namespaceMetadata needs createNamespace: tend labels only the Namespace it creates"
type Destination struct {
	// Namespace for namespaced objects that do not set one.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// CreateNamespace creates Namespace if it does not exist.
	// +optional
	CreateNamespace bool `json:"createNamespace,omitempty"`
	// NamespaceMetadata are labels and annotations tend keeps on the
	// Namespace it creates (Argo CD's managedNamespaceMetadata), on an
	// existing one too; removing one here removes it from the Namespace.
	// +optional
	NamespaceMetadata *NamespaceMetadata `json:"namespaceMetadata,omitempty"`
	// ClusterRef names a Cluster; the default is the cluster tend runs in.
	// +optional
	ClusterRef *LocalObjectReference `json:"clusterRef,omitempty"`
}

// NamespaceMetadata labels and annotates a created Namespace.
type NamespaceMetadata struct {
	// Labels of the Namespace, e.g. istio-injection: enabled.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations of the Namespace.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SyncPolicy says when and how to sync.
type SyncPolicy struct {
	// Manual makes the App wait for `tend sync` instead of syncing each
	// new revision; it reports OutOfSync meanwhile.
	// +optional
	Manual bool `json:"manual,omitempty"`
	// Prune deletes objects that left git.
	// +optional
	Prune bool `json:"prune,omitempty"`
	// SelfHeal re-applies objects changed in the cluster; without it, drift
	// is reported as OutOfSync.
	// +optional
	SelfHeal bool `json:"selfHeal,omitempty"`
	// AllowEmpty lets an empty render prune every object of the App.
	// +optional
	AllowEmpty bool `json:"allowEmpty,omitempty"`
	// ForceConflicts takes over fields other field managers own.
	// +optional
	ForceConflicts bool `json:"forceConflicts,omitempty"`
	// Recreate deletes and creates again an object whose change the API
	// server refuses because a field of it cannot change (a Job's
	// template, a Deployment's selector, a Service's clusterIP). Only an
	// object the API server would accept as new is deleted; tend waits for
	// it to be gone before creating it. Off, such a sync fails and names
	// the field; the annotation tend.dev/recreate: "true" turns it on for
	// one object.
	// +optional
	Recreate bool `json:"recreate,omitempty"`
	// Interval between full reconciliations (drift is seen at once anyway).
	// +kubebuilder:default="10m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// Retry of failed syncs.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
	// Windows allow or deny syncs at times.
	// +optional
	Windows []SyncWindow `json:"windows,omitempty"`
	// AutoRollback re-applies the previous healthy revision when health
	// turns Degraded within health.timeout after a sync.
	// +optional
	AutoRollback bool `json:"autoRollback,omitempty"`
}

// RetryPolicy retries failed syncs with exponential backoff.
type RetryPolicy struct {
	// Limit of retries per revision; 0 retries forever.
	// +optional
	Limit int32 `json:"limit,omitempty"`
	// Backoff is the first delay.
	// +kubebuilder:default="5s"
	// +optional
	Backoff metav1.Duration `json:"backoff,omitempty"`
	// MaxBackoff caps the delay.
	// +kubebuilder:default="5m"
	// +optional
	MaxBackoff metav1.Duration `json:"maxBackoff,omitempty"`
}

// SyncWindow allows or denies syncs during a recurring period.
type SyncWindow struct {
	// Kind is allow or deny. With allow windows, syncs happen only inside
	// one of them; deny windows block syncs inside them.
	// +kubebuilder:validation:Enum=allow;deny
	Kind string `json:"kind"`
	// Schedule is a cron expression (5 fields) for the window's start.
	Schedule string `json:"schedule"`
	// Duration of the window, e.g. 2h.
	Duration metav1.Duration `json:"duration"`
	// TimeZone of the schedule, an IANA name; default UTC.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
	// ManualSync allows `tend sync` while the window blocks automatic syncs.
	// +optional
	ManualSync bool `json:"manualSync,omitempty"`
}

// HealthSpec configures health assessment.
type HealthSpec struct {
	// Timeout after which an object still Progressing counts as Degraded.
	// +kubebuilder:default="5m"
	// +optional
	Timeout metav1.Duration `json:"timeout,omitempty"`
	// Rules are CEL health rules for kinds tend does not know.
	// +optional
	Rules []HealthRule `json:"rules,omitempty"`
	// Checks are further objects, not applied by the App, whose health
	// counts toward the App's as if it owned them (a Deployment another
	// tool creates from what the App applies, say). A missing one counts
	// as Missing. An App with a ServiceAccount must be allowed to get
	// them.
	// +optional
	Checks []HealthCheck `json:"checks,omitempty"`
}

// HealthCheck names one object whose health counts toward the App's.
type HealthCheck struct {
	// APIVersion of the object, e.g. apps/v1.
	APIVersion string `json:"apiVersion"`
	// Kind of the object.
	Kind string `json:"kind"`
	// Name of the object.
	Name string `json:"name"`
	// Namespace of a namespaced object; empty for cluster-scoped ones.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// HealthRule assesses a kind with CEL expressions over `object` (and over
// its top-level fields by name: `status`, `spec`, `metadata`).
type HealthRule struct {
	// Group of the kind ("" for core).
	// +optional
	Group string `json:"group,omitempty"`
	// Kind the rule applies to.
	Kind string `json:"kind"`
	// Healthy is a CEL expression; true means Healthy.
	// +optional
	Healthy string `json:"healthy,omitempty"`
	// Degraded is a CEL expression; true means Degraded (checked first).
	// +optional
	Degraded string `json:"degraded,omitempty"`
	// Progressing is a CEL expression; true means Progressing.
	// +optional
	Progressing string `json:"progressing,omitempty"`
	// Message is a CEL expression returning the status message.
	// +optional
	Message string `json:"message,omitempty"`
}

// IgnoreDifference leaves fields of matching objects to others.
type IgnoreDifference struct {
	// Group of matching objects ("" matches core and, with kind empty, any).
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of matching objects; empty matches any.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the matching object; empty matches any.
	// +optional
	Name string `json:"name,omitempty"`
	// Namespace of the matching object; empty matches any.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// JSONPointers (RFC 6901) to leave alone, e.g. /spec/replicas.
	// +optional
	JSONPointers []string `json:"jsonPointers,omitempty"`
	// JQPathExpressions are jq path expressions (as in Argo CD) selecting
	// fields to leave alone, e.g.
	// .spec.template.spec.containers[] | select(.name == "app") | .image.
	// +optional
	JQPathExpressions []string `json:"jqPathExpressions,omitempty"`
	// Managers whose fields to leave alone, e.g. an autoscaler.
	// +optional
	Managers []string `json:"managers,omitempty"`
}

// Sync states.
const (
	SyncSynced    = "Synced"
	SyncOutOfSync = "OutOfSync"
	SyncUnknown   = "Unknown"
	// SyncFailed: the newest revision failed to render or apply;
	// status.revision still names the last revision applied, which stays
	// in the cluster.
	SyncFailed = "Failed"
)

// AppStatus reports what tend did.
type AppStatus struct {
	// ObservedGeneration is the spec generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Sync is Synced, OutOfSync, Failed (the newest revision failed to
	// render or apply; revision names the last good one) or Unknown.
	// +optional
	Sync string `json:"sync,omitempty"`
	// Health is Healthy, Progressing, Degraded, Missing or Unknown.
	// +optional
	Health string `json:"health,omitempty"`
	// Revision last applied successfully.
	// +optional
	Revision string `json:"revision,omitempty"`
	// LastAttemptedRevision is the revision of the last sync attempt.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// Objects counts the objects the App owns.
	// +optional
	Objects int32 `json:"objects,omitempty"`
	// OutOfSync lists objects that differ from git (at most 50).
	// +optional
	OutOfSync []ObjectReference `json:"outOfSync,omitempty"`
	// History of the last 20 syncs, newest first.
	// +optional
	History []SyncRecord `json:"history,omitempty"`
	// NextSyncAllowedAt is when a sync window next allows a sync, while one
	// blocks it.
	// +optional
	NextSyncAllowedAt *metav1.Time `json:"nextSyncAllowedAt,omitempty"`
	// LastHandledRequest is the value of the tend.dev/requested-at
	// annotation tend last acted on (`tend sync` sets the annotation).
	// +optional
	LastHandledRequest string `json:"lastHandledRequest,omitempty"`
	// RolledBackRevision is a revision auto-rollback moved away from; tend
	// does not sync it again until the Source moves on.
	// +optional
	RolledBackRevision string `json:"rolledBackRevision,omitempty"`
	// Notified is what tend has told Notifiers about this App. It is kept
	// in status so that a restarted or failed-over controller neither
	// repeats a message nor loses a recovery.
	// +optional
	Notified *NotifiedStatus `json:"notified,omitempty"`
}

// NotifiedStatus records the notifications whose follow-up depends on
// what was told before.
type NotifiedStatus struct {
	// Failure is the revision whose failure (to render or to sync) was
	// told and whose recovery has not been told yet.
	// +optional
	Failure string `json:"failure,omitempty"`
	// RenderFailure identifies the render failure told last (a hash of the
	// revision and the error), so that it is told once.
	// +optional
	RenderFailure string `json:"renderFailure,omitempty"`
	// Drift identifies the set of drifted objects told last (a hash of
	// their names), so that it is told once.
	// +optional
	Drift string `json:"drift,omitempty"`
	// Degraded is true while health Degraded was told and its recovery
	// has not been told yet.
	// +optional
	Degraded bool `json:"degraded,omitempty"`
}

// ObjectReference names an object an App owns.
type ObjectReference struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// SyncRecord is one entry of the sync history.
type SyncRecord struct {
	// ID increases with each sync; `tend rollback APP ID` uses it.
	ID int64 `json:"id"`
	// Revision synced.
	Revision string `json:"revision"`
	// StartedAt is when the sync began.
	StartedAt metav1.Time `json:"startedAt"`
	// Duration of the sync.
	Duration metav1.Duration `json:"duration"`
	// Result is Succeeded or Failed.
	Result string `json:"result"`
	// Changed counts objects created, configured or pruned.
	Changed int32 `json:"changed"`
	// Message says what failed, or what triggered the sync.
	// +optional
	Message string `json:"message,omitempty"`
	// Healthy records whether the App became Healthy after this sync;
	// rollbacks pick healthy entries.
	// +optional
	Healthy bool `json:"healthy,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.status.sync`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.revision`
// +kubebuilder:printcolumn:name="Attempted",type=string,JSONPath=`.status.lastAttemptedRevision`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// App is a set of objects rendered from a Source and kept in a cluster.
type App struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AppSpec   `json:"spec,omitempty"`
	Status AppStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AppList is a list of Apps.
type AppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []App `json:"items"`
}
