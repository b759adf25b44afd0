package argocd

import (
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// AppProject is an Argo CD AppProject (argoproj.io/v1alpha1), spec only:
// what the Applications naming it may deploy. It maps to a tend Project of
// the same name and namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=appprojects,categories=argo
type AppProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AppProjectSpec `json:"spec"`
	// Status is Argo CD's, read by nothing here.
	Status Raw `json:"status,omitempty"`
}

// AppProjectSpec is an AppProject's spec.
type AppProjectSpec struct {
	Description                string               `json:"description,omitempty"`
	SourceRepos                []string             `json:"sourceRepos,omitempty"`
	Destinations               []ProjectDestination `json:"destinations,omitempty"`
	ClusterResourceWhitelist   []metav1.GroupKind   `json:"clusterResourceWhitelist,omitempty"`
	ClusterResourceBlacklist   []metav1.GroupKind   `json:"clusterResourceBlacklist,omitempty"`
	NamespaceResourceWhitelist []metav1.GroupKind   `json:"namespaceResourceWhitelist,omitempty"`
	NamespaceResourceBlacklist []metav1.GroupKind   `json:"namespaceResourceBlacklist,omitempty"`
	Roles                      Raw                  `json:"roles,omitempty"`
	SyncWindows                Raw                  `json:"syncWindows,omitempty"`
	SignatureKeys              Raw                  `json:"signatureKeys,omitempty"`
	OrphanedResources          Raw                  `json:"orphanedResources,omitempty"`
	SourceNamespaces           []string             `json:"sourceNamespaces,omitempty"`
	DestinationServiceAccounts Raw                  `json:"destinationServiceAccounts,omitempty"`
	PermitOnlyProjectScoped    bool                 `json:"permitOnlyProjectScopedClusters,omitempty"`
}

// ProjectDestination is a server (or cluster name) and namespace pattern.
type ProjectDestination struct {
	Server    string `json:"server,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// ParseAppProject reads an AppProject, refusing unknown fields.
func ParseAppProject(doc []byte) (*AppProject, error) {
	var p AppProject
	if err := yaml.UnmarshalStrict(doc, &p); err != nil {
		return nil, err
	}
	if p.APIVersion != Group+"/v1alpha1" || p.Kind != "AppProject" {
		return nil, fmt.Errorf("%s %s is not an Argo CD AppProject (want apiVersion %s/v1alpha1, kind AppProject)", p.APIVersion, p.Kind, Group)
	}
	return &p, nil
}

// ProjectResult is what an AppProject maps to.
type ProjectResult struct {
	Project  *tendv1.Project
	Warnings []string
}

// ConvertProject maps an AppProject to a tend Project with the same rules.
// A restriction tend cannot enforce is an error naming the field (an
// AppProject whose rules were silently dropped would allow more than its
// author meant); settings that restrict nothing tend does are warnings.
func ConvertProject(p *AppProject) (*ProjectResult, error) {
	where := fmt.Sprintf("AppProject %s/%s", p.Namespace, p.Name)
	var errs []error
	fail := func(field, msg string) { errs = append(errs, fmt.Errorf("%s: %s: %s", where, field, msg)) }
	res := &ProjectResult{}
	warn := func(format string, args ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(format, args...)) }
	s := p.Spec
	out := &tendv1.Project{}
	out.APIVersion, out.Kind = tendv1.GroupVersion.String(), "Project"
	out.Name, out.Namespace, out.Labels = p.Name, p.Namespace, p.Labels
	// spec.description is prose for Argo CD's UI; it restricts nothing.
	out.Spec.SourceRepos = s.SourceRepos
	for i, d := range s.Destinations {
		field := fmt.Sprintf("spec.destinations[%d]", i)
		var cluster string
		switch {
		case d.Name != "" && d.Server != "":
			fail(field, "set name or server, not both")
			continue
		case d.Name == "" && d.Server == "":
			warn("%s: neither server nor name: Argo CD matches no cluster with it; left out", field)
			continue
		case d.Name != "":
			cluster = d.Name // "!name" denies, as in Argo CD
		default:
			server, deny := strings.CutPrefix(d.Server, "!")
			switch server {
			case "*":
				cluster = "*"
			case InCluster:
				cluster = "in-cluster"
			default:
				fail(field+".server", fmt.Sprintf("%q: tend matches clusters by the name of their Cluster object (Argo CD's cluster Secret name); use name instead", d.Server))
				continue
			}
			if deny {
				cluster = "!" + cluster
			}
		}
		if d.Namespace == "" {
			// Argo CD matches an empty pattern to the empty namespace
			// only: cluster-scoped objects, which tend checks by kind.
			warn("%s: no namespace: Argo CD allows no namespaced object with it; left out", field)
			continue
		}
		out.Spec.Destinations = append(out.Spec.Destinations, tendv1.ProjectDestination{Cluster: cluster, Namespace: d.Namespace})
	}
	// Argo CD's semantics, kept: an empty cluster whitelist allows no
	// cluster-scoped kind, an empty namespace whitelist every namespaced
	// kind.
	out.Spec.ClusterResources = tendv1.KindRules{Allow: groupKinds(s.ClusterResourceWhitelist), Deny: groupKinds(s.ClusterResourceBlacklist)}
	out.Spec.NamespacedResources = tendv1.KindRules{Allow: groupKinds(s.NamespaceResourceWhitelist), Deny: groupKinds(s.NamespaceResourceBlacklist)}
	// Argo CD resolves every Application reference in its own namespace.
	out.Spec.AllowCrossNamespaceRefs = false
	if len(s.SyncWindows.Raw) > 0 && string(s.SyncWindows.Raw) != "null" && string(s.SyncWindows.Raw) != "[]" {
		fail("spec.syncWindows", "not supported on a project: set spec.sync.windows on the Apps (Argo CD's window semantics), see docs/adopt.md")
	}
	if len(s.SignatureKeys.Raw) > 0 && string(s.SignatureKeys.Raw) != "null" && string(s.SignatureKeys.Raw) != "[]" {
		fail("spec.signatureKeys", "commit signature verification is not supported")
	}
	if len(s.DestinationServiceAccounts.Raw) > 0 && string(s.DestinationServiceAccounts.Raw) != "null" && string(s.DestinationServiceAccounts.Raw) != "[]" {
		fail("spec.destinationServiceAccounts", "impersonation is not supported yet")
	}
	if s.PermitOnlyProjectScoped {
		fail("spec.permitOnlyProjectScopedClusters", "not supported: list the allowed clusters in spec.destinations")
	}
	if len(s.Roles.Raw) > 0 && string(s.Roles.Raw) != "null" && string(s.Roles.Raw) != "[]" {
		warn("spec.roles: Argo CD's API roles and tokens have no use under tend (no Argo CD API server)")
	}
	if len(s.OrphanedResources.Raw) > 0 && string(s.OrphanedResources.Raw) != "null" {
		warn("spec.orphanedResources: orphaned-resource monitoring is not done by tend")
	}
	if len(s.SourceNamespaces) > 0 {
		warn("spec.sourceNamespaces: tend's Apps name a Project in their own namespace; Applications elsewhere cannot use this one")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	res.Project = out
	return res, nil
}

func groupKinds(in []metav1.GroupKind) []tendv1.GroupKindPattern {
	var out []tendv1.GroupKindPattern
	for _, gk := range in {
		out = append(out, tendv1.GroupKindPattern{Group: gk.Group, Kind: gk.Kind})
	}
	return out
}
