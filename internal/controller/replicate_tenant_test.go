package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/replicate"
	"github.com/tend-gitops/tend/internal/testenv"
)

// A Secret replicated by an App with a ServiceAccount is copied as that
// account, within the App's Project: into a namespace where both allow it
// the copy is made; where the Project has no destination, or the account
// may not create Secrets, it is not, and an event on the App names the
// rule or the account and the namespace.
func TestReplicationActsAsTheAppsServiceAccount(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	cs := e.Clientset
	ns := e.Namespace
	key := "replicate-tenant-test"
	allowed := e.namespace(t, "ok", map[string]string{key: ns})
	outside := e.namespace(t, "outside", map[string]string{key: ns})
	noRBAC := e.namespace(t, "norbac", map[string]string{key: ns})

	// The account may manage Secrets in its own namespace and in the two
	// namespaces it is granted; the Project covers its own namespace and
	// two others.
	e.serviceAccountMay(t, "deployer", "secrets", ns, allowed, outside)
	repo := newCtlRepo(t)
	repo.commit("replicated", map[string]string{"app/secret.yaml": replicatedSecretYAML("t1", "web", key+"="+ns)})
	e.create(t,
		&tendv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: tendv1.ProjectSpec{
			SourceRepos:  []string{"*"},
			Destinations: []tendv1.ProjectDestination{{Namespace: ns}, {Namespace: allowed}, {Namespace: noRBAC}},
		}},
		gitSource("repo", repo.URL),
		newApp("app", "repo", "app", ns, func(a *tendv1.App) {
			a.Spec.Project = "team"
			a.Spec.ServiceAccountName = "deployer"
		}))
	e.waitApp(t, "app", "Synced as its ServiceAccount", time.Minute, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })

	eventually(t, "the copy in the namespace both allow", time.Minute, func() bool {
		_, err := cs.CoreV1().Secrets(allowed).Get(ctx, "shared", metav1.GetOptions{})
		return err == nil
	})
	refused := func(target, want string) {
		t.Helper()
		var seen []string
		if !testenv.Within(time.Minute, func() bool {
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=App,involvedObject.name=app,reason=" + replicate.ReasonReplicationRefused})
			if err != nil {
				return false
			}
			seen = seen[:0]
			for _, ev := range evs.Items {
				seen = append(seen, ev.Message)
				if strings.Contains(ev.Message, want) {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no event on the App refusing the copy into %s with %q; its %s events: %q", target, want, replicate.ReasonReplicationRefused, seen)
		}
		if _, err := cs.CoreV1().Secrets(target).Get(ctx, "shared", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Secret shared in namespace %s: %v, want no copy", target, err)
		}
	}
	refused(outside, `namespace "`+outside+`" on cluster "in-cluster" matches no entry of spec.destinations`)
	refused(noRBAC, "system:serviceaccount:"+ns+":deployer may not create Secrets in namespace "+noRBAC)

	// The App deleted, its Secret left behind (Orphan): a namespace that
	// comes to match gets no copy, there being no App to act for.
	app := e.app(t, "app")
	app.Spec.DeletionPolicy = tendv1.DeletionOrphan
	if err := e.c.Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, app); err != nil {
		t.Fatal(err)
	}
	eventually(t, "App app gone", time.Minute, func() bool {
		var a tendv1.App
		return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKeyFromObject(app), &a))
	})
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Fatalf("the orphaned source Secret: %v", err)
	}
	later := e.namespace(t, "later", map[string]string{key: ns})
	refused(later, "the App "+ns+"/app that applied it is gone")
}

// serviceAccountMay creates the ServiceAccount name in the test namespace,
// allowed every verb on resource (core group) in each of namespaces by a
// Role and RoleBinding there.
func (e *ctlEnv) serviceAccountMay(t *testing.T, name, resource string, namespaces ...string) {
	t.Helper()
	ctx := context.Background()
	cs := e.Clientset
	if _, err := cs.CoreV1().ServiceAccounts(e.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, target := range namespaces {
		if _, err := cs.RbacV1().Roles(target).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: resource}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{resource}, Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"},
		}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.RbacV1().RoleBindings(target).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: resource},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e.Namespace}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
