package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SourceSpec says where manifests come from: exactly one of git, helm or oci.
// +kubebuilder:validation:XValidation:rule="(has(self.git) ? 1 : 0) + (has(self.helm) ? 1 : 0) + (has(self.oci) ? 1 : 0) == 1",message="set exactly one of git, helm or oci"
type SourceSpec struct {
	// Git is a git repository.
	// +optional
	Git *GitSource `json:"git,omitempty"`
	// Helm is an HTTP(S) Helm chart repository (serving index.yaml). Apps
	// name a chart in it with spec.chart.
	// +optional
	Helm *HelmRepositorySource `json:"helm,omitempty"`
	// OCI is an OCI registry. Without spec.oci.ref it holds Helm charts
	// (oci://host/path) and Apps name a chart in it with spec.chart. With
	// spec.oci.ref the URL is one repository and the Source holds the files
	// of the artifact the ref selects (Flux's OCIRepository), as a git
	// Source holds a checkout: Apps render spec.path in it.
	// +optional
	OCI *OCIRepositorySource `json:"oci,omitempty"`
	// Interval between fetches. Push webhooks trigger a fetch at once.
	// +kubebuilder:default="1m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// Timeout of one fetch.
	// +kubebuilder:default="60s"
	// +optional
	Timeout metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops fetching; the last artifact stays available.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// GitSource is a git repository.
type GitSource struct {
	// URL of the repository: https://, http://, ssh:// or git@host:path.
	// +kubebuilder:validation:Pattern=`^(https?://|ssh://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)`
	URL string `json:"url"`
	// Ref to check out; the default is the branch "main".
	// +optional
	Ref GitRef `json:"ref,omitempty"`
	// SecretRef names a Secret with credentials: "username" and "password"
	// (or "token") for HTTPS; "identity" (private key) and "known_hosts"
	// for SSH.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// GitRef selects a commit: at most one of branch, tag and semver; commit
// may be combined with branch.
// +kubebuilder:validation:XValidation:rule="(has(self.branch) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.semver) ? 1 : 0) <= 1",message="set at most one of branch, tag and semver"
type GitRef struct {
	// Branch to follow.
	// +optional
	Branch string `json:"branch,omitempty"`
	// Tag to check out.
	// +optional
	Tag string `json:"tag,omitempty"`
	// SemVer is a range over the repository's tags, e.g. ">=1.2 <2"; the
	// highest matching tag is checked out.
	// +optional
	SemVer string `json:"semver,omitempty"`
	// Commit is the full (40 hex digit) SHA to check out.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{40}$`
	// +optional
	Commit string `json:"commit,omitempty"`
}

// HelmRepositorySource is an HTTP(S) chart repository.
type HelmRepositorySource struct {
	// URL of the repository (the directory holding index.yaml).
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url"`
	// SecretRef names a Secret with "username" and "password".
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// OCIRepositorySource is an OCI registry path holding charts, or, with
// ref, one repository holding an artifact of files.
// +kubebuilder:validation:XValidation:rule="!has(self.layerSelector) || has(self.ref)",message="layerSelector needs ref: it selects a layer of the artifact ref names"
type OCIRepositorySource struct {
	// URL is oci://host[:port]/path; charts are path/<chart>:<version>.
	// With ref, the URL is the artifact's repository itself.
	// +kubebuilder:validation:Pattern=`^oci://`
	URL string `json:"url"`
	// SecretRef names a Secret with "username" and "password".
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Insecure allows plain HTTP.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// Ref makes the Source hold one artifact of the repository: the one
	// it selects by digest, semver range or tag. Its layer (a gzipped tar,
	// as `flux push artifact` and `helm push` write) is unpacked and Apps
	// render spec.path in it; a Helm chart's layer is unpacked with the
	// chart at the root.
	// +optional
	Ref *OCIRef `json:"ref,omitempty"`
	// LayerSelector picks the artifact's layer by media type; the default
	// is the first layer.
	// +optional
	LayerSelector *OCILayerSelector `json:"layerSelector,omitempty"`
}

// OCIRef selects an artifact: digest wins over semver, semver over tag.
// +kubebuilder:validation:XValidation:rule="has(self.tag) || has(self.semver) || has(self.digest)",message="set tag, semver or digest"
type OCIRef struct {
	// Tag of the artifact, e.g. "latest" or "v1.2.0".
	// +optional
	Tag string `json:"tag,omitempty"`
	// SemVer is a range over the repository's tags, e.g. ">=1.2 <2"; the
	// highest matching tag is pulled.
	// +optional
	SemVer string `json:"semver,omitempty"`
	// SemverFilter is a regular expression the tags must match before the
	// semver range picks one, e.g. ".*-rc.*" to follow release candidates.
	// +optional
	SemverFilter string `json:"semverFilter,omitempty"`
	// Digest pins the artifact, "sha256:<hex>".
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	// +optional
	Digest string `json:"digest,omitempty"`
}

// OCILayerSelector picks one layer of an artifact.
type OCILayerSelector struct {
	// MediaType of the layer, e.g.
	// "application/vnd.cncf.helm.chart.content.v1.tar+gzip".
	MediaType string `json:"mediaType"`
}

// ChartRegistry reports whether the Source is a repository of Helm charts
// (an HTTP chart repository, or an OCI registry without spec.oci.ref):
// Apps name a chart in it with spec.chart. Other Sources hold files (a git
// checkout or an OCI artifact) that Apps render with spec.path.
func (s *SourceSpec) ChartRegistry() bool {
	return s.Helm != nil || (s.OCI != nil && s.OCI.Ref == nil)
}

// OCIArtifact reports whether the Source holds the files of an OCI
// artifact (spec.oci.ref).
func (s *SourceSpec) OCIArtifact() bool {
	return s.OCI != nil && s.OCI.Ref != nil
}

// Type is the Source's type: git, oci for an OCI artifact, helm for a
// chart repository (HTTP or OCI); "" when none is set.
func (s *SourceSpec) Type() SourceType {
	switch {
	case s.Git != nil:
		return SourceTypeGit
	case s.OCIArtifact():
		return SourceTypeOCI
	case s.Helm != nil, s.OCI != nil:
		return SourceTypeHelm
	}
	return ""
}

// SourceStatus is what tend last fetched.
type SourceStatus struct {
	// ObservedGeneration is the spec generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the last good fetch; it stays when a later fetch fails.
	// +optional
	Artifact *Artifact `json:"artifact,omitempty"`
}

// Artifact is one fetched revision.
type Artifact struct {
	// Revision is the commit SHA for git, the manifest digest
	// (sha256:<hex>) for an OCI artifact.
	Revision string `json:"revision"`
	// Ref is the resolved ref, e.g. refs/tags/v1.2.0, or an OCI
	// artifact's tag.
	// +optional
	Ref string `json:"ref,omitempty"`
	// Subject is the commit subject.
	// +optional
	Subject string `json:"subject,omitempty"`
	// FetchedAt is when this revision was fetched.
	FetchedAt metav1.Time `json:"fetchedAt"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=src,categories=tend
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.git.url`,priority=1
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.artifact.revision`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Source is where manifests come from.
type Source struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SourceSpec   `json:"spec,omitempty"`
	Status SourceStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SourceList is a list of Sources.
type SourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Source `json:"items"`
}
