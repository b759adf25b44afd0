package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProjectSpec limits what the Apps that name the Project (spec.project, in
// the Project's namespace) may deploy. Every rule is checked before
// anything of a revision is applied: an App that breaks one is stalled
// with a condition naming the rule and the object, and what it applied
// before stays as it is.
//
// Patterns are globs: * matches any characters (/ included), ? one
// character, [a-z] a class, {a,b} either. A pattern starting with ! denies
// what it matches, whatever else allows it.
type ProjectSpec struct {
	// SourceRepos are the repositories the Apps' Sources may name: a git
	// URL, a Helm repository URL or an OCI reference (oci://host/path),
	// matched as written in the Source. Empty allows none; "*" allows any.
	// +optional
	SourceRepos []string `json:"sourceRepos,omitempty"`
	// Destinations are the clusters and namespaces the Apps may deploy to:
	// every namespaced object's namespace, and the App's
	// spec.destination.namespace, must match one of them for the App's
	// cluster. An entry whose cluster or namespace starts with ! denies
	// what it matches (cluster and namespace with the ! removed), whatever
	// else allows it. Empty allows none.
	// +optional
	Destinations []ProjectDestination `json:"destinations,omitempty"`
	// ClusterResources are the cluster-scoped kinds the Apps may deploy.
	// Allow empty allows none. (A Namespace the App creates with
	// spec.destination.createNamespace is checked as a destination, not
	// as a kind.)
	// +optional
	ClusterResources KindRules `json:"clusterResources,omitempty"`
	// NamespacedResources are the namespaced kinds the Apps may deploy.
	// Allow empty allows every kind Deny does not name.
	// +optional
	NamespacedResources KindRules `json:"namespacedResources,omitempty"`
	// AllowCrossNamespaceRefs lets the Apps render from a Source
	// (spec.sourceRef.namespace) and depend on Apps (spec.dependsOn) in
	// other namespaces. Without it, every reference stays in the App's
	// namespace.
	// +optional
	AllowCrossNamespaceRefs bool `json:"allowCrossNamespaceRefs,omitempty"`
}

// ProjectDestination is a cluster and namespace pattern.
type ProjectDestination struct {
	// Cluster is a pattern of Cluster names in the App's namespace;
	// "in-cluster" is the cluster tend runs in. Default "*".
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Namespace is a pattern of namespaces. Default "*".
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// KindRules allow and deny kinds: a kind is allowed when it matches Allow
// (see where Allow is empty) and no entry of Deny.
type KindRules struct {
	// Allow lists the allowed kinds.
	// +optional
	Allow []GroupKindPattern `json:"allow,omitempty"`
	// Deny lists the kinds denied even when Allow matches them.
	// +optional
	Deny []GroupKindPattern `json:"deny,omitempty"`
}

// GroupKindPattern matches kinds by API group and kind, each a glob.
type GroupKindPattern struct {
	// Group is a pattern of API groups: "" is the core group (Service,
	// ConfigMap), "*" any.
	// +optional
	Group string `json:"group,omitempty"`
	// Kind is a pattern of kinds: "*" any.
	Kind string `json:"kind"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Project is a set of rules for the Apps that name it: which repositories,
// clusters, namespaces and kinds they may use.
type Project struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ProjectSpec `json:"spec,omitempty"`
}

// +kubebuilder:object:root=true

// ProjectList is a list of Projects.
type ProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Project `json:"items"`
}
