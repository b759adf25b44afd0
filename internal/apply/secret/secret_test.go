package secret_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/apply/secret"
)

func object(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func value(t *testing.T, o *unstructured.Unstructured, key string) string {
	t.Helper()
	s, _, _ := unstructured.NestedString(o.Object, "data", key)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("data.%s is not base64: %v", key, err)
	}
	return string(b)
}

func TestParseSpec(t *testing.T) {
	s, err := secret.ParseSpec(map[string]string{secret.AnnotationGenerate: " password, api-key=48 ,", secret.AnnotationGenerateFormat: "hex"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.Keys), 2; got != want {
		t.Fatalf("keys = %v", s.Keys)
	}
	if s.Keys[0] != (secret.Key{Name: "password", Length: secret.DefaultLength}) || s.Keys[1] != (secret.Key{Name: "api-key", Length: 48}) || s.Format != secret.Hex {
		t.Errorf("spec = %+v", s)
	}
	if s, err := secret.ParseSpec(map[string]string{"other": "x"}); s != nil || err != nil {
		t.Errorf("no annotation: %v, %v", s, err)
	}
	for _, bad := range []map[string]string{
		{secret.AnnotationGenerate: ""},
		{secret.AnnotationGenerate: ","},
		{secret.AnnotationGenerate: "a b"},
		{secret.AnnotationGenerate: "a=0"},
		{secret.AnnotationGenerate: "a=long"},
		{secret.AnnotationGenerate: "a=5000"},
		{secret.AnnotationGenerate: "a, a=3"},
		{secret.AnnotationGenerate: "a", secret.AnnotationGenerateFormat: "words"},
	} {
		if _, err := secret.ParseSpec(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestValueFormats(t *testing.T) {
	for _, tc := range []struct {
		format secret.Format
		length int
		re     string
	}{
		{secret.Alnum, 32, `^[A-Za-z0-9]{32}$`},
		{secret.Alnum, 7, `^[A-Za-z0-9]{7}$`},
		{secret.Hex, 16, `^[0-9a-f]{32}$`},
		{secret.Base64, 32, `^[A-Za-z0-9+/]{43}=$`},
	} {
		s := &secret.Spec{Format: tc.format}
		a, err := s.Value(secret.Key{Name: "k", Length: tc.length})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Value(secret.Key{Name: "k", Length: tc.length})
		if !regexp.MustCompile(tc.re).Match(a) {
			t.Errorf("%s/%d: %q does not match %s", tc.format, tc.length, a, tc.re)
		}
		if string(a) == string(b) {
			t.Errorf("%s/%d: two values are equal", tc.format, tc.length)
		}
	}
}

const gitSecret = `
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: ns
  annotations: {tend.dev/generate: "password, api-key=48, user"}
stringData: {user: admin}
`

func TestFillKeepsLiveValuesAndRotatesOnRequest(t *testing.T) {
	desired := object(t, gitSecret)
	first := desired.DeepCopy()
	f, err := secret.Fill(first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(f.Generated, ","), "password,api-key"; got != want {
		t.Errorf("generated %s, want %s (user comes from git)", got, want)
	}
	if _, ok, _ := unstructured.NestedString(first.Object, "data", "user"); ok {
		t.Error("a key git sets was generated")
	}
	if got := len(value(t, first, "api-key")); got != 48 {
		t.Errorf("api-key has %d characters, want 48", got)
	}
	if _, ok := first.GetAnnotations()[secret.AnnotationRotatedAt]; ok {
		t.Error("rotated-at set without a request")
	}

	// live is what the API server holds after that apply.
	live := first.DeepCopy()
	if secret.NeedsValues(desired, live) {
		t.Error("NeedsValues with every key present")
	}
	again := desired.DeepCopy()
	f, err = secret.Fill(again, live)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Generated)+len(f.Rotated) != 0 || value(t, again, "password") != value(t, first, "password") {
		t.Fatalf("a re-apply changed values: %+v", f)
	}

	// A rotation request for one key.
	ann := live.GetAnnotations()
	ann[secret.AnnotationRotateRequestedAt] = "2025-01-01T00:00:00Z"
	ann[secret.AnnotationRotateKeys] = "password"
	live.SetAnnotations(ann)
	if !secret.NeedsValues(desired, live) {
		t.Error("a pending rotation does not need values")
	}
	rotated := desired.DeepCopy()
	f, err = secret.Fill(rotated, live)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.Rotated, ",") != "password" || value(t, rotated, "password") == value(t, first, "password") || value(t, rotated, "api-key") != value(t, first, "api-key") {
		t.Errorf("rotation: %+v", f)
	}
	if got := rotated.GetAnnotations()[secret.AnnotationRotatedAt]; got != "2025-01-01T00:00:00Z" {
		t.Errorf("rotated-at = %q", got)
	}
	if msg := f.Message(); strings.Contains(msg, value(t, rotated, "password")) || !strings.Contains(msg, "rotated key password") {
		t.Errorf("message %q", msg)
	}
	pw := value(t, rotated, "password")
	if got := f.Redact("invalid: " + pw + " and " + base64.StdEncoding.EncodeToString([]byte(pw))); strings.Contains(got, pw) || strings.Contains(got, base64.StdEncoding.EncodeToString([]byte(pw))) {
		t.Errorf("Redact left a value: %s", got)
	}

	// Handled: the next apply keeps the new values and the record.
	live = rotated.DeepCopy()
	ann = live.GetAnnotations()
	ann[secret.AnnotationRotateRequestedAt] = "2025-01-01T00:00:00Z"
	live.SetAnnotations(ann)
	if secret.NeedsValues(desired, live) {
		t.Error("a handled rotation is pending")
	}
	later := desired.DeepCopy()
	if _, err := secret.Fill(later, live); err != nil {
		t.Fatal(err)
	}
	if value(t, later, "password") != pw || later.GetAnnotations()[secret.AnnotationRotatedAt] != "2025-01-01T00:00:00Z" {
		t.Error("the apply after a rotation did not carry values and rotated-at forward")
	}
}

func TestReplicateSelector(t *testing.T) {
	if _, ok, err := secret.ReplicateSelector(nil); ok || err != nil {
		t.Errorf("none: %v %v", ok, err)
	}
	sel, ok, err := secret.ReplicateSelector(map[string]string{secret.AnnotationReplicateTo: "team in (a,b)"})
	if !ok || err != nil || sel.String() != "team in (a,b)" {
		t.Errorf("selector %v %v %v", sel, ok, err)
	}
	for _, bad := range []string{"", "  ", "team=(", "!!"} {
		if _, _, err := secret.ReplicateSelector(map[string]string{secret.AnnotationReplicateTo: bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	o := object(t, `{apiVersion: v1, kind: Secret, metadata: {name: s, annotations: {tend.dev/replicate-to: "team=a"}}}`)
	if err := secret.Prepare(o); err != nil || o.GetLabels()[secret.LabelReplicate] != secret.ReplicateSource {
		t.Errorf("Prepare: %v, labels %v", err, o.GetLabels())
	}
}
