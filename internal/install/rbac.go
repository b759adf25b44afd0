package install

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// applyKinds are the kinds least-privilege tend may create, update, patch
// and delete for Apps, by API group ("" is the core group). Apps applying
// any other kind fail with Forbidden until the cluster admin grants it (a
// ClusterRole bound to tend's ServiceAccount) or installs the
// cluster-admin mode. docs/install.md lists the same kinds.
var applyKinds = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"configmaps", "namespaces", "persistentvolumeclaims", "secrets", "serviceaccounts", "services"}},
	{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments", "statefulsets"}},
	{APIGroups: []string{"batch"}, Resources: []string{"cronjobs", "jobs"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "networkpolicies"}},
	{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}},
	{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}},
	// Without bind and escalate, the apiserver rejects a Role or
	// RoleBinding that grants more than tend itself holds.
	{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"rolebindings", "roles"}},
	{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}},
}

var writeVerbs = []string{"create", "delete", "patch", "update"}

// clusterRole is tend's least-privilege ClusterRole.
func clusterRole(o Options, crds []runtime.Object, compat []*unstructured.Unstructured) *rbacv1.ClusterRole {
	// tend's own kinds, from the CRDs, so that a new CRD is never
	// forgotten here.
	var own []string
	for _, obj := range crds {
		plural, _, _ := unstructured.NestedString(obj.(*unstructured.Unstructured).Object, "spec", "names", "plural")
		own = append(own, plural, plural+"/finalizers", plural+"/status")
	}
	rules := []rbacv1.PolicyRule{
		{
			APIGroups: []string{"tend.dev"},
			Resources: own,
			Verbs:     []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		},
		// Read everything: tend watches the kinds its Apps manage (to see
		// drift and assess health) and reads Secrets (Helm values, SOPS
		// keys, git and registry credentials, remote kubeconfigs).
		{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
		// Events on Apps and Sources, in whatever namespace they live.
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		// Apps with a ServiceAccount (spec.serviceAccountName): tend acts
		// as that account, and asks the API server first what the
		// account may do.
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"impersonate"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
	// Argo CD and Flux objects tend reconciles as they are: their status
	// and the finalizers of the tool that is gone.
	for _, crd := range compat {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		rules = append(rules, rbacv1.PolicyRule{
			APIGroups: []string{group},
			Resources: []string{plural, plural + "/finalizers", plural + "/status"},
			Verbs:     []string{"patch", "update"},
		})
	}
	// Inventory Secrets live next to their App, in any namespace; the
	// secrets rule in applyKinds covers them.
	for _, k := range applyKinds {
		k.Verbs = writeVerbs
		rules = append(rules, k)
	}
	// tend managing itself from git (`tend bootstrap`) applies this very
	// ClusterRole and its binding. Without escalate and bind, it can only
	// set rules it already holds: this adds no power, and it cannot create
	// or touch any other cluster-wide RBAC.
	rules = append(rules, rbacv1.PolicyRule{
		APIGroups:     []string{"rbac.authorization.k8s.io"},
		Resources:     []string{"clusterrolebindings", "clusterroles"},
		ResourceNames: []string{ClusterName(o.Namespace)},
		Verbs:         []string{"patch", "update"},
	})
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: meta(o, ClusterName(o.Namespace), ""),
		Rules:      rules,
	}
}
