package livestate_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestWatchSeesChanges(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	c := newCache(t, env.Config, livestate.Options{})
	rec := &recorder{ns: env.Namespace}
	c.AddHandler(rec)
	watch(t, c, configMapGVK)
	watch(t, c, configMapGVK) // idempotent

	cms := env.Clientset.CoreV1().ConfigMaps(env.Namespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"tier": "web"}}, Data: map[string]string{"k": "one"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, event{kind: configMapGVK, op: "add", name: "app", newData: "one"})
	got, ok := c.Get(configMapGVK, env.Namespace, "app")
	if !ok {
		t.Fatal("Get after the add event: not found")
	}
	if v, _, _ := unstructured.NestedString(got.Object, "data", "k"); v != "one" {
		t.Fatalf("cached data.k = %q, want one", v)
	}

	cm.Data["k"] = "two"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, event{kind: configMapGVK, op: "update", name: "app", oldData: "one", newData: "two"})
	got, _ = c.Get(configMapGVK, env.Namespace, "app")
	if v, _, _ := unstructured.NestedString(got.Object, "data", "k"); v != "two" {
		t.Fatalf("cached data.k after update = %q, want two", v)
	}

	if n := len(c.List(configMapGVK, env.Namespace, labels.SelectorFromSet(labels.Set{"tier": "web"}))); n != 1 {
		t.Fatalf("List with tier=web: %d objects, want 1", n)
	}
	if n := len(c.List(configMapGVK, env.Namespace, labels.SelectorFromSet(labels.Set{"tier": "db"}))); n != 0 {
		t.Fatalf("List with tier=db: %d objects, want 0", n)
	}
	// kube-root-ca.crt is in every namespace too.
	if n := len(c.List(configMapGVK, env.Namespace, nil)); n < 1 {
		t.Fatalf("List of the namespace: %d objects", n)
	}

	if err := cms.Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, event{kind: configMapGVK, op: "delete", name: "app", oldData: "two"})
	if _, ok := c.Get(configMapGVK, env.Namespace, "app"); ok {
		t.Fatal("Get after the delete event: still cached")
	}
}

func TestSecretValuesAreHashed(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	const (
		fromData       = "p4ssw0rd-from-data"
		fromStringData = "t0ken-from-stringdata"
	)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: env.Namespace, Annotations: map[string]string{
			// What kubectl apply leaves behind: the whole object, values included.
			livestate.LastAppliedAnnotation: `{"data":{"password":"` + base64.StdEncoding.EncodeToString([]byte(fromData)) + `"},"stringData":{"token":"` + fromStringData + `"}}`,
			"keep":                          "me",
		}},
		Data:       map[string][]byte{"password": []byte(fromData)},
		StringData: map[string]string{"token": fromStringData},
	}
	if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	c := newCache(t, env.Config, livestate.Options{})
	watch(t, c, secretGVK)
	got, ok := c.Get(secretGVK, env.Namespace, "creds")
	if !ok {
		t.Fatal("Secret not cached")
	}
	raw, err := json.Marshal(got.Object)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{fromData, fromStringData} {
		for _, form := range []string{plain, base64.StdEncoding.EncodeToString([]byte(plain))} {
			if strings.Contains(string(raw), form) {
				t.Errorf("cached Secret contains %q:\n%s", form, raw)
			}
		}
	}
	data, _, _ := unstructured.NestedStringMap(got.Object, "data")
	if got, want := data["password"], livestate.HashSecretValue([]byte(fromData)); got != want {
		t.Errorf("data.password = %q, want %q", got, want)
	}
	if got, want := data["token"], livestate.HashSecretValue([]byte(fromStringData)); got != want {
		t.Errorf("data.token (from stringData) = %q, want %q", got, want)
	}
	if ann := got.GetAnnotations(); ann["keep"] != "me" || ann[livestate.LastAppliedAnnotation] != "" {
		t.Errorf("annotations = %v, want keep=me and no last-applied", ann)
	}
}

func TestOtherManagersAreTrimmed(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	dc := dynamicClient(t, env.Config)
	// "someone" creates it, tend applies its own field, "hpa-like" updates one.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: env.Namespace}, Data: map[string]string{"theirs": "x"}}
	if _, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	apply(t, dc, configMapGVR, configMap(env.Namespace, "shared", map[string]any{"ours": "y"}), "tend")
	live, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Get(ctx, "shared", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live.Data["kept"] = "z"
	if _, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Update(ctx, live, metav1.UpdateOptions{FieldManager: "hpa-like"}); err != nil {
		t.Fatal(err)
	}

	managers := func(c *livestate.Cache) []string {
		t.Helper()
		var got []string
		eventually(t, func() string {
			obj, ok := c.Get(configMapGVK, env.Namespace, "shared")
			if !ok {
				return "not cached"
			}
			if _, ok := obj.Object["data"].(map[string]any)["kept"]; !ok {
				return "update not seen yet"
			}
			got = nil
			for _, e := range obj.GetManagedFields() {
				got = append(got, e.Manager+"/"+string(e.Operation))
			}
			return ""
		})
		return got
	}

	plain := newCache(t, env.Config, livestate.Options{})
	watch(t, plain, configMapGVK)
	if got, want := strings.Join(managers(plain), ","), "tend/Apply"; got != want {
		t.Errorf("managers kept by default = %s, want %s", got, want)
	}

	keep := newCache(t, env.Config, livestate.Options{KeepManagers: []string{"hpa-like"}})
	watch(t, keep, configMapGVK)
	if got, want := strings.Join(managers(keep), ","), "tend/Apply,hpa-like/Update"; got != want {
		t.Errorf("managers kept with KeepManagers = %s, want %s", got, want)
	}
}

func TestOnlyWatchedKindsAreCached(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: env.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := env.Clientset.AppsV1().Deployments(env.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, env.Config, livestate.Options{})
	watch(t, c, configMapGVK)

	counts := c.Counts()
	if _, ok := counts[deploymentGVK]; ok {
		t.Fatalf("Counts has Deployments without a Watch: %v", counts)
	}
	if counts[configMapGVK] < 1 {
		t.Fatalf("Counts[ConfigMap] = %d, want at least 1 (kube-root-ca.crt)", counts[configMapGVK])
	}
	if _, ok := c.Get(deploymentGVK, env.Namespace, "web"); ok {
		t.Fatal("Get found a Deployment without a Watch")
	}
	if c.Watched(deploymentGVK) {
		t.Fatal("Watched(Deployment) before Watch")
	}

	watch(t, c, deploymentGVK)
	if n := c.Counts()[deploymentGVK]; n < 1 {
		t.Fatalf("Counts[Deployment] after Watch = %d", n)
	}
	if _, ok := c.Get(deploymentGVK, env.Namespace, "web"); !ok {
		t.Fatal("Deployment not cached after Watch")
	}

	c.Stop(deploymentGVK)
	if _, ok := c.Counts()[deploymentGVK]; ok {
		t.Fatal("Counts has Deployments after Stop")
	}
	if _, ok := c.Get(deploymentGVK, env.Namespace, "web"); ok {
		t.Fatal("Get found a Deployment after Stop")
	}
}

func TestUnknownKindIsNotServed(t *testing.T) {
	env := testenv.New(t)
	c := newCache(t, env.Config, livestate.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Watch(ctx, schema.GroupVersionKind{Group: "nothing.tend.dev", Version: "v1", Kind: "Nothing"})
	if !errors.Is(err, livestate.ErrKindNotServed) {
		t.Fatalf("Watch of an unknown kind: %v, want ErrKindNotServed", err)
	}
	// A served group with an unknown version is not served either.
	err = c.Watch(ctx, schema.GroupVersionKind{Group: "apps", Version: "v9", Kind: "Deployment"})
	if !errors.Is(err, livestate.ErrKindNotServed) {
		t.Fatalf("Watch of apps/v9: %v, want ErrKindNotServed", err)
	}
}

func TestWatchCustomResourceAfterCRDEstablished(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	group := env.Namespace + ".test.tend.dev"
	gvk := schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Widget"}
	c := newCache(t, env.Config, livestate.Options{})

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Watch(wctx, gvk); !errors.Is(err, livestate.ErrKindNotServed) {
		t.Fatalf("Watch before the CRD exists: %v, want ErrKindNotServed", err)
	}

	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets." + group},
		"spec": map[string]any{
			"group": group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type":                                 "object",
					"x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
	if err := env.Client.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), crd) })
	eventually(t, func() string {
		got := crd.DeepCopy()
		if err := env.Client.Get(ctx, crdKey(crd), got); err != nil {
			return err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, cd := range conds {
			m := cd.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return ""
			}
		}
		return "CRD not Established"
	})
	// Established does not mean the API server's discovery serves the
	// kind yet: the engine waits for both (apply/wait.go), and so does
	// this. A cache that kept "not served" would never get there.
	eventually(t, func() string {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := c.Watch(wctx, gvk); err != nil {
			return err.Error()
		}
		return ""
	})
	dc := dynamicClient(t, env.Config)
	widget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/v1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": "w1", "namespace": env.Namespace},
		"spec":       map[string]any{"size": int64(3)},
	}}
	apply(t, dc, schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}, widget, "tend")
	eventually(t, func() string {
		if _, ok := c.Get(gvk, env.Namespace, "w1"); !ok {
			return "Widget w1 not cached"
		}
		return ""
	})

	// Once the CRD is gone, watching the kind again fails as not served,
	// at once rather than at the deadline, even while the REST mapper
	// still remembers the kind.
	c.Stop(gvk)
	if err := env.Client.Delete(ctx, crd); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if err := env.Client.Get(ctx, crdKey(crd), crd.DeepCopy()); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("CRD still there (%v)", err)
		}
		return ""
	})
	// ErrKindNotServed, not the context's deadline: Watch gave up because
	// the kind is gone, not because it ran out of time.
	wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Watch(wctx, gvk); !errors.Is(err, livestate.ErrKindNotServed) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch after the CRD was deleted: %v, want ErrKindNotServed before the deadline", err)
	}
	if c.Watched(gvk) {
		t.Error("a kind that failed to sync is still watched")
	}
}

func TestObserveIsSeenBeforeTheWatchEvent(t *testing.T) {
	env := testenv.New(t)
	dc := dynamicClient(t, env.Config)
	c := newCache(t, env.Config, livestate.Options{})
	watch(t, c, configMapGVK)
	applied := apply(t, dc, configMapGVR, configMap(env.Namespace, "seen", map[string]any{"k": "v1"}), "tend")
	c.Observe(applied)
	got, ok := c.Get(configMapGVK, env.Namespace, "seen")
	if !ok {
		t.Fatal("Get right after Observe: not found")
	}
	if rv(t, got) < rv(t, applied) {
		t.Fatalf("Get returned resourceVersion %s, older than the observed %s", got.GetResourceVersion(), applied.GetResourceVersion())
	}
	eventually(t, func() string {
		if n := len(c.List(configMapGVK, env.Namespace, labels.Everything())); n != 2 { // with kube-root-ca.crt
			return "List does not have exactly the observed ConfigMap and kube-root-ca.crt"
		}
		return ""
	})

	// An observation older than what the watch delivered is ignored.
	applied2 := apply(t, dc, configMapGVR, configMap(env.Namespace, "seen", map[string]any{"k": "v2"}), "tend")
	eventually(t, func() string {
		got, _ := c.Get(configMapGVK, env.Namespace, "seen")
		if got.GetResourceVersion() != applied2.GetResourceVersion() {
			return "watch has not delivered the second apply"
		}
		return ""
	})
	c.Observe(applied)
	got, _ = c.Get(configMapGVK, env.Namespace, "seen")
	if v, _, _ := unstructured.NestedString(got.Object, "data", "k"); v != "v2" {
		t.Fatalf("after observing an older version, data.k = %q, want v2", v)
	}

	// The store has nothing for a name never written; an observation of it
	// shows in Get, List and Counts: it does not wait for the watch.
	before := c.Counts()[configMapGVK]
	ghost := configMap(env.Namespace, "ghost", map[string]any{"k": "boo"})
	ghost.SetResourceVersion("1")
	c.Observe(ghost)
	if _, ok := c.Get(configMapGVK, env.Namespace, "ghost"); !ok {
		t.Fatal("Get of an observed object not in the store: not found")
	}
	if n := len(c.List(configMapGVK, env.Namespace, labels.Everything())); n != 3 {
		t.Fatalf("List after observing a third object: %d", n)
	}
	if got, want := c.Counts()[configMapGVK], before+1; got != want {
		t.Fatalf("Counts[ConfigMap] = %d, want %d", got, want)
	}
}

func rv(t *testing.T, obj *unstructured.Unstructured) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func crdKey(crd *unstructured.Unstructured) client.ObjectKey {
	return client.ObjectKey{Name: crd.GetName()}
}
