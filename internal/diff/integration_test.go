package diff_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tend-gitops/tend/internal/diff"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

// An autoscaler-like controller takes spec.replicas over with an Update; a
// Managers rule makes tend stop declaring it, and tend's next apply leaves
// the autoscaler's value alone.
func TestIgnoreAutoscalerReplicasOnRealCluster(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	dc, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	deployments := dc.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(env.Namespace)
	desired := object(t, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: `+env.Namespace+`
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
`)
	applyAsTend := func(obj *unstructured.Unstructured) *unstructured.Unstructured {
		t.Helper()
		out, err := deployments.Apply(ctx, "web", obj, metav1.ApplyOptions{FieldManager: "tend", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	live := applyAsTend(desired)

	// The deployment controller writes status meanwhile: retry on conflict
	// with a fresh copy.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(cur.Object, int64(5), "spec", "replicas"); err != nil {
			return err
		}
		live, err = deployments.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "hpa-like"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// Without the rule, the diff shows tend would scale back to 2.
	if d, err := diff.Compare(desired, live); err != nil || d.Action != diff.ActionUpdate {
		t.Fatalf("Compare without the rule: %v %+v", err, d)
	}

	pruned, err := diff.ApplyIgnoreRules(desired, live, []diff.IgnoreRule{{Group: "apps", Kind: "Deployment", Managers: []string{"hpa-like"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(pruned.Object, "spec", "replicas"); found {
		t.Fatalf("spec.replicas still desired after the hpa-like rule: %v", pruned.Object["spec"])
	}
	if image, _, _ := unstructured.NestedSlice(pruned.Object, "spec", "template", "spec", "containers"); len(image) != 1 {
		t.Fatalf("containers lost: %v", pruned.Object["spec"])
	}
	if d, err := diff.Compare(pruned, live); err != nil || d.Action != diff.ActionUnchanged {
		t.Fatalf("Compare with the rule: %v %s\n%s", err, d.Action, d.Unified)
	}

	after := applyAsTend(pruned)
	if got, _, _ := unstructured.NestedInt64(after.Object, "spec", "replicas"); got != 5 {
		t.Fatalf("after tend applied the pruned object, replicas = %d, want hpa-like's 5", got)
	}
}

// Objects as renderers write them compare unchanged with what the API server
// made of them: defaults, normalised quantities, Secret stringData.
func TestCompareAfterApplyIsUnchanged(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	dc, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(env.Config, hc)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := livestate.New(env.Config, mapper, livestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	for _, tc := range []struct {
		resource string
		group    string
		doc      string
	}{
		{"deployments", "apps", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + env.Namespace + `, creationTimestamp: null}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, creationTimestamp: null}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 8080, name: http}]
        resources: {requests: {cpu: "0.5", memory: 1Gi}, limits: {memory: 1073741824}}
        env: [{name: Z, value: "1"}, {name: A, value: "2"}]
status: {}
`},
		{"services", "", `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ` + env.Namespace + `}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http, name: http}]
`},
		{"secrets", "", `
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: ` + env.Namespace + `}
stringData: {password: hunter2}
data: {token: ` + b64("tok") + `}
`},
	} {
		desired := object(t, tc.doc)
		gvr := schema.GroupVersionResource{Group: tc.group, Version: "v1", Resource: tc.resource}
		live, err := dc.Resource(gvr).Namespace(env.Namespace).Apply(ctx, desired.GetName(), desired, metav1.ApplyOptions{FieldManager: "tend", Force: true})
		if err != nil {
			t.Fatalf("apply %s: %v", tc.resource, err)
		}
		d, err := diff.Compare(desired, live)
		if err != nil {
			t.Fatal(err)
		}
		if d.Action != diff.ActionUnchanged {
			t.Errorf("%s right after apply: %s\n%s", tc.resource, d.Action, d.Unified)
		}

		// The same against the trimmed, hashed copy in the live state cache.
		gvk := live.GroupVersionKind()
		if err := cache.Watch(ctx, gvk); err != nil {
			t.Fatal(err)
		}
		cache.Observe(live)
		cached, ok := cache.Get(gvk, env.Namespace, desired.GetName())
		if !ok {
			t.Fatalf("%s not cached", tc.resource)
		}
		d, err = diff.Compare(desired, cached)
		if err != nil {
			t.Fatal(err)
		}
		if d.Action != diff.ActionUnchanged {
			t.Errorf("%s against the cache: %s\n%s", tc.resource, d.Action, d.Unified)
		}
	}
}
