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

// TestOCIChartAppPlainHTTPNeedsInsecure: an App rendering a chart from an
// OCI Source whose registry speaks only plain HTTP reports the message
// naming spec.oci.insecure and applies nothing; once the Source sets it,
// the chart is fetched over plain HTTP and applied.
func TestOCIChartAppPlainHTTPNeedsInsecure(t *testing.T) {
	e := startController(t)
	reg := charttest.NewRegistry(t, "", "")
	reg.Push(t, charttest.Package(t, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-chart\ndata:\n  version: {{ .Chart.Version | quote }}\n",
	}))
	e.create(t,
		&tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "charts"}, Spec: tendv1.SourceSpec{
			OCI: &tendv1.OCIRepositorySource{URL: reg.URL},
		}},
		newApp("web", "charts", "", e.Namespace, func(a *tendv1.App) {
			a.Spec.Chart = &tendv1.ChartSpec{Name: "web", Version: "1.0.0"}
			a.Spec.Sync.Interval = metav1.Duration{Duration: time.Second}
		}),
	)
	a := e.waitApp(t, "web", "the plain HTTP registry refused", 60*time.Second, func(a *tendv1.App) bool {
		return strings.Contains(readyMessage(a), "spec.oci.insecure")
	})
	if msg := readyMessage(a); !strings.Contains(msg, reg.Host) || !strings.Contains(msg, "speaks plain HTTP") {
		t.Errorf("App's Ready message %q does not name the registry and say it speaks plain HTTP", msg)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{}); err == nil {
		t.Fatalf("the chart was applied from a plain HTTP registry without spec.oci.insecure")
	}

	src := waitSource(t, e, "charts", "Stalled", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
	})
	src.Spec.OCI.Insecure = true
	if err := e.c.Update(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the chart applied once spec.oci.insecure is set", 60*time.Second, func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		return err == nil && cm.Data["version"] == "1.0.0"
	})
}

// waitSource waits until cond holds for the Source and returns it, failing
// with its conditions when it does not.
func waitSource(t *testing.T, e *ctlEnv, name, what string, cond func(*tendv1.Source) bool) *tendv1.Source {
	t.Helper()
	var src tendv1.Source
	var err error
	defer func() {
		if t.Failed() {
			t.Logf("Source %s as last read (get error %v): conditions %+v", name, err, src.Status.Conditions)
		}
	}()
	eventually(t, "Source "+name+": "+what, 60*time.Second, func() bool {
		err = e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &src)
		return err == nil && cond(&src)
	})
	return &src
}
