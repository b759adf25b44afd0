// Package v1alpha1 holds tend's API types (group tend.dev, version
// v1alpha1): Source, App, AppSet, Cluster, Notifier, Project, Warehouse and
// Stage.
//
// +kubebuilder:object:generate=true
// +groupName=tend.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "tend.dev", Version: "v1alpha1"}

	// SchemeBuilder registers these types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds these types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Source{}, &SourceList{},
		&App{}, &AppList{},
		&AppSet{}, &AppSetList{},
		&Cluster{}, &ClusterList{},
		&Notifier{}, &NotifierList{},
		&Project{}, &ProjectList{},
		&Warehouse{}, &WarehouseList{},
		&Stage{}, &StageList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Condition types used by every tend resource, following Kubernetes
// conventions (metav1.Condition).
const (
	// ConditionReady is True when the resource did what its spec asks.
	ConditionReady = "Ready"
	// ConditionReconciling is True while tend works on the resource.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when tend cannot proceed without a change to
	// the spec or to something it references; the message says what.
	ConditionStalled = "Stalled"
)

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// NamespacedObjectReference names an object, by default in the referrer's
// namespace.
type NamespacedObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the object; defaults to the referrer's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}
