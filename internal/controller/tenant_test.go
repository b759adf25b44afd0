package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestServiceAccountImpersonation: an App with spec.serviceAccountName is
// applied as that ServiceAccount (an admission policy on the API server
// refuses the write from anybody but the namespace's ServiceAccounts), so the tenant's RBAC limits it. An
// App that would create a ClusterRole, or write into another tenant's
// namespace, is Stalled with a condition naming the verb and the object,
// and nothing of it is applied, not even its allowed objects. An App whose
// ServiceAccount does not exist waits, and syncs once it is created.
func TestServiceAccountImpersonation(t *testing.T) {
	other := fmt.Sprintf("tenant-b-%d", time.Now().UnixNano()%1_000_000)
	e := startControllerWith(t, func(o *Options) { o.Namespaces = append(o.Namespaces, other) })
	ctx := context.Background()
	ns := e.Namespace
	cs := e.Clientset
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other, Labels: map[string]string{testenv.TestLabel: "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), other, metav1.DeleteOptions{}) })

	// The tenant's ServiceAccounts may manage ConfigMaps in their own
	// namespace, nothing else.
	grant := func(sa string) {
		t.Helper()
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "configmaps"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "configmaps"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"},
	}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grant("deployer")
	mustBeSA(t, cs, ns)

	repo := newCtlRepo(t)
	clusterRole := "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: " + ns + "-escalate\nrules:\n- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n"
	crossNS := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: intruder\n  namespace: " + other + "\ndata:\n  v: \"1\"\n"
	repo.commit("tenants", map[string]string{
		"apps/ok/cm.yaml":       labelled(configMapYAML("ok", "1")),
		"apps/escalate/cm.yaml": labelled(configMapYAML("escalate-allowed", "1")),
		"apps/escalate/cr.yaml": clusterRole,
		"apps/cross/cm.yaml":    labelled(configMapYAML("cross-allowed", "1")),
		"apps/cross/other.yaml": crossNS,
		"apps/later/cm.yaml":    labelled(configMapYAML("later", "1")),
	})
	asSA := func(sa string) func(*tendv1.App) {
		return func(a *tendv1.App) { a.Spec.ServiceAccountName = sa }
	}
	e.create(t, gitSource("repo", repo.URL),
		newApp("ok", "repo", "apps/ok", ns, asSA("deployer")),
		newApp("escalate", "repo", "apps/escalate", ns, asSA("deployer")),
		newApp("cross", "repo", "apps/cross", ns, asSA("deployer")),
		newApp("later", "repo", "apps/later", ns, asSA("late")))

	e.waitApp(t, "ok", "synced as the ServiceAccount", time.Minute, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "ok", metav1.GetOptions{}); err != nil {
		t.Fatalf("App ok's ConfigMap: %v", err)
	}
	forbidden := func(name, want string) {
		t.Helper()
		e.waitApp(t, name, "Stalled naming what the ServiceAccount may not do", time.Minute, func(a *tendv1.App) bool {
			c := condition(a, tendv1.ConditionStalled)
			return c != nil && c.Reason == ReasonForbidden && strings.Contains(c.Message, "system:serviceaccount:"+ns+":deployer may not") &&
				strings.Contains(c.Message, want) && strings.Contains(c.Message, "nothing of this revision was applied")
		})
	}
	forbidden("escalate", "create clusterroles.rbac.authorization.k8s.io at the cluster scope (rbac.authorization.k8s.io/ClusterRole "+ns+"-escalate)")
	forbidden("cross", "create configmaps in namespace "+other+" (ConfigMap "+other+"/intruder)")
	for _, n := range []struct{ ns, name string }{{ns, "escalate-allowed"}, {ns, "cross-allowed"}, {other, "intruder"}} {
		if _, err := cs.CoreV1().ConfigMaps(n.ns).Get(ctx, n.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s/%s of a refused App: %v, want it never applied", n.ns, n.name, err)
		}
	}
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx, ns+"-escalate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the tenant's ClusterRole: %v, want it never created", err)
	}

	e.waitApp(t, "later", "waiting for its ServiceAccount", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonServiceAccountNotFound && strings.Contains(c.Message, "ServiceAccount "+ns+"/late") &&
			condition(a, tendv1.ConditionStalled) == nil
	})
	grant("late")
	e.waitApp(t, "later", "synced once its ServiceAccount exists", 2*time.Minute, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })

	// Deleting an App prunes as its ServiceAccount; with the account gone,
	// tend does not prune as itself: the objects stay, an event says why.
	if err := e.c.Delete(ctx, e.app(t, "ok")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "App ok's ConfigMap pruned as its ServiceAccount", time.Minute, func() bool {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "ok", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if err := cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, e.app(t, "later")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "App later gone, with an event saying its objects stay", time.Minute, func() bool {
		var a tendv1.App
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "later"}, &a); !apierrors.IsNotFound(err) {
			return false
		}
		evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=later,reason=" + ReasonServiceAccountNotFound})
		return err == nil && len(evs.Items) > 0 && strings.Contains(evs.Items[0].Message, "its objects stay")
	})
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "later", metav1.GetOptions{}); err != nil {
		t.Errorf("App later's ConfigMap after the App was deleted without its ServiceAccount: %v, want it kept", err)
	}
}

// labelled adds the label the admission policy of mustBeSA checks to a
// manifest.
func labelled(manifest string) string {
	return strings.Replace(manifest, "metadata:\n", "metadata:\n  labels:\n    tend-test/written-by: service-account\n", 1)
}

// mustBeSA installs a ValidatingAdmissionPolicy refusing writes of
// labelled ConfigMaps in ns by anybody but the namespace's ServiceAccounts, and
// waits until the API server enforces it (a write by the test's own
// identity is refused).
func mustBeSA(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	name := "tend-test-" + ns
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{
				NamespaceSelector: selector,
				ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}}},
			},
			Validations: []admissionv1.Validation{{
				Expression: fmt.Sprintf("request.userInfo.username.startsWith('system:serviceaccount:%s:') || !has(object.metadata.labels) || !('tend-test/written-by' in object.metadata.labels)", ns),
				Message:    "labelled ConfigMaps are written by the namespace's ServiceAccounts only",
			}},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: selector},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: map[string]string{"tend-test/written-by": "service-account"}}}
	testenv.Eventually(t, "the admission policy enforced", time.Minute, func() bool {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err)
	})
}
