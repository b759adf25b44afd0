package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppSetSpec generates Apps.
type AppSetSpec struct {
	// Generators produce parameter sets; one App per set.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Generators []Generator `json:"generators"`
	// Template of each App. In string fields, {{key}} is replaced by the
	// parameter key of the set: {{name}}, {{path}}, {{path.basename}}, list
	// element keys, the keys of a files generator's documents.
	Template AppTemplate `json:"template"`
	// GoTemplate makes the template's strings Go templates (text/template
	// with Sprig's functions, as Argo CD's goTemplate) over nested
	// parameters: {{.path.basename}}, {{.cluster.name | upper}}.
	// +optional
	GoTemplate bool `json:"goTemplate,omitempty"`
	// GoTemplateOptions are text/template options, e.g. missingkey=error
	// (a parameter a set lacks stalls the AppSet instead of printing
	// "<no value>").
	// +optional
	GoTemplateOptions []string `json:"goTemplateOptions,omitempty"`
	// PruneApps deletes generated Apps whose parameter set disappeared
	// (e.g. the directory was removed). Without it they are kept and
	// reported.
	// +optional
	PruneApps bool `json:"pruneApps,omitempty"`
}

// Generator produces parameter sets: exactly one of directories, files,
// list, clusters, matrix or merge.
// +kubebuilder:validation:XValidation:rule="(has(self.directories) ? 1 : 0) + (has(self.files) ? 1 : 0) + (has(self.list) ? 1 : 0) + (has(self.clusters) ? 1 : 0) + (has(self.matrix) ? 1 : 0) + (has(self.merge) ? 1 : 0) == 1",message="set exactly one of directories, files, list, clusters, matrix or merge"
type Generator struct {
	// Directories generates one set per directory of a Source matching a glob.
	// +optional
	Directories *DirectoriesGenerator `json:"directories,omitempty"`
	// Files generates sets from the JSON or YAML files of a Source
	// matching a glob.
	// +optional
	Files *FilesGenerator `json:"files,omitempty"`
	// List generates one set per element.
	// +optional
	List *ListGenerator `json:"list,omitempty"`
	// Clusters generates one set per Cluster in the AppSet's namespace.
	// +optional
	Clusters *ClustersGenerator `json:"clusters,omitempty"`
	// Matrix combines every set of its first generator with every set of
	// its second.
	// +optional
	Matrix *MatrixGenerator `json:"matrix,omitempty"`
	// Merge overrides the sets of its first generator with the sets of the
	// others that have the same values for the merge keys.
	// +optional
	Merge *MergeGenerator `json:"merge,omitempty"`
}

// NestedGenerator is a generator inside matrix or merge: exactly one of
// directories, files, list, clusters, or one more level of matrix or
// merge (whose own generators cannot nest further, as in Argo CD).
// +kubebuilder:validation:XValidation:rule="(has(self.directories) ? 1 : 0) + (has(self.files) ? 1 : 0) + (has(self.list) ? 1 : 0) + (has(self.clusters) ? 1 : 0) + (has(self.matrix) ? 1 : 0) + (has(self.merge) ? 1 : 0) == 1",message="set exactly one of directories, files, list, clusters, matrix or merge"
type NestedGenerator struct {
	// Directories generates one set per directory of a Source matching a glob.
	// +optional
	Directories *DirectoriesGenerator `json:"directories,omitempty"`
	// Files generates sets from the JSON or YAML files of a Source
	// matching a glob.
	// +optional
	Files *FilesGenerator `json:"files,omitempty"`
	// List generates one set per element.
	// +optional
	List *ListGenerator `json:"list,omitempty"`
	// Clusters generates one set per Cluster in the AppSet's namespace.
	// +optional
	Clusters *ClustersGenerator `json:"clusters,omitempty"`
	// Matrix combines the sets of two leaf generators.
	// +optional
	Matrix *NestedMatrixGenerator `json:"matrix,omitempty"`
	// Merge overrides the sets of its first leaf generator with the
	// others'.
	// +optional
	Merge *NestedMergeGenerator `json:"merge,omitempty"`
}

// LeafGenerator is a generator inside a nested matrix or merge: exactly
// one of directories, files, list or clusters.
// +kubebuilder:validation:XValidation:rule="(has(self.directories) ? 1 : 0) + (has(self.files) ? 1 : 0) + (has(self.list) ? 1 : 0) + (has(self.clusters) ? 1 : 0) == 1",message="set exactly one of directories, files, list or clusters (a matrix or merge nests one level only)"
type LeafGenerator struct {
	// Directories generates one set per directory of a Source matching a glob.
	// +optional
	Directories *DirectoriesGenerator `json:"directories,omitempty"`
	// Files generates sets from the JSON or YAML files of a Source
	// matching a glob.
	// +optional
	Files *FilesGenerator `json:"files,omitempty"`
	// List generates one set per element.
	// +optional
	List *ListGenerator `json:"list,omitempty"`
	// Clusters generates one set per Cluster in the AppSet's namespace.
	// +optional
	Clusters *ClustersGenerator `json:"clusters,omitempty"`
}

// MatrixGenerator is the product of two generators: one set per pair,
// with the keys of both (a key both have is an error).
type MatrixGenerator struct {
	// Generators are exactly two.
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=2
	Generators []NestedGenerator `json:"generators"`
}

// MergeGenerator starts from the sets of the first generator; a set of a
// later generator whose merge keys equal a base set's overrides that set's
// values. Later sets that match no base set are dropped.
type MergeGenerator struct {
	// MergeKeys are the parameters that identify a set, e.g. name.
	// +kubebuilder:validation:MinItems=1
	MergeKeys []string `json:"mergeKeys"`
	// Generators: the first gives the sets, the others override them.
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=32
	Generators []NestedGenerator `json:"generators"`
}

// NestedMatrixGenerator is a matrix inside a matrix or merge: the product
// of two leaf generators.
type NestedMatrixGenerator struct {
	// Generators are exactly two.
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=2
	Generators []LeafGenerator `json:"generators"`
}

// NestedMergeGenerator is a merge inside a matrix or merge, over leaf
// generators.
type NestedMergeGenerator struct {
	// MergeKeys are the parameters that identify a set, e.g. name.
	// +kubebuilder:validation:MinItems=1
	MergeKeys []string `json:"mergeKeys"`
	// Generators: the first gives the sets, the others override them.
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=32
	Generators []LeafGenerator `json:"generators"`
}

// ClustersGenerator gives one parameter set per Cluster in the AppSet's
// namespace (the Clusters its Apps can name in destination.clusterRef),
// as Argo CD's cluster generator does per cluster Secret: name
// (the Cluster's name), nameNormalized, server (the API server URL of
// its kubeconfig), metadata.labels.<key>, metadata.annotations.<key> and
// values.<key>. Go templates see them nested: .name, .server,
// .metadata.labels, .metadata.annotations, .values.
//
// Without a selector the cluster tend runs in is a set too, named
// in-cluster with server https://kubernetes.default.svc (unless a
// Cluster named in-cluster exists); a generated App whose
// destination.clusterRef.name is in-cluster deploys to it.
type ClustersGenerator struct {
	// Selector picks Clusters by label; empty or absent selects every
	// Cluster and the cluster tend runs in. A selector with a term never
	// selects the cluster tend runs in.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Values are added to each set as values.<key>. They may use the
	// Cluster's parameters: {{name}}, {{metadata.labels.env}} (or
	// {{.name}} with spec.goTemplate).
	// +optional
	Values map[string]string `json:"values,omitempty"`
}

// FilesGenerator reads JSON or YAML files of a git Source. A file holding
// an object gives one set, a file holding a list one set per element.
// Nested keys are joined with dots ({{cluster.name}}); every set also has
// path (the file's directory), path.basename, path.filename and
// path.filenameNormalized.
type FilesGenerator struct {
	// SourceRef names the git Source.
	SourceRef NamespacedObjectReference `json:"sourceRef"`
	// Include globs of files, e.g. clusters/*/config.json.
	// +kubebuilder:validation:MinItems=1
	Include []string `json:"include"`
	// Exclude globs of files.
	// +optional
	Exclude []string `json:"exclude,omitempty"`
}

// DirectoriesGenerator matches directories in a git Source.
type DirectoriesGenerator struct {
	// SourceRef names the git Source.
	SourceRef NamespacedObjectReference `json:"sourceRef"`
	// Include globs, e.g. apps/*.
	// +kubebuilder:validation:MinItems=1
	Include []string `json:"include"`
	// Exclude globs.
	// +optional
	Exclude []string `json:"exclude,omitempty"`
}

// ListGenerator is a literal list of parameter sets.
type ListGenerator struct {
	// Elements are string maps; each must have "name".
	Elements []map[string]string `json:"elements"`
}

// AppTemplate is the App each parameter set produces.
type AppTemplate struct {
	// Metadata of the generated App (name is required, may use parameters).
	Metadata AppTemplateMeta `json:"metadata"`
	// Spec of the generated App.
	Spec AppSpec `json:"spec"`
}

// AppTemplateMeta is the metadata of a generated App.
type AppTemplateMeta struct {
	// Name of the App, e.g. "{{path.basename}}".
	Name string `json:"name"`
	// Labels of the App.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations of the App.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AppSetStatus reports generated Apps.
type AppSetStatus struct {
	// ObservedGeneration is the spec generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Apps generated, by name.
	// +optional
	Apps []string `json:"apps,omitempty"`
	// Orphaned Apps whose parameter set disappeared but pruneApps is off.
	// +optional
	Orphaned []string `json:"orphaned,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// AppSet generates Apps from directories or files of a Source, a list or
// the Clusters of its namespace.
type AppSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AppSetSpec   `json:"spec,omitempty"`
	Status AppSetStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AppSetList is a list of AppSets.
type AppSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AppSet `json:"items"`
}
