package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WarehouseSpec says which new versions to watch for: container images in
// OCI registries, chart versions in chart repositories, and commits of git
// Sources. Each combination of the newest version of every subscription
// is a piece of freight, recorded in status.
type WarehouseSpec struct {
	// Subscriptions are what the Warehouse watches; each sets exactly one
	// of image, chart and git.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	Subscriptions []Subscription `json:"subscriptions"`
	// Interval between checks of the registries and chart repositories.
	// A git subscription's Source reports its new commits at once.
	// +optional
	// +kubebuilder:default="5m"
	Interval metav1.Duration `json:"interval,omitempty"`
	// FreightLimit is how many pieces of freight status keeps, newest
	// first.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FreightLimit int32 `json:"freightLimit,omitempty"`
	// Suspend stops checking; the freight recorded stays.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// Subscription is one thing a Warehouse watches.
// +kubebuilder:validation:XValidation:rule="(has(self.image) ? 1 : 0) + (has(self.chart) ? 1 : 0) + (has(self.git) ? 1 : 0) == 1",message="set exactly one of image, chart or git"
type Subscription struct {
	// Image watches the tags of a container image repository.
	// +optional
	Image *ImageSubscription `json:"image,omitempty"`
	// Chart watches the versions of a chart in a chart repository or OCI
	// registry.
	// +optional
	Chart *ChartSubscription `json:"chart,omitempty"`
	// Git watches the commits a git Source fetches.
	// +optional
	Git *GitSubscription `json:"git,omitempty"`
}

// Image selection strategies (ImageSubscription.Strategy).
const (
	StrategySemVer      = "SemVer"
	StrategyLexical     = "Lexical"
	StrategyNumerical   = "Numerical"
	StrategyNewestBuild = "NewestBuild"
	StrategyDigest      = "Digest"
)

// ImageSubscription selects one tag of an image repository, and pins it by
// digest.
type ImageSubscription struct {
	// Repository of the image, without tag or digest:
	// registry.example.com/team/web, ghcr.io/org/app, or docker.io/library/nginx
	// (a name without a registry is Docker Hub's).
	// +kubebuilder:validation:MinLength=1
	Repository string `json:"repository"`
	// Strategy picks the tag: SemVer (the highest version in constraint;
	// tags that are not MAJOR.MINOR.PATCH versions, with a v prefix or not,
	// are ignored), Lexical (the highest tag in
	// byte order), Numerical (the highest tag read as a number), NewestBuild
	// (the tag whose image was built last, from its config's created
	// time), Digest (the tag constraint names, followed by digest: a new
	// push of the same tag is new freight).
	// +optional
	// +kubebuilder:default=SemVer
	// +kubebuilder:validation:Enum=SemVer;Lexical;Numerical;NewestBuild;Digest
	Strategy string `json:"strategy,omitempty"`
	// Constraint is a semver range for SemVer (^1.2, ~1.2.0, >=1.0 <2; empty:
	// any stable version), and the tag to follow for Digest (required
	// there). Pre-releases match only a range that names one.
	// +optional
	Constraint string `json:"constraint,omitempty"`
	// AllowTags keeps only tags matching this regular expression (Go
	// syntax, RE2). With named groups and Extract, the value sorted by is
	// made from the groups.
	// +optional
	AllowTags string `json:"allowTags,omitempty"`
	// Extract builds, from AllowTags' groups ($name or ${name}), the value
	// Lexical and Numerical sort by, as Flux's filterTags.extract:
	// allowTags '^main-[a-f0-9]+-(?P<ts>[0-9]+)' with extract '$ts' picks the
	// newest build of main by its timestamp.
	// +optional
	Extract string `json:"extract,omitempty"`
	// IgnoreTags leaves out these tags (exact names), e.g. latest.
	// +optional
	IgnoreTags []string `json:"ignoreTags,omitempty"`
	// SecretRef names a Secret in the Warehouse's namespace with the
	// registry's credentials: a .dockerconfigjson (type
	// kubernetes.io/dockerconfigjson), or username and password keys.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Insecure talks plain HTTP to the registry.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// ChartSubscription selects one version of a chart.
type ChartSubscription struct {
	// RepoURL is an HTTP(S) chart repository (https://charts.example.com)
	// or an OCI registry path (oci://ghcr.io/org/charts).
	// +kubebuilder:validation:Pattern=`^(https?|oci)://`
	RepoURL string `json:"repoURL"`
	// Name of the chart.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Constraint is a semver range; empty: the highest stable version.
	// +optional
	Constraint string `json:"constraint,omitempty"`
	// SecretRef names a Secret in the Warehouse's namespace with username
	// and password keys (or a .dockerconfigjson for an OCI registry).
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Insecure talks plain HTTP to an OCI registry.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// GitSubscription follows the commits of a git Source.
type GitSubscription struct {
	// SourceRef names a git Source in the Warehouse's namespace; its
	// fetched commit is the freight's.
	SourceRef LocalObjectReference `json:"sourceRef"`
}

// WarehouseStatus is what the Warehouse found.
type WarehouseStatus struct {
	// ObservedGeneration is the generation last checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (the last check of every subscription succeeded),
	// Stalled (the spec needs a fix: a bad constraint or regular
	// expression, a Secret or Source that does not exist).
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Freight found, newest first, at most spec.freightLimit pieces.
	// +optional
	Freight []Freight `json:"freight,omitempty"`
}

// Freight is one combination of versions, one per subscription, in the
// order of spec.subscriptions.
type Freight struct {
	// Name identifies the freight: a hash of its versions, the same for
	// the same versions.
	Name string `json:"name"`
	// DiscoveredAt is when the Warehouse first found it.
	DiscoveredAt metav1.Time `json:"discoveredAt"`
	// Images are the image subscriptions' picks.
	// +optional
	Images []FreightImage `json:"images,omitempty"`
	// Charts are the chart subscriptions' picks.
	// +optional
	Charts []FreightChart `json:"charts,omitempty"`
	// Commits are the git subscriptions' commits.
	// +optional
	Commits []FreightCommit `json:"commits,omitempty"`
}

// FreightImage is an image picked by tag and pinned by digest.
type FreightImage struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	// Digest of the manifest (or index) the tag named when found.
	Digest string `json:"digest"`
}

// FreightChart is a chart version.
type FreightChart struct {
	RepoURL string `json:"repoURL"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// FreightCommit is a commit of a git Source.
type FreightCommit struct {
	// Source is the git Source's name.
	Source string `json:"source"`
	// RepoURL is the Source's repository.
	RepoURL string `json:"repoURL"`
	// Revision is the commit.
	Revision string `json:"revision"`
}

// Warehouse watches registries, chart repositories and git Sources for new
// versions, and records each new combination as freight.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wh,categories=tend
// +kubebuilder:printcolumn:name="Freight",type=string,JSONPath=`.status.freight[0].name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Warehouse struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WarehouseSpec   `json:"spec,omitempty"`
	Status WarehouseStatus `json:"status,omitempty"`
}

// WarehouseList is a list of Warehouses.
//
// +kubebuilder:object:root=true
type WarehouseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Warehouse `json:"items"`
}
