package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tend-gitops/tend/internal/testenv"
)

// access is one question to the authorizer about tend's ServiceAccount.
type access struct {
	verb, group, resource, namespace, name string
	// leastPrivilege is the answer in the default mode; cluster-admin
	// allows everything.
	leastPrivilege bool
}

func (a access) String() string {
	ns := a.namespace
	if ns == "" {
		ns = "(all)"
	}
	res := a.resource
	if a.group != "" {
		res += "." + a.group
	}
	if a.name != "" {
		res += "/" + a.name
	}
	return fmt.Sprintf("%s %s in %s", a.verb, res, ns)
}

func accesses(tendNS string) []access {
	return []access{
		{"watch", "tend.dev", "apps", "", "", true},
		{"patch", "tend.dev", "apps/status", "default", "", true},
		{"update", "tend.dev", "sources/finalizers", "default", "", true},
		{"patch", "apps", "deployments", "default", "", true},
		{"create", "", "configmaps", "default", "", true},
		{"create", "", "secrets", "default", "", true}, // inventory Secrets
		{"get", "", "secrets", "kube-system", "", true},
		{"watch", "networking.k8s.io", "ingresses", "", "", true},
		{"create", "events.k8s.io", "events", "default", "", true},
		{"create", "", "events", "default", "", true},
		{"update", "coordination.k8s.io", "leases", tendNS, "", true},
		{"create", "apiextensions.k8s.io", "customresourcedefinitions", "", "", true},
		{"create", "rbac.authorization.k8s.io", "rolebindings", "default", "", true},

		// No escalation in least privilege.
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", false},
		{"create", "rbac.authorization.k8s.io", "clusterroles", "", "", false},
		{"bind", "rbac.authorization.k8s.io", "clusterroles", "", "", false},
		{"escalate", "rbac.authorization.k8s.io", "roles", "default", "", false},
		{"update", "coordination.k8s.io", "leases", "kube-system", "", false},
		{"create", "", "pods", "default", "", false},
		{"delete", "", "nodes", "", "", false},
		{"create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", false},
		{"patch", "rbac.authorization.k8s.io", "clusterrolebindings", "", "cluster-admin", false},

		// tend managing itself may apply its own ClusterRole and binding.
		{"patch", "rbac.authorization.k8s.io", "clusterroles", "", ClusterName(tendNS), true},
		{"patch", "rbac.authorization.k8s.io", "clusterrolebindings", "", ClusterName(tendNS), true},
	}
}

func TestInstalledRBAC(t *testing.T) {
	for _, mode := range []struct {
		name         string
		clusterAdmin bool
	}{{"least-privilege", false}, {"cluster-admin", true}} {
		t.Run(mode.name, func(t *testing.T) {
			env := testenv.New(t)
			ns := env.Namespace + "-sys"
			objs := installTend(t, env, Options{Namespace: ns, ClusterAdmin: mode.clusterAdmin})

			sa := "system:serviceaccount:" + ns + ":" + Name
			groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
			ask := func(a access) (bool, string) {
				sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User: sa, Groups: groups,
					ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.namespace, Name: a.name},
				}}
				if res, sub, ok := strings.Cut(a.resource, "/"); ok {
					sar.Spec.ResourceAttributes.Resource, sar.Spec.ResourceAttributes.Subresource = res, sub
				}
				res, err := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("SubjectAccessReview %s: %v", a, err)
				}
				return res.Status.Allowed, res.Status.Reason
			}
			// The RBAC authorizer learns of new bindings from a watch: ask
			// the allowed questions until they are.
			for _, a := range accesses(ns) {
				want := a.leastPrivilege || mode.clusterAdmin
				if !want {
					continue
				}
				deadline := time.Now().Add(15 * time.Second)
				for {
					ok, reason := ask(a)
					if ok {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("tend cannot %s (%s)", a, reason)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			for _, a := range accesses(ns) {
				if a.leastPrivilege || mode.clusterAdmin {
					continue
				}
				if ok, reason := ask(a); ok {
					t.Errorf("tend can %s (%s); least privilege must not", a, reason)
				}
			}

			if !mode.clusterAdmin {
				noEscalation(t, env.Config, ns, sa, objs)
			}
			deploymentReady(t, env.Clientset, objs)
		})
	}
}

// installTend applies the manifests as `kubectl apply --server-side` would
// and removes what is not shared with other tests (everything but the
// CRDs) when the test ends.
func installTend(t *testing.T, env *testenv.Env, opts Options) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Manifests(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		for i := len(objs) - 1; i >= 0; i-- {
			o := objs[i]
			if o.GetKind() == "CustomResourceDefinition" || o.GetNamespace() != "" {
				continue // shared; or deleted with the namespace
			}
			if err := env.Client.Delete(ctx, o.DeepCopy(), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	})
	for _, o := range objs {
		// Other tests install the same CRDs with update: take them over
		// like `kubectl apply --server-side --force-conflicts`.
		err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("tend-install"), client.ForceOwnership)
		if err != nil {
			t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	return objs
}

// noEscalation checks, as tend's ServiceAccount, that least-privilege tend
// can apply RBAC granting what it holds, its own ClusterRole included (tend
// managing itself from git), and is refused RBAC granting more.
func noEscalation(t *testing.T, admin *rest.Config, ns, sa string, objs []*unstructured.Unstructured) {
	t.Helper()
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: sa}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	role := func(name, resource, verb string) *rbacv1.Role {
		return &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{resource}, Verbs: []string{verb}}},
		}
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role("held", "configmaps", "create"), metav1.CreateOptions{}); err != nil {
		t.Errorf("tend cannot create a Role granting what it holds: %v", err)
	}
	_, err = cs.RbacV1().Roles(ns).Create(ctx, role("more", "pods", "create"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("tend created a Role granting more than it holds: err = %v, want Forbidden", err)
	}

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("tend"), client.ForceOwnership); err != nil {
			t.Errorf("tend cannot apply its own %s %s unchanged: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() != "ClusterRole" {
			continue
		}
		more := o.DeepCopy()
		rules, _, _ := unstructured.NestedSlice(more.Object, "rules")
		rules = append(rules, map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"create"}})
		_ = unstructured.SetNestedSlice(more.Object, rules, "rules")
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(more), client.FieldOwner("tend"), client.ForceOwnership)
		if !apierrors.IsForbidden(err) {
			t.Errorf("tend widened its own ClusterRole: err = %v, want Forbidden", err)
		}
	}
}

// deploymentReady waits until the controller Deployment has all replicas
// ready: its pods pass the namespace's restricted Pod Security admission
// (kwok nodes run no containers; the image is never pulled).
func deploymentReady(t *testing.T, cs kubernetes.Interface, objs []*unstructured.Unstructured) {
	t.Helper()
	var ns string
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			ns = o.GetNamespace()
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), Name, metav1.GetOptions{})
		if err != nil {
			d = &appsv1.Deployment{}
		}
		if err == nil && d.Spec.Replicas != nil && d.Status.ReadyReplicas == *d.Spec.Replicas && d.Status.ObservedGeneration == d.Generation {
			return
		}
		if time.Now().After(deadline) {
			rs, _ := cs.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
			var conds []string
			for _, r := range rs.Items {
				for _, c := range r.Status.Conditions {
					conds = append(conds, string(c.Type)+": "+c.Message)
				}
			}
			t.Fatalf("Deployment %s/%s not ready after 60s (err %v, status %+v); ReplicaSet conditions: %v", ns, Name, err, d.Status, conds)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
