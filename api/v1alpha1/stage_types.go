package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StageSpec says which Warehouse's freight a stage takes and how it writes
// it into git. A Stage promotes each new piece of freight of its Warehouse
// as it is found: it commits the updates to its git Source's branch, and
// the Apps that render that branch roll it out.
type StageSpec struct {
	// Warehouse names the Warehouse, in the Stage's namespace, whose
	// newest freight the Stage promotes (without upstream), or whose
	// freight its upstream Stage passes on.
	Warehouse LocalObjectReference `json:"warehouse"`
	// Upstream makes the Stage take the freight another Stage of the same
	// Warehouse runs, once it passed there: that Stage's Apps ran it
	// Healthy for the soak time and its verification succeeded. Without
	// upstream, the Stage takes its Warehouse's newest freight.
	// +optional
	Upstream *StageUpstream `json:"upstream,omitempty"`
	// Apps names the Apps, in the Stage's namespace, that roll out what
	// the Stage commits. A promotion is done when each of them synced a
	// revision that holds the promotion commit and is Healthy; only then
	// does verification run and downstream Stages take the freight.
	// Before a push, each App that renders spec.git.sourceRef is rendered
	// from the changed files: a change that would not render is not
	// pushed.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	Apps []LocalObjectReference `json:"apps,omitempty"`
	// Verification runs once the Stage's Apps run a promotion Healthy;
	// the freight passes on to downstream Stages only when it succeeds.
	// +optional
	Verification *StageVerification `json:"verification,omitempty"`
	// Git is where promotions are committed.
	Git StageGit `json:"git"`
	// Updates write the freight's versions into files of the repository,
	// all in one commit.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	Updates []StageUpdate `json:"updates"`
	// Approval makes the Stage promote only the freight approved for it:
	// the one its tend.dev/approved-freight annotation names (`tend
	// promote approve STAGE [FREIGHT]` sets it), newer or older than what
	// it runs. Without it, the Stage promotes each new piece of freight as
	// it is found.
	// +optional
	Approval bool `json:"approval,omitempty"`
	// Suspend stops promoting; what was promoted stays.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// StageUpstream names the Stage a Stage takes its freight from.
type StageUpstream struct {
	// Stage names a Stage in the same namespace with the same Warehouse.
	// +kubebuilder:validation:MinLength=1
	Stage string `json:"stage"`
	// Soak is how long the upstream Stage's Apps must have run the
	// freight Healthy, without a break, before this Stage takes it.
	// Default: 0 (as soon as it passed there).
	// +optional
	Soak metav1.Duration `json:"soak,omitempty"`
}

// StageVerification checks a promotion where it runs.
type StageVerification struct {
	// Job is the spec of a Job the Stage creates in its namespace for
	// each promotion (named after the Stage and the freight, labelled
	// tend.dev/stage and tend.dev/freight): the freight is verified when
	// the Job succeeds and failed when it fails. The Job runs with the
	// Job's serviceAccountName (default: the namespace's default), and is
	// deleted with the Stage or when the next promotion's starts.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Job batchv1.JobSpec `json:"job"`
}

// Verification results of a promotion (Promotion.Verification).
const (
	VerificationRunning   = "Running"
	VerificationSucceeded = "Succeeded"
	VerificationFailed    = "Failed"
)

// StageGit is the repository and branch a Stage commits to.
type StageGit struct {
	// SourceRef names a git Source in the Stage's namespace: its URL and
	// its credentials (which must allow pushing) are the Stage's.
	SourceRef LocalObjectReference `json:"sourceRef"`
	// Branch to commit to. Default: the Source's spec.git.ref.branch, else
	// main.
	// +optional
	Branch string `json:"branch,omitempty"`
	// Author of the commits. Default: tend <tend@localhost>.
	// +optional
	Author *GitAuthor `json:"author,omitempty"`
	// Signing, when set, signs each promotion commit.
	// +optional
	Signing *StageSigning `json:"signing,omitempty"`
	// PullRequest, when set, proposes each promotion instead of pushing
	// it to the branch: the commit goes to a branch of its own,
	// tend/promote/<stage>, and a pull request (GitLab: merge request)
	// into the branch is opened through the forge's API. The promotion
	// runs once it is merged.
	// +optional
	PullRequest *StagePullRequest `json:"pullRequest,omitempty"`
}

// Formats of commit signatures (StageSigning.Format).
const (
	SigningOpenPGP = "openpgp"
	SigningSSH     = "ssh"
)

// StageSigning is the key a Stage signs its commits with.
type StageSigning struct {
	// Format is openpgp (git's default, verified with gpg) or ssh (git's
	// gpg.format=ssh, verified with an allowed signers file).
	// +kubebuilder:validation:Enum=openpgp;ssh
	Format string `json:"format"`
	// SecretRef names a Secret in the Stage's namespace holding the
	// private key: git.asc (an armored OpenPGP key, as Flux's image
	// automation reads it) for openpgp, identity (an OpenSSH private key)
	// for ssh; and passphrase when the key is protected.
	SecretRef LocalObjectReference `json:"secretRef"`
}

// StagePullRequest says where a Stage opens its pull requests.
type StagePullRequest struct {
	// Provider is the forge: github, gitlab or gitea (Forgejo too).
	// +kubebuilder:validation:Enum=github;gitlab;gitea
	Provider string `json:"provider"`
	// Address is the forge's API: GitHub's API URL (GitHub Enterprise:
	// https://HOST/api/v3), or the GitLab or Gitea instance URL. Default:
	// from the Source's URL.
	// +optional
	Address string `json:"address,omitempty"`
	// SecretRef names a Secret in the Stage's namespace whose token key is
	// an access token that may open pull requests on the repository.
	SecretRef LocalObjectReference `json:"secretRef"`
}

// GitAuthor names a commit's author.
type GitAuthor struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=3
	Email string `json:"email"`
}

// What a StageUpdate's value update writes (ValueUpdate.From).
const (
	ValueFromTag          = "Tag"
	ValueFromDigest       = "Digest"
	ValueFromReference    = "Reference"
	ValueFromRepository   = "Repository"
	ValueFromChartVersion = "ChartVersion"
)

// StageUpdate is one edit of the repository; it sets exactly one of
// kustomize, value and markers.
// +kubebuilder:validation:XValidation:rule="(has(self.kustomize) ? 1 : 0) + (has(self.value) ? 1 : 0) + (has(self.markers) ? 1 : 0) == 1",message="set exactly one of kustomize, value or markers"
type StageUpdate struct {
	// Image names the freight's image (its repository, as the Warehouse's
	// subscription names it) that kustomize and markers write, and value
	// unless it writes a chart version.
	// +optional
	Image string `json:"image,omitempty"`
	// Chart names the freight's chart (its name) whose version a value
	// update with from ChartVersion writes.
	// +optional
	Chart string `json:"chart,omitempty"`
	// Kustomize sets the image in the images of a kustomization, as
	// `kustomize edit set image` does.
	// +optional
	Kustomize *KustomizeImageUpdate `json:"kustomize,omitempty"`
	// Value sets one value of a YAML file: a Helm values key, an App's
	// spec.chart.version.
	// +optional
	Value *ValueUpdate `json:"value,omitempty"`
	// Markers rewrites the values Flux's image policy markers
	// (# {"$imagepolicy": "flux-system:web"}) mark, in the YAML files
	// under a path, as Flux's image automation does.
	// +optional
	Markers *MarkersUpdate `json:"markers,omitempty"`
}

// KustomizeImageUpdate names a kustomization.
type KustomizeImageUpdate struct {
	// Path of the directory holding kustomization.yaml, relative to the
	// repository root.
	Path string `json:"path"`
	// Digest also pins the image by digest.
	// +optional
	Digest bool `json:"digest,omitempty"`
}

// ValueUpdate names a value in a YAML file.
type ValueUpdate struct {
	// File relative to the repository root.
	// +kubebuilder:validation:MinLength=1
	File string `json:"file"`
	// Key of the value: map keys separated by dots (image.tag). Maps
	// missing on the way are created.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
	// From says what is written: the image's Tag, Digest, Reference
	// (repository:tag) or Repository, or the chart's ChartVersion.
	// +kubebuilder:validation:Enum=Tag;Digest;Reference;Repository;ChartVersion
	From string `json:"from"`
}

// MarkersUpdate names Flux image policy markers.
type MarkersUpdate struct {
	// Path under which YAML files are rewritten, relative to the
	// repository root; empty: the whole repository.
	// +optional
	Path string `json:"path,omitempty"`
	// Policy is the marker's policy ("flux-system:web") that takes the
	// image; markers of other policies are left alone.
	// +kubebuilder:validation:MinLength=1
	Policy string `json:"policy"`
}

// StageStatus is what the Stage promoted.
type StageStatus struct {
	// ObservedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (the Warehouse's newest freight is promoted),
	// Stalled (only a change helps: a Source, Warehouse or file that does
	// not exist, an update that cannot be made, credentials git refuses).
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Freight is the freight promoted last.
	// +optional
	Freight *Promotion `json:"freight,omitempty"`
	// History of promotions, newest first, at most 20.
	// +optional
	History []Promotion `json:"history,omitempty"`
}

// Promotion is one piece of freight written into git.
type Promotion struct {
	// Name of the freight (the Warehouse's status.freight[].name).
	Name string `json:"name"`
	// Versions it holds, in short: "web:1.2.0, chart web 1.3.0".
	Versions string `json:"versions"`
	// Revision is the commit that promoted it (the branch's head when git
	// already held its versions).
	Revision string `json:"revision"`
	// PromotedAt is when it was committed.
	PromotedAt metav1.Time `json:"promotedAt"`
	// By says what promoted it: "warehouse NAME", "upstream Stage NAME",
	// or "approved by USER" (the tend.dev/approved-by annotation `tend
	// promote approve` sets).
	// +optional
	By string `json:"by,omitempty"`
	// HealthySince is when each of the Stage's Apps was first seen
	// running the promotion Healthy, without a break since (cleared when
	// one is not). Without spec.apps: when it was committed.
	// +optional
	HealthySince *metav1.Time `json:"healthySince,omitempty"`
	// Verification is the result of spec.verification's Job for it:
	// Running, Succeeded or Failed (empty: none ran).
	// +optional
	Verification string `json:"verification,omitempty"`
	// VerifiedAt is when the freight passed here (Healthy, and verified
	// when spec.verification is set): downstream Stages may take it.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`
	// Message says what the promotion waits for, or why it failed.
	// +optional
	Message string `json:"message,omitempty"`
	// PullRequest is the pull request that proposes it (spec.git.pullRequest).
	// +optional
	PullRequest *PromotionPullRequest `json:"pullRequest,omitempty"`
}

// PromotionPullRequest is a pull request a Stage opened.
type PromotionPullRequest struct {
	// Number of the pull request (GitLab: the merge request's iid).
	Number int `json:"number"`
	// URL of its web page.
	URL string `json:"url"`
	// State is open, merged or closed (without merging).
	State string `json:"state"`
}

// Stage writes each new piece of freight of a Warehouse into git: one
// environment of a promotion pipeline.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=stg,categories=tend
// +kubebuilder:printcolumn:name="Freight",type=string,JSONPath=`.status.freight.name`
// +kubebuilder:printcolumn:name="Versions",type=string,JSONPath=`.status.freight.versions`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Stage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   StageSpec   `json:"spec,omitempty"`
	Status StageStatus `json:"status,omitempty"`
}

// StageList is a list of Stages.
//
// +kubebuilder:object:root=true
type StageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Stage `json:"items"`
}
