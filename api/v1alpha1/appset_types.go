package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppSetSpec generates Apps.
type AppSetSpec struct {
	// Generators produce parameter sets; one App per set.
	// +kubebuilder:validation:MinItems=1
	Generators []Generator `json:"generators"`
	// Template of each App. In string fields, {{name}}, {{path}},
	// {{path.basename}} and list element keys are replaced.
	Template AppTemplate `json:"template"`
	// PruneApps deletes generated Apps whose parameter set disappeared
	// (e.g. the directory was removed). Without it they are kept and
	// reported.
	// +optional
	PruneApps bool `json:"pruneApps,omitempty"`
}

// Generator produces parameter sets: exactly one of directories or list.
// +kubebuilder:validation:XValidation:rule="has(self.directories) != has(self.list)",message="set exactly one of directories or list"
type Generator struct {
	// Directories generates one set per directory of a Source matching a glob.
	// +optional
	Directories *DirectoriesGenerator `json:"directories,omitempty"`
	// List generates one set per element.
	// +optional
	List *ListGenerator `json:"list,omitempty"`
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

// AppSet generates Apps from directories in a Source or from a list.
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
