package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/testenv"
)

// TestMain lets testenv stop the control plane it started, if any.
func TestMain(m *testing.M) { testenv.Main(m) }

func TestGeneratedFilesAreCurrent(t *testing.T) {
	for _, f := range Files {
		t.Run(f.Name, func(t *testing.T) {
			want, err := Render(f.Options)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("..", "..", "config", "install", f.Name)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v: run `go run ./internal/install/gen`", err)
			}
			if bytes.Equal(got, want) {
				return
			}
			diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A: difflib.SplitLines(string(got)), B: difflib.SplitLines(string(want)),
				FromFile: "config/install/" + f.Name, ToFile: "generated", Context: 2,
			})
			if len(diff) > 4000 {
				diff = diff[:4000] + "\n[...]"
			}
			t.Fatalf("config/install/%s is stale: run `go run ./internal/install/gen`\n%s", f.Name, diff)
		})
	}
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func TestManifestsDefaults(t *testing.T) {
	objs, err := Manifests(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := objs[0].GetKind()+"/"+objs[0].GetName(), "Namespace/tend-system"; got != want {
		t.Errorf("first object = %s, want %s (the namespace must exist first)", got, want)
	}
	if got, want := len(find(objs, "CustomResourceDefinition")), 8; got != want {
		t.Errorf("CRDs = %d, want %d: %v", got, want, kinds(objs))
	}
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment"} {
		if len(find(objs, kind)) != 1 {
			t.Errorf("want one %s in %v", kind, kinds(objs))
		}
	}
	dep := find(objs, "Deployment")[0]
	if got, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); got != 2 {
		t.Errorf("replicas = %d, want 2", got)
	}
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	if got, want := c["image"], "ghcr.io/tend-gitops/tend:latest"; got != want {
		t.Errorf("image = %v, want %v", got, want)
	}
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	for _, want := range []string{"controller", "--leader-elect", "--leader-election-namespace=tend-system", "--data-dir=/var/lib/tend"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
}

func TestManifestsOptions(t *testing.T) {
	objs, err := Manifests(Options{Namespace: "gitops", Version: "v1.2.3", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	cr, crb := find(objs, "ClusterRole")[0], find(objs, "ClusterRoleBinding")[0]
	if cr.GetName() != "tend-gitops" || crb.GetName() != "tend-gitops" {
		t.Errorf("ClusterRole %s, ClusterRoleBinding %s: want tend-gitops outside tend-system", cr.GetName(), crb.GetName())
	}
	if ref, _, _ := unstructured.NestedString(crb.Object, "roleRef", "name"); ref != "tend-gitops" {
		t.Errorf("binding refers to %s", ref)
	}
	dep := find(objs, "Deployment")[0]
	if dep.GetNamespace() != "gitops" {
		t.Errorf("Deployment in %s", dep.GetNamespace())
	}
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if got, want := containers[0].(map[string]any)["image"], "ghcr.io/tend-gitops/tend:v1.2.3"; got != want {
		t.Errorf("image = %v, want %v", got, want)
	}
	if got, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); got != 3 {
		t.Errorf("replicas = %d, want 3", got)
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace" || o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding" {
			continue
		}
		if o.GetNamespace() != "gitops" {
			t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}

	// --compat and its decryption Secret reach the controller's arguments.
	objs, err = Manifests(Options{Compat: []string{"argo"}, ArgoDecryptionSecret: "sops-age"})
	if err != nil {
		t.Fatal(err)
	}
	containers, _, _ = unstructured.NestedSlice(find(objs, "Deployment")[0].Object, "spec", "template", "spec", "containers")
	if args := fmt.Sprint(containers[0].(map[string]any)["args"]); !strings.Contains(args, "--compat=argo") || !strings.Contains(args, "--argo-decryption-secret=sops-age") {
		t.Errorf("controller args %s: want --compat=argo and --argo-decryption-secret=sops-age", args)
	}
	if _, err := Manifests(Options{ArgoDecryptionSecret: "sops-age"}); err == nil || !strings.Contains(err.Error(), "--compat argo") {
		t.Errorf("decryption Secret without --compat argo: err = %v", err)
	}

	if _, err := Manifests(Options{Namespace: "Not_A_Namespace"}); err == nil || !strings.Contains(err.Error(), "Not_A_Namespace") {
		t.Errorf("bad namespace: err = %v", err)
	}
	if _, err := Manifests(Options{Replicas: -1}); err == nil {
		t.Error("negative replicas: no error")
	}
}

func TestClusterAdminReplacesLeastPrivilege(t *testing.T) {
	objs, err := Manifests(Options{ClusterAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(find(objs, "ClusterRole")) + len(find(objs, "Role")); n != 0 {
		t.Errorf("cluster-admin mode has %d (Cluster)Roles of its own: %v", n, kinds(objs))
	}
	crbs := find(objs, "ClusterRoleBinding")
	if len(crbs) != 1 {
		t.Fatalf("ClusterRoleBindings: %v", kinds(objs))
	}
	if ref, _, _ := unstructured.NestedString(crbs[0].Object, "roleRef", "name"); ref != "cluster-admin" {
		t.Errorf("binding refers to %s, want cluster-admin", ref)
	}
	// A binding's roleRef is immutable: the two modes must not share a
	// binding name, or switching modes fails.
	if crbs[0].GetName() == ClusterName("") {
		t.Errorf("cluster-admin binding named %s, like the least-privilege one", crbs[0].GetName())
	}
}

func TestLeastPrivilegeCoversEveryCRD(t *testing.T) {
	objs, err := Manifests(Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules, _, _ := unstructured.NestedSlice(find(objs, "ClusterRole")[0].Object, "rules")
	var own []string
	for _, r := range rules {
		groups, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "apiGroups")
		if slices.Contains(groups, "tend.dev") {
			own, _, _ = unstructured.NestedStringSlice(r.(map[string]any), "resources")
		}
	}
	for _, crd := range find(objs, "CustomResourceDefinition") {
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		for _, res := range []string{plural, plural + "/status", plural + "/finalizers"} {
			if !slices.Contains(own, res) {
				t.Errorf("ClusterRole lacks tend.dev %s", res)
			}
		}
	}
}
