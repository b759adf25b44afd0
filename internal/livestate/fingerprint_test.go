package livestate_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestFingerprintWithoutApplyEntry(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{
		"uid": "u1",
		"managedFields": []any{
			map[string]any{"manager": "tend", "operation": "Update", "fieldsV1": map[string]any{"f:data": map[string]any{}}},
			map[string]any{"manager": "tend", "operation": "Apply", "subresource": "status", "fieldsV1": map[string]any{"f:status": map[string]any{}}},
			map[string]any{"manager": "kubectl", "operation": "Apply", "fieldsV1": map[string]any{"f:data": map[string]any{}}},
		},
	}}}
	if got := livestate.Fingerprint(obj, "tend"); got != "" {
		t.Fatalf("Fingerprint without a main-resource Apply entry for tend = %q, want empty", got)
	}
	if got := livestate.Fingerprint(nil, "tend"); got != "" {
		t.Fatalf("Fingerprint(nil) = %q", got)
	}
	if livestate.Fingerprint(obj, "kubectl") == "" {
		t.Fatal("Fingerprint for kubectl's Apply entry is empty")
	}
}

func TestFingerprintDetectsDrift(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	dc := dynamicClient(t, env.Config)
	c := newCache(t, env.Config, livestate.Options{})
	watch(t, c, configMapGVK)
	cms := env.Clientset.CoreV1().ConfigMaps(env.Namespace)
	desired := configMap(env.Namespace, "app", map[string]any{"a": "1", "b": "2"})

	// cached returns the fingerprint of the cached object once the cache
	// holds resourceVersion rv or later.
	cached := func(rv string) string {
		t.Helper()
		var fp string
		eventually(t, func() string {
			obj, ok := c.Get(configMapGVK, env.Namespace, "app")
			if !ok || obj.GetResourceVersion() != rv {
				return fmt.Sprintf("cache does not hold resourceVersion %s yet", rv)
			}
			fp = livestate.Fingerprint(obj, "tend")
			return ""
		})
		return fp
	}
	check := func(step, rv, want string, same bool) string {
		t.Helper()
		got := cached(rv)
		if got == "" {
			t.Fatalf("%s: empty fingerprint", step)
		}
		if (got == want) != same {
			t.Errorf("%s: fingerprint %s, recorded %s; want equal = %v", step, got, want, same)
		}
		return got
	}

	applied := apply(t, dc, configMapGVR, desired, "tend")
	recorded := livestate.Fingerprint(applied, "tend")
	if recorded == "" {
		t.Fatal("no fingerprint on the apply response")
	}
	check("cache after apply", applied.GetResourceVersion(), recorded, true)

	// Re-applying the same content changes nothing (the API server does not
	// even write).
	again := apply(t, dc, configMapGVR, desired, "tend")
	if got := livestate.Fingerprint(again, "tend"); got != recorded {
		t.Errorf("re-apply of the same content: fingerprint %s, recorded %s", got, recorded)
	}

	// Another manager adding a field tend does not own is not drift.
	live, err := cms.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live.Data["c"] = "3"
	live, err = cms.Update(ctx, live, metav1.UpdateOptions{FieldManager: "adder"})
	if err != nil {
		t.Fatal(err)
	}
	check("another manager added a field", live.ResourceVersion, recorded, true)

	// A second applier setting the same value on a tend-owned field shares
	// ownership: not drift.
	shared := apply(t, dc, configMapGVR, configMap(env.Namespace, "app", map[string]any{"a": "1"}), "other-applier")
	check("a second applier set the same value", shared.GetResourceVersion(), recorded, true)

	// kubectl edit: an Update changing a tend-owned field is drift.
	live, err = cms.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live.Data["b"] = "edited"
	live, err = cms.Update(ctx, live, metav1.UpdateOptions{FieldManager: "someone"})
	if err != nil {
		t.Fatal(err)
	}
	check("an Update changed a tend-owned field", live.ResourceVersion, recorded, false)

	// tend re-applies: ownership, and with it the fingerprint, is restored.
	healed := apply(t, dc, configMapGVR, desired, "tend")
	check("after tend re-applied", healed.GetResourceVersion(), recorded, true)

	// Another applier forcing a different value on a tend-owned field is drift.
	forced := apply(t, dc, configMapGVR, configMap(env.Namespace, "app", map[string]any{"a": "forced"}), "other-applier")
	check("another applier forced a new value", forced.GetResourceVersion(), recorded, false)

	// Deleting and recreating with identical content changes the UID.
	if err := cms.Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	recreated := apply(t, dc, configMapGVR, desired, "tend")
	check("deleted and recreated", recreated.GetResourceVersion(), recorded, false)
}
