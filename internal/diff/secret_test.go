package diff_test

import (
	"strings"
	"testing"

	"github.com/tend-gitops/tend/internal/diff"
)

// A Secret with generated values compares as unchanged after a sync: git
// has no values for the generated keys, and the metadata the engine adds
// (tend.dev/rotated-at, the replication label) is tend's, not drift.
func TestGeneratedSecretKeysAreTends(t *testing.T) {
	// desired as `tend diff` gets it back from a dry-run apply of git's
	// object: without the generated keys and the engine's metadata.
	desired := object(t, `
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: ns
  annotations: {tend.dev/generate: "password, api-key=48", tend.dev/replicate-to: "team=web", tend.dev/owner: ns/app}
type: Opaque
data: {user: `+b64("admin")+`}
`)
	live := object(t, `
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: ns
  uid: u1
  labels: {tend.dev/replicate: source}
  annotations: {tend.dev/generate: "password, api-key=48", tend.dev/replicate-to: "team=web", tend.dev/owner: ns/app, tend.dev/rotated-at: "2025-01-02T03:04:05Z"}
  managedFields:
  - manager: tend
    operation: Apply
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels: {f:tend.dev/replicate: {}}
        f:annotations: {f:tend.dev/generate: {}, f:tend.dev/replicate-to: {}, f:tend.dev/owner: {}, f:tend.dev/rotated-at: {}}
      f:data: {f:user: {}, f:password: {}, f:api-key: {}}
type: Opaque
data: {user: `+b64("admin")+`, password: `+b64("generated-pw")+`, api-key: `+b64("generated-key")+`}
`)
	if d := compare(t, desired, live); d.Action != diff.ActionUnchanged {
		t.Fatalf("Action %s, want unchanged:\n%s", d.Action, d.Unified)
	}

	// A key added to the annotation shows as a value to generate; the
	// existing ones stay unchanged.
	more := desired.DeepCopy()
	ann := more.GetAnnotations()
	ann["tend.dev/generate"] = "password, api-key=48, token"
	more.SetAnnotations(ann)
	d := compare(t, more, live)
	if d.Action != diff.ActionUpdate {
		t.Fatalf("Action %s, want update", d.Action)
	}
	for _, want := range []string{"+  token: (generated secret value)\n", "   password: (secret value)\n"} {
		if !strings.Contains(d.Unified, want) {
			t.Errorf("diff lacks %q:\n%s", want, d.Unified)
		}
	}
	if strings.Contains(d.Unified, "generated-pw") || strings.Contains(d.Unified, b64("generated-pw")) {
		t.Errorf("diff shows a value:\n%s", d.Unified)
	}

	// To create: the generated keys are listed, masked.
	d = compare(t, desired, nil)
	for _, want := range []string{"+  password: (generated secret value)\n", "+  api-key: (generated secret value)\n", "+  user: (secret value)\n"} {
		if !strings.Contains(d.Unified, want) {
			t.Errorf("create diff lacks %q:\n%s", want, d.Unified)
		}
	}

	// Without the annotation, the same keys are removals (an apply would
	// remove them): the exception is for generated keys only.
	plain := desired.DeepCopy()
	plain.SetAnnotations(map[string]string{"tend.dev/owner": "ns/app"})
	d = compare(t, plain, live)
	if !strings.Contains(d.Unified, "-  password: (secret value)\n") {
		t.Errorf("diff without tend.dev/generate does not show password removed:\n%s", d.Unified)
	}
}
