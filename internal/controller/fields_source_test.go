package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
)

// Behaviour tests of Source spec and status fields (see
// api/v1alpha1/testdata/field-tests.yaml).

// patchSource changes a Source's spec with a merge patch and returns its new
// generation.
func patchSource(t *testing.T, e *ctlEnv, name string, mutate func(*tendv1.Source)) int64 {
	t.Helper()
	src := waitSource(t, e, name, "exists", func(*tendv1.Source) bool { return true })
	orig := src.DeepCopy()
	mutate(src)
	if err := e.c.Patch(context.Background(), src, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	return src.Generation
}

// TestSourceSuspendStopsFetching: a suspended Source says so, fetches
// nothing (a Source on the same repository fetches the new commit, a spec
// change reconciles the suspended one, which keeps its artifact) and
// fetches again once resumed. Its status tells the revision's ref, subject
// and when it was fetched, and which generation it reflects.
func TestSourceSuspendStopsFetching(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	rev1 := repo.commit("first subject", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")})
	// Status times have a resolution of a second.
	created := metav1.NewTime(time.Now().Truncate(time.Second))
	e.create(t, gitSource("held", repo.URL), gitSource("witness", repo.URL))
	src := waitSource(t, e, "held", "v1 fetched", func(s *tendv1.Source) bool { return s.Status.Artifact != nil && s.Status.Artifact.Revision == rev1 })
	if a := src.Status.Artifact; a.Ref != "refs/heads/main" || a.Subject != "first subject" || a.FetchedAt.Before(&created) {
		t.Errorf("artifact = %+v, want ref refs/heads/main, subject %q, fetched at or after %s", a, "first subject", created)
	}

	gen := patchSource(t, e, "held", func(s *tendv1.Source) { s.Spec.Suspend = true })
	waitSource(t, e, "held", "Ready=False Suspended", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return s.Status.ObservedGeneration == gen && c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonSuspended
	})
	committed := metav1.NewTime(time.Now().Truncate(time.Second))
	rev2 := repo.commit("second subject", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	waitSource(t, e, "witness", "v2 fetched", func(s *tendv1.Source) bool { return s.Status.Artifact != nil && s.Status.Artifact.Revision == rev2 })
	gen = patchSource(t, e, "held", func(s *tendv1.Source) { s.Spec.Timeout = metav1.Duration{Duration: time.Minute} })
	src = waitSource(t, e, "held", "the spec change reconciled", func(s *tendv1.Source) bool { return s.Status.ObservedGeneration == gen })
	if src.Status.Artifact == nil || src.Status.Artifact.Revision != rev1 {
		t.Fatalf("a suspended Source fetched: artifact %+v, want %s", src.Status.Artifact, rev1)
	}

	patchSource(t, e, "held", func(s *tendv1.Source) { s.Spec.Suspend = false })
	src = waitSource(t, e, "held", "v2 fetched once resumed", func(s *tendv1.Source) bool {
		return s.Status.Artifact != nil && s.Status.Artifact.Revision == rev2
	})
	if a := src.Status.Artifact; a.Subject != "second subject" || a.FetchedAt.Before(&committed) {
		t.Errorf("artifact = %+v, want subject %q, fetched at or after %s", a, "second subject", committed)
	}
}

// TestSourceGitSecretRef: a git Source fetches from a server that demands
// basic auth with the credentials of its spec.git.secretRef; without them
// the fetch fails.
func TestSourceGitSecretRef(t *testing.T) {
	e := startController(t)
	repo := testenv.NewGitRepo(t, map[string]string{"app/cm.yaml": configMapYAML("private", "v1")}, testenv.GitBasicAuth("tend", "s3cret"))
	withCreds := gitSource("private", repo.URL)
	withCreds.Spec.Git.SecretRef = &tendv1.LocalObjectReference{Name: "git-creds"}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-creds"}, StringData: map[string]string{"username": "tend", "password": "s3cret"}},
		withCreds, gitSource("anonymous", repo.URL),
		newApp("app", "private", "app", e.Namespace))
	e.waitApp(t, "app", "synced from the private repository", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == repo.Head()
	})
	waitSource(t, e, "anonymous", "the fetch without credentials failed", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonFetchFailed
	})
}

// chartFiles is a chart whose ConfigMap tells the chart's version.
func chartFiles(version string) map[string]string {
	return map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: web\nversion: " + version + "\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-chart\ndata:\n  version: {{ .Chart.Version | quote }}\n",
	}
}

// TestSourceChartSecretRef: an App renders a chart from a Helm repository
// and from an OCI registry that both demand basic auth, with the
// credentials of the Source's spec.helm.secretRef and spec.oci.secretRef;
// an App on a Source without them reports the refusal.
func TestSourceChartSecretRef(t *testing.T) {
	e := startController(t)
	helmRepo := charttest.NewRepo(t, "tend", "s3cret")
	helmRepo.Add(t, charttest.Package(t, chartFiles("1.0.0")))
	reg := charttest.NewRegistry(t, "tend", "s3cret")
	reg.Push(t, charttest.Package(t, chartFiles("2.0.0")))
	creds := &tendv1.LocalObjectReference{Name: "chart-creds"}
	source := func(name string, helm bool, secret *tendv1.LocalObjectReference) *tendv1.Source {
		s := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: tendv1.SourceSpec{Interval: metav1.Duration{Duration: time.Second}}}
		if helm {
			s.Spec.Helm = &tendv1.HelmRepositorySource{URL: helmRepo.URL, SecretRef: secret}
		} else {
			s.Spec.OCI = &tendv1.OCIRepositorySource{URL: reg.URL, Insecure: true, SecretRef: secret}
		}
		return s
	}
	chartApp := func(name, src, version string) *tendv1.App {
		return newApp(name, src, "", e.Namespace, func(a *tendv1.App) {
			a.Spec.Chart = &tendv1.ChartSpec{Name: "web", Version: version}
			a.Spec.Sync.Interval = metav1.Duration{Duration: time.Second}
		})
	}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chart-creds"}, StringData: map[string]string{"username": "tend", "password": "s3cret"}},
		source("helm", true, creds), source("oci", false, creds),
		source("helm-anonymous", true, nil), source("oci-anonymous", false, nil),
		chartApp("from-helm", "helm", "1.0.0"), chartApp("from-oci", "oci", "2.0.0"),
		chartApp("helm-anonymous", "helm-anonymous", "1.0.0"), chartApp("oci-anonymous", "oci-anonymous", "2.0.0"),
	)
	for app, version := range map[string]string{"from-helm": "1.0.0", "from-oci": "2.0.0"} {
		e.waitApp(t, app, "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision != "" })
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), app+"-chart", metav1.GetOptions{})
		if err != nil || cm.Data["version"] != version {
			t.Errorf("%s: chart ConfigMap %v, %v; want version %s", app, cm.Data, err, version)
		}
	}
	for _, app := range []string{"helm-anonymous", "oci-anonymous"} {
		a := e.waitApp(t, app, "the render failed", 60*time.Second, func(a *tendv1.App) bool {
			c := condition(a, tendv1.ConditionReady)
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonRenderFailed
		})
		if msg := strings.ToLower(readyMessage(a)); !strings.Contains(msg, "401") && !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "requires credentials") {
			t.Errorf("%s: Ready %q does not say the server wants credentials", app, readyMessage(a))
		}
	}
}
