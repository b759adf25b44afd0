package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// TestOCIArtifactSource: a Source with spec.oci.ref holds the files of the
// artifact its semver range selects, pulled with the credentials of its
// secretRef (username and password, or a .dockerconfigjson); an App renders spec.path in it; a newer tag pushed to the
// registry is pulled at the Source's interval and applied; the App pinned
// to the first digest (as `tend rollback` pins) renders that artifact
// again; a Helm chart pushed by Helm is an artifact too, selected by its
// layer's media type and rendered as a chart directory; a tag that does
// not exist stalls its Source with a message naming it.
func TestOCIArtifactSource(t *testing.T) {
	e := startController(t)
	reg := charttest.NewRegistry(t, "alice", "s3cret")
	d1 := reg.PushArtifact(t, "platform/manifests", "1.0.0", map[string]string{"app/cm.yaml": configMapYAML("art", "v1")})
	reg.Push(t, charttest.Package(t, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-chart\ndata:\n  version: {{ .Chart.Version | quote }}\n",
	}))
	ociSource := func(name, repo string, ref tendv1.OCIRef, mutate ...func(*tendv1.OCIRepositorySource)) *tendv1.Source {
		o := &tendv1.OCIRepositorySource{URL: "oci://" + reg.Host + "/" + repo, Insecure: true, Ref: &ref, SecretRef: &tendv1.LocalObjectReference{Name: "registry"}}
		for _, m := range mutate {
			m(o)
		}
		return &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: tendv1.SourceSpec{OCI: o, Interval: metav1.Duration{Duration: time.Second}}}
	}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry"}, StringData: map[string]string{"username": "alice", "password": "s3cret"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry-docker"}, Type: corev1.SecretTypeDockerConfigJson,
			StringData: map[string]string{corev1.DockerConfigJsonKey: `{"auths":{"` + reg.Host + `":{"username":"alice","password":"s3cret"}}}`}},
		ociSource("manifests", "platform/manifests", tendv1.OCIRef{SemVer: ">=1.0.0"}),
		ociSource("chart", "charts/web", tendv1.OCIRef{Tag: "1.0.0"}, func(o *tendv1.OCIRepositorySource) {
			o.LayerSelector = &tendv1.OCILayerSelector{MediaType: chart.ChartLayerMediaType}
			o.SecretRef.Name = "registry-docker" // as Flux reads it
		}),
		ociSource("missing", "platform/manifests", tendv1.OCIRef{Tag: "nope"}),
		newApp("art", "manifests", "app", e.Namespace),
		newApp("web", "chart", "", e.Namespace),
	)

	e.waitApp(t, "art", "synced the first artifact", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == d1 && a.Status.Sync == tendv1.SyncSynced
	})
	if v := configMapValue(t, e.Env, e.Namespace, "art"); v != "v1" {
		t.Fatalf("ConfigMap art = %q, want v1", v)
	}
	src := waitSource(t, e, "manifests", "Ready at the first artifact", func(s *tendv1.Source) bool {
		return s.Status.Artifact != nil && s.Status.Artifact.Revision == d1
	})
	if a := src.Status.Artifact; a.Ref != "1.0.0" || !strings.Contains(a.Subject, "main@sha1:1.0.0") {
		t.Errorf("Source artifact %+v: want ref 1.0.0 and a subject naming the revision the artifact was pushed from", a)
	}

	d2 := reg.PushArtifact(t, "platform/manifests", "1.1.0", map[string]string{"app/cm.yaml": configMapYAML("art", "v2")})
	e.waitApp(t, "art", "synced the newer tag", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == d2 && a.Status.Sync == tendv1.SyncSynced
	})
	if v := configMapValue(t, e.Env, e.Namespace, "art"); v != "v2" {
		t.Fatalf("ConfigMap art = %q after the new tag, want v2", v)
	}

	patchApp(t, e, "art", func(a *tendv1.App) { a.Spec.TargetRevision = d1 })
	e.waitApp(t, "art", "pinned back to the first digest", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == d1 && a.Status.Sync == tendv1.SyncSynced
	})
	if v := configMapValue(t, e.Env, e.Namespace, "art"); v != "v1" {
		t.Fatalf("ConfigMap art = %q pinned to %s, want v1", v, d1)
	}

	eventually(t, "the chart artifact rendered and applied", 60*time.Second, func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		return err == nil && cm.Data["version"] == "1.0.0"
	})

	missing := waitSource(t, e, "missing", "Stalled", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
	})
	if c := meta.FindStatusCondition(missing.Status.Conditions, tendv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "nope") {
		t.Errorf("Ready condition of the Source with a missing tag: %+v, want False naming the tag", c)
	}
}
