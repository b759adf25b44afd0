package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// TestOCISourcePlainHTTPNeedsInsecure: an OCI Source whose registry speaks
// only plain HTTP (here on loopback) is Stalled, with a Ready message that
// names spec.oci.insecure, until the Source sets it; a Source that sets it
// is Ready.
func TestOCISourcePlainHTTPNeedsInsecure(t *testing.T) {
	e := startController(t)
	reg := charttest.NewRegistry(t, "", "")
	reg.Push(t, charttest.Package(t, map[string]string{"Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n"}))
	ociSource := func(name string, insecure bool) *tendv1.Source {
		return &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: tendv1.SourceSpec{
			OCI: &tendv1.OCIRepositorySource{URL: reg.URL, Insecure: insecure},
		}}
	}
	e.create(t, ociSource("https", false), ociSource("insecure", true))

	src := waitSource(t, e, "https", "refused: the registry speaks plain HTTP", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
	})
	ready := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonFetchFailed {
		t.Fatalf("Ready condition of the Source without spec.oci.insecure: %+v, want False with reason %s", ready, ReasonFetchFailed)
	}
	for _, s := range []string{reg.Host, "speaks plain HTTP", "spec.oci.insecure: true"} {
		if !strings.Contains(ready.Message, s) {
			t.Errorf("Ready message %q does not mention %q", ready.Message, s)
		}
	}
	if c := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionStalled); c.Reason != ReasonInvalidSpec {
		t.Errorf("Stalled reason = %s, want %s", c.Reason, ReasonInvalidSpec)
	}

	waitSource(t, e, "insecure", "Ready over plain HTTP", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})

	// Setting the field fixes the first Source.
	src.Spec.OCI.Insecure = true
	if err := e.c.Update(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	src = waitSource(t, e, "https", "Ready once spec.oci.insecure is set", func(s *tendv1.Source) bool {
		return s.Status.ObservedGeneration == s.Generation && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	if c := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionStalled); c != nil {
		t.Errorf("Source still has a Stalled condition after the fix: %+v", c)
	}
}

// waitSource waits until cond holds for the Source and returns it, failing
// with its conditions when it does not.
func waitSource(t *testing.T, e *ctlEnv, name, what string, cond func(*tendv1.Source) bool) *tendv1.Source {
	t.Helper()
	var src tendv1.Source
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &src)
		if err == nil && cond(&src) {
			return &src
		}
		if time.Now().After(deadline) {
			t.Fatalf("Source %s: timed out waiting for %s (get error %v; conditions %+v)", name, what, err, src.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
