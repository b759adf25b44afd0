package apply_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/apply/secret"
)

var secretGVK = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

// generatedSecret is a Secret whose password and api-key tend generates;
// user comes from git although the annotation lists it too.
func generatedSecret(keys, labels string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: NS
  labels: {%s}
  annotations: {tend.dev/generate: %q}
stringData: {user: admin}
`, labels, keys)
}

func (f *fixture) secretData(t *testing.T, name string) map[string]string {
	t.Helper()
	s, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// settled checks that, once the watch cache has caught up, the engine sees
// nothing to apply and no drift.
func (f *fixture) settled(t *testing.T, step string, req apply.Request, inv *apply.Inventory) {
	t.Helper()
	req.App = f.app
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		toApply, toPrune, err := f.engine.Preview(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: preview: %v", step, err)
		}
		drift := f.engine.Drift(inv)
		if len(toApply)+len(toPrune)+len(drift) == 0 {
			return
		}
		last = fmt.Sprintf("to apply %v, to prune %v, drift %v", toApply, toPrune, drift)
		if time.Now().After(deadline) {
			t.Fatalf("%s: not settled: %s", step, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noValues fails when a sync's result mentions a value.
func noValues(t *testing.T, res *apply.Result, err error, values map[string]string) {
	t.Helper()
	var texts []string
	if err != nil {
		texts = append(texts, err.Error())
	}
	if res != nil {
		texts = append(texts, res.Warnings...)
		for _, o := range res.Objects {
			texts = append(texts, o.Message)
		}
	}
	for k, v := range values {
		if k == "user" {
			continue
		}
		for _, s := range texts {
			if strings.Contains(s, v) {
				t.Errorf("the value of %s appears in the sync result: %q", k, s)
			}
		}
	}
}

func TestGeneratedSecretValuesAreStable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const keys = "password, api-key=48, user"
	objs := func(cm, labels, keys string) []*unstructured.Unstructured {
		return f.objs(t, configMap("cfg", cm, ""), generatedSecret(keys, labels))
	}
	req := apply.Request{Objects: objs("v0", "", keys), Prune: true}
	res, err := f.sync(t, req)
	if err != nil {
		t.Fatal(err)
	}
	first := f.secretData(t, "db")
	noValues(t, res, err, first)
	if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(first["password"]) || !regexp.MustCompile(`^[A-Za-z0-9]{48}$`).MatchString(first["api-key"]) {
		t.Fatalf("generated values have the wrong length or format: password %d characters, api-key %d", len(first["password"]), len(first["api-key"]))
	}
	if first["user"] != "admin" {
		t.Fatalf("git's user was overwritten (%d characters)", len(first["user"]))
	}
	var msg string
	for _, o := range res.Objects {
		if o.Ref.Kind == "Secret" {
			msg = o.Message
		}
	}
	if msg != "generated keys password, api-key" {
		t.Errorf("progress message %q", msg)
	}
	f.settled(t, "after the first sync", req, res.Inventory)

	// Re-syncs, with other objects and the Secret's labels changing, keep
	// the values and see nothing to do afterwards.
	for i, step := range []struct{ cm, labels string }{{"v1", ""}, {"v2", "tier: db"}, {"v3", "tier: db"}} {
		req = apply.Request{Objects: objs(step.cm, step.labels, keys), Prune: true}
		res, err = f.sync(t, req)
		if err != nil {
			t.Fatalf("re-sync %d: %v", i, err)
		}
		noValues(t, res, err, first)
		if got := f.secretData(t, "db"); got["password"] != first["password"] || got["api-key"] != first["api-key"] || got["user"] != "admin" {
			t.Fatalf("re-sync %d changed the values", i)
		}
		f.settled(t, fmt.Sprintf("after re-sync %d", i), req, res.Inventory)
	}
	s, _ := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Get(ctx, "db", metav1.GetOptions{})
	if s.Labels["tier"] != "db" {
		t.Errorf("labels not applied: %v", s.Labels)
	}

	// Steady state: nothing sent, the Secret included.
	f.counter.reset()
	if res, err = f.sync(t, req); err != nil || res.Changed != 0 {
		t.Fatalf("steady-state sync: %v, changed %d", err, res.Changed)
	}
	f.counter.mu.Lock()
	writes := f.counter.verbs["POST"] + f.counter.verbs["PUT"] + f.counter.verbs["PATCH"]
	gets := f.counter.verbs["GET"]
	f.counter.mu.Unlock()
	f.counter.on.Store(false)
	if writes != 0 || gets > 1 {
		t.Errorf("steady-state sync of a generated Secret sent %d writes and %d GETs (only the inventory's is expected)", writes, gets)
	}

	// A key added to the annotation is generated; the others stay.
	req = apply.Request{Objects: objs("v3", "tier: db", keys+", token=16"), Prune: true}
	if res, err = f.sync(t, req); err != nil {
		t.Fatal(err)
	}
	second := f.secretData(t, "db")
	noValues(t, res, err, second)
	if second["password"] != first["password"] || second["api-key"] != first["api-key"] || !regexp.MustCompile(`^[A-Za-z0-9]{16}$`).MatchString(second["token"]) {
		t.Fatalf("adding token: password kept %v, api-key kept %v, token %d characters", second["password"] == first["password"], second["api-key"] == first["api-key"], len(second["token"]))
	}
	f.settled(t, "after adding a key", req, res.Inventory)

	// A rotation request for password (what `tend secret rotate --key
	// password` writes) rotates exactly it, once.
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:"password"}}}`, secret.AnnotationRotateRequestedAt, requested, secret.AnnotationRotateKeys)
	if _, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Patch(ctx, "db", types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "tend-cli"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request seen in the watch cache", func() bool {
		live, ok := f.live.Get(secretGVK, f.env.Namespace, "db")
		return ok && live.GetAnnotations()[secret.AnnotationRotateRequestedAt] == requested
	})
	if drift := f.engine.Drift(res.Inventory); len(drift) != 0 {
		t.Errorf("a rotation request is drift: %v", drift)
	}
	toApply, _, err := f.engine.Preview(ctx, apply.Request{App: f.app, Objects: req.Objects})
	if err != nil || len(toApply) != 1 || toApply[0].Name != "db" {
		t.Fatalf("preview with a pending rotation: %v %v", toApply, err)
	}
	if res, err = f.sync(t, req); err != nil {
		t.Fatal(err)
	}
	third := f.secretData(t, "db")
	noValues(t, res, err, third)
	noValues(t, res, err, second)
	if third["password"] == second["password"] || len(third["password"]) != 32 {
		t.Fatal("password not rotated")
	}
	if third["api-key"] != second["api-key"] || third["token"] != second["token"] || third["user"] != "admin" {
		t.Fatal("a rotation of password changed other keys")
	}
	s, _ = f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Get(ctx, "db", metav1.GetOptions{})
	if got := s.Annotations[secret.AnnotationRotatedAt]; got != requested {
		t.Errorf("rotated-at = %q, want %q", got, requested)
	}
	f.settled(t, "after the rotation", req, res.Inventory)
	for i := 0; i < 2; i++ {
		if res, err = f.sync(t, apply.Request{Objects: objs(fmt.Sprintf("after-%d", i), "tier: db", keys+", token=16"), Prune: true}); err != nil {
			t.Fatal(err)
		}
		noValues(t, res, err, third)
		if got := f.secretData(t, "db"); got["password"] != third["password"] || got["api-key"] != third["api-key"] {
			t.Fatalf("sync %d after the rotation rotated again", i)
		}
	}

	// A rotation of every key: git's user stays.
	requested = time.Now().UTC().Format(time.RFC3339Nano)
	patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:null}}}`, secret.AnnotationRotateRequestedAt, requested, secret.AnnotationRotateKeys)
	if _, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Patch(ctx, "db", types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "tend-cli"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second request seen in the watch cache", func() bool {
		live, ok := f.live.Get(secretGVK, f.env.Namespace, "db")
		return ok && live.GetAnnotations()[secret.AnnotationRotateRequestedAt] == requested
	})
	if _, err = f.sync(t, req); err != nil {
		t.Fatal(err)
	}
	fourth := f.secretData(t, "db")
	if fourth["password"] == third["password"] || fourth["api-key"] == third["api-key"] || fourth["token"] == third["token"] || fourth["user"] != "admin" {
		t.Fatal("a rotation of every key did not rotate every generated key, or changed git's")
	}
}

func TestInvalidGenerateAnnotationFailsTheSync(t *testing.T) {
	f := newFixture(t)
	_, err := f.sync(t, apply.Request{Objects: f.objs(t, generatedSecret("password=lots", ""))})
	if err == nil || !strings.Contains(err.Error(), "Secret "+f.env.Namespace+"/db") || !strings.Contains(err.Error(), "password") {
		t.Fatalf("sync with a bad tend.dev/generate: %v", err)
	}
	if _, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Get(context.Background(), "db", metav1.GetOptions{}); err == nil {
		t.Error("the Secret was applied")
	}
}

// The engine refuses to apply over a copy replication made.
func TestReplicaIsNotClaimedByAnApp(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// The source exists (replication controllers of tests running in
	// parallel delete copies whose source is gone).
	origin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "origin", Namespace: f.env.Namespace}}
	copy := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "shared", Namespace: f.env.Namespace,
		Labels:      map[string]string{secret.LabelReplicate: secret.ReplicateCopy},
		Annotations: map[string]string{secret.AnnotationReplicaOf: f.env.Namespace + "/origin"},
	}, Data: map[string][]byte{"k": []byte("v")}}
	for _, s := range []*corev1.Secret{origin, copy} {
		if _, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.sync(t, apply.Request{Objects: f.objs(t, `{apiVersion: v1, kind: Secret, metadata: {name: shared, namespace: NS}, stringData: {k: mine}}`)})
	if err == nil || !strings.Contains(err.Error(), "copy of Secret "+f.env.Namespace+"/origin") {
		t.Fatalf("sync over a replica: %v", err)
	}
}
