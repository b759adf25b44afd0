// Package argocd reads Argo CD's API (argoproj.io/v1alpha1) and maps it to
// tend's: an Application becomes an App and the Source it renders from,
// with the same meaning, so that a repository written for Argo CD runs
// under tend unchanged.
//
// The mapping is strict: a field tend cannot honour is an error that names
// it and says what to do, never silently dropped; options whose behaviour
// tend has anyway (server-side apply, ignore rules respected on sync) are
// accepted. The types here cover every field of Argo CD 3's Application
// spec, so a misspelt or unknown field is an error too.
//
// The types also define the CustomResourceDefinitions `tend install
// --compat argo` installs (controller-gen, config/compat): spec is typed,
// status and operation are Argo CD's and kept as they are.
//
// +groupName=argoproj.io
// +versionName=v1alpha1
package argocd

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Group is Argo CD's API group.
const Group = "argoproj.io"

// Application is an Argo CD Application (argoproj.io/v1alpha1), spec only.
// Its CRD has no short names: Argo CD's "app" and "apps" would shadow
// tend's own App.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=applications,categories=argo
// +kubebuilder:printcolumn:name="Sync Status",type=string,JSONPath=`.status.sync.status`
// +kubebuilder:printcolumn:name="Health Status",type=string,JSONPath=`.status.health.status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.sync.revision`,priority=10
// +kubebuilder:printcolumn:name="Project",type=string,JSONPath=`.spec.project`,priority=10
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSpec `json:"spec"`
	// Status is written by tend in Argo CD's shape (internal/compat);
	// Operation is Argo CD's, read by nothing here.
	Status    Raw `json:"status,omitempty"`
	Operation Raw `json:"operation,omitempty"`
}

// ApplicationSpec is an Application's spec.
type ApplicationSpec struct {
	Source               *ApplicationSource          `json:"source,omitempty"`
	Sources              []ApplicationSource         `json:"sources,omitempty"`
	Destination          ApplicationDestination      `json:"destination"`
	Project              string                      `json:"project"`
	SyncPolicy           *SyncPolicy                 `json:"syncPolicy,omitempty"`
	IgnoreDifferences    []ResourceIgnoreDifferences `json:"ignoreDifferences,omitempty"`
	Info                 []Info                      `json:"info,omitempty"`
	RevisionHistoryLimit *int64                      `json:"revisionHistoryLimit,omitempty"`
	SourceHydrator       Raw                         `json:"sourceHydrator,omitempty"`
}

// ApplicationSource is where an Application's manifests come from.
type ApplicationSource struct {
	RepoURL        string                      `json:"repoURL"`
	Path           string                      `json:"path,omitempty"`
	TargetRevision string                      `json:"targetRevision,omitempty"`
	Helm           *ApplicationSourceHelm      `json:"helm,omitempty"`
	Kustomize      *ApplicationSourceKustomize `json:"kustomize,omitempty"`
	Directory      *ApplicationSourceDirectory `json:"directory,omitempty"`
	Plugin         Raw                         `json:"plugin,omitempty"`
	Chart          string                      `json:"chart,omitempty"`
	Ref            string                      `json:"ref,omitempty"`
	Name           string                      `json:"name,omitempty"`
}

// ApplicationSourceHelm holds Helm options.
type ApplicationSourceHelm struct {
	ValueFiles              []string            `json:"valueFiles,omitempty"`
	Parameters              []HelmParameter     `json:"parameters,omitempty"`
	ReleaseName             string              `json:"releaseName,omitempty"`
	Values                  string              `json:"values,omitempty"`
	FileParameters          []HelmFileParameter `json:"fileParameters,omitempty"`
	Version                 string              `json:"version,omitempty"`
	PassCredentials         bool                `json:"passCredentials,omitempty"`
	IgnoreMissingValueFiles bool                `json:"ignoreMissingValueFiles,omitempty"`
	SkipCrds                bool                `json:"skipCrds,omitempty"`
	SkipTests               bool                `json:"skipTests,omitempty"`
	SkipSchemaValidation    bool                `json:"skipSchemaValidation,omitempty"`
	ValuesObject            Raw                 `json:"valuesObject,omitempty"`
	Namespace               string              `json:"namespace,omitempty"`
	KubeVersion             string              `json:"kubeVersion,omitempty"`
	APIVersions             []string            `json:"apiVersions,omitempty"`
}

// HelmParameter is one --set (or --set-string) value.
type HelmParameter struct {
	Name        string `json:"name,omitempty"`
	Value       string `json:"value,omitempty"`
	ForceString bool   `json:"forceString,omitempty"`
}

// HelmFileParameter is one --set-file value.
type HelmFileParameter struct {
	Name string `json:"name,omitempty"`
	Path string `json:"path,omitempty"`
}

// ApplicationSourceKustomize holds kustomize options.
type ApplicationSourceKustomize struct {
	NamePrefix                string             `json:"namePrefix,omitempty"`
	NameSuffix                string             `json:"nameSuffix,omitempty"`
	Images                    []string           `json:"images,omitempty"`
	CommonLabels              map[string]string  `json:"commonLabels,omitempty"`
	Version                   string             `json:"version,omitempty"`
	CommonAnnotations         map[string]string  `json:"commonAnnotations,omitempty"`
	ForceCommonLabels         bool               `json:"forceCommonLabels,omitempty"`
	ForceCommonAnnotations    bool               `json:"forceCommonAnnotations,omitempty"`
	Namespace                 string             `json:"namespace,omitempty"`
	CommonAnnotationsEnvsubst bool               `json:"commonAnnotationsEnvsubst,omitempty"`
	Replicas                  []KustomizeReplica `json:"replicas,omitempty"`
	Patches                   []KustomizePatch   `json:"patches,omitempty"`
	Components                []string           `json:"components,omitempty"`
	LabelWithoutSelector      bool               `json:"labelWithoutSelector,omitempty"`
	KubeVersion               string             `json:"kubeVersion,omitempty"`
	APIVersions               []string           `json:"apiVersions,omitempty"`
	IgnoreMissingComponents   bool               `json:"ignoreMissingComponents,omitempty"`
	LabelIncludeTemplates     bool               `json:"labelIncludeTemplates,omitempty"`
}

// KustomizeReplica sets a workload's replicas.
type KustomizeReplica struct {
	Name  string             `json:"name"`
	Count intstr.IntOrString `json:"count"`
}

// KustomizePatch is one kustomize patch.
type KustomizePatch struct {
	Path    string             `json:"path,omitempty"`
	Patch   string             `json:"patch,omitempty"`
	Target  *KustomizeSelector `json:"target,omitempty"`
	Options map[string]bool    `json:"options,omitempty"`
}

// KustomizeSelector selects a patch's objects.
type KustomizeSelector struct {
	Group              string `json:"group,omitempty"`
	Version            string `json:"version,omitempty"`
	Kind               string `json:"kind,omitempty"`
	Name               string `json:"name,omitempty"`
	Namespace          string `json:"namespace,omitempty"`
	LabelSelector      string `json:"labelSelector,omitempty"`
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// ApplicationSourceDirectory holds options for plain manifests.
type ApplicationSourceDirectory struct {
	Recurse bool   `json:"recurse,omitempty"`
	Jsonnet Raw    `json:"jsonnet,omitempty"`
	Exclude string `json:"exclude,omitempty"`
	Include string `json:"include,omitempty"`
}

// ApplicationDestination is the cluster and namespace to deploy to.
type ApplicationDestination struct {
	Server    string `json:"server,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// SyncPolicy says when and how to sync.
type SyncPolicy struct {
	Automated                *SyncPolicyAutomated      `json:"automated,omitempty"`
	SyncOptions              []string                  `json:"syncOptions,omitempty"`
	Retry                    *RetryStrategy            `json:"retry,omitempty"`
	ManagedNamespaceMetadata *ManagedNamespaceMetadata `json:"managedNamespaceMetadata,omitempty"`
}

// SyncPolicyAutomated turns on automated sync.
type SyncPolicyAutomated struct {
	Prune      bool  `json:"prune,omitempty"`
	SelfHeal   bool  `json:"selfHeal,omitempty"`
	AllowEmpty bool  `json:"allowEmpty,omitempty"`
	Enabled    *bool `json:"enabled,omitempty"`
}

// RetryStrategy retries failed syncs.
type RetryStrategy struct {
	Limit   int64    `json:"limit,omitempty"`
	Backoff *Backoff `json:"backoff,omitempty"`
	Refresh bool     `json:"refresh,omitempty"`
}

// Backoff is a retry's delay: Duration first, times Factor each time, at
// most MaxDuration. Durations are Go durations or plain seconds.
type Backoff struct {
	Duration    string `json:"duration,omitempty"`
	Factor      *int64 `json:"factor,omitempty"`
	MaxDuration string `json:"maxDuration,omitempty"`
}

// ManagedNamespaceMetadata labels and annotates a created namespace.
type ManagedNamespaceMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ResourceIgnoreDifferences leaves fields of matching objects alone.
type ResourceIgnoreDifferences struct {
	Group                 string   `json:"group,omitempty"`
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	JSONPointers          []string `json:"jsonPointers,omitempty"`
	JQPathExpressions     []string `json:"jqPathExpressions,omitempty"`
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// Info is extra information shown in Argo CD's UI.
type Info struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ParseApplication decodes one Application from YAML or JSON. Unknown
// fields are errors that name them.
func ParseApplication(doc []byte) (*Application, error) {
	var app Application
	if err := yaml.UnmarshalStrict(doc, &app); err != nil {
		return nil, err
	}
	if app.APIVersion != Group+"/v1alpha1" || app.Kind != "Application" {
		return nil, fmt.Errorf("%s %s is not an Argo CD Application (want apiVersion %s/v1alpha1, kind Application)", app.APIVersion, app.Kind, Group)
	}
	return &app, nil
}

// Raw is a field kept as the JSON it was given: Argo CD's status and
// operation, and the options tend refuses or reads itself. The CRDs leave
// it unchecked (x-kubernetes-preserve-unknown-fields).
type Raw = apiextensionsv1.JSON
