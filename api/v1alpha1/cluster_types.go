package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterSpec is a remote cluster Apps can deploy to.
type ClusterSpec struct {
	// KubeconfigSecretRef names a Secret in the Cluster's namespace with a
	// kubeconfig under the key "kubeconfig" (or Key).
	KubeconfigSecretRef SecretKeyReference `json:"kubeconfigSecretRef"`
	// Suspend stops syncing Apps to this cluster.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// SecretKeyReference names a key of a Secret.
type SecretKeyReference struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Key in the Secret; default "kubeconfig".
	// +optional
	Key string `json:"key,omitempty"`
}

// ClusterStatus reports the connection.
type ClusterStatus struct {
	// ObservedGeneration is the spec generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// KubeVersion of the cluster's API server.
	// +optional
	KubeVersion string `json:"kubeVersion,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.kubeVersion`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Cluster is a remote cluster reached with a kubeconfig.
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec,omitempty"`
	Status ClusterStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterList is a list of Clusters.
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}
