package render

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name: "duplicate across files names both",
		files: map[string]string{
			"app/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n",
			"app/b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup, namespace: team}\n",
		},
		want: []string{"ConfigMap team/dup", "defined twice", "app/a.yaml", "app/b.yaml"},
	}, {
		name: "duplicate with another version of the same kind",
		files: map[string]string{
			"app/a.yaml": "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n",
		},
		want: []string{"HorizontalPodAutoscaler.autoscaling team/h", "defined twice", "app/a.yaml and in app/a.yaml"},
	}, {
		name:  "missing name",
		files: map[string]string{"app/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n"},
		want:  []string{"ConfigMap team/<no name>", "app/a.yaml", "no metadata.name"},
	}, {
		name:  "generateName",
		files: map[string]string{"app/a.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: run-}\n"},
		want:  []string{"Job.batch", "app/a.yaml", "generateName is not supported"},
	}, {
		name:  "cluster-scoped with namespace",
		files: map[string]string{"app/a.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: team}\n"},
		want:  []string{"ClusterRole.rbac.authorization.k8s.io team/r", "app/a.yaml", "cluster-scoped", "remove the namespace"},
	}, {
		name: "custom resource of a cluster-scoped CRD in the same output",
		files: map[string]string{
			"app/crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterwidgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: ClusterWidget, plural: clusterwidgets}
`,
			"app/w.yaml": "apiVersion: example.com/v1\nkind: ClusterWidget\nmetadata: {name: w, namespace: team}\n",
		},
		want: []string{"ClusterWidget.example.com team/w", "cluster-scoped"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			err := renderErr(t, &Renderer{}, root, Options{Path: "app", Namespace: "team"})
			t.Log(err)
			wantErrContains(t, err, tt.want...)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n, namespace: x}\n",
	})
	err := renderErr(t, &Renderer{}, root, Options{Path: "app"})
	wantErrContains(t, err, "ConfigMap <no name>", "Namespace x/n")
}

func TestDefaultNamespaceAndScope(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/objs.yaml": `apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keep, namespace: other}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: set}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: x
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Gadget, plural: gadgets}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
---
apiVersion: example.com/v1
kind: Gizmo
metadata: {name: gz}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: le}
`,
	})
	r := &Renderer{}
	res := mustRender(t, r, root, Options{Path: "app", Namespace: "team"})
	want := []string{
		"Namespace team",
		"ConfigMap other/keep",
		"ConfigMap team/set",
		"StorageClass.storage.k8s.io fast",
		"CustomResourceDefinition.apiextensions.k8s.io gadgets.example.com",
		"Gadget.example.com g",
		"Gizmo.example.com team/gz", // unknown kind: namespaced
		"ClusterIssuer.cert-manager.io team/le",
	}
	if got := ids(res.Objects()); !slices.Equal(got, want) {
		t.Errorf("without discovery:\ngot  %v\nwant %v", got, want)
	}

	// With discovery, ClusterIssuer is known to be cluster-scoped.
	r.Scope = func(gvk schema.GroupVersionKind) (bool, bool) {
		if gvk.GroupKind() == (schema.GroupKind{Group: "cert-manager.io", Kind: "ClusterIssuer"}) {
			return false, true
		}
		return false, false
	}
	res = mustRender(t, r, root, Options{Path: "app", Namespace: "team"})
	want[len(want)-1] = "ClusterIssuer.cert-manager.io le"
	if got := ids(res.Objects()); !slices.Equal(got, want) {
		t.Errorf("with discovery:\ngot  %v\nwant %v", got, want)
	}
}
