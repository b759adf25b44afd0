package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// TestSecretsDoNotLeakThroughCompat runs `tend controller --compat
// argo,flux` on Argo CD and Flux objects that hand tend known secret
// values: an Argo CD repository Secret's password (and a wrong one, so
// that a fetch fails with it in hand), a Secret in git an Application
// applies, a Flux GitRepository's basic-auth password, a value a
// Kustomization substitutes from a Secret, and an OCI registry's password
// in a .dockerconfigjson Secret (and a wrong one). Then it searches the Argo CD
// and Flux objects (their status as tend writes it), the tend objects they
// map to, the Events, `tend status` and the controller's log for each
// value, raw and base64.
func TestSecretsDoNotLeakThroughCompat(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := compatCRDs(t, cl)
	s := leakSecrets{
		"Argo CD repository password": "leak-argorepo-Hq7Tn2Xe",
		"Argo CD wrong password":      "leak-argowrong-Vb3Lp8Ks",
		"Argo CD git Secret value":    "leak-argosecret-Ps9Du3Wc",
		"Flux git password":           "leak-fluxgit-Rm5Cw1Zd",
		"Flux substituted value":      "leak-fluxsubst-Gy6Ja4Nf",
		"OCI registry password":       "leak-ocipass-Tz8Qe3Mv",
		"wrong OCI registry password": "leak-ociwrong-Bn2Xr7Lk",
	}
	s["Argo CD basic auth"] = base64.StdEncoding.EncodeToString([]byte("argo:" + s["Argo CD repository password"]))
	s["Flux basic auth"] = base64.StdEncoding.EncodeToString([]byte("flux:" + s["Flux git password"]))
	s["OCI basic auth"] = base64.StdEncoding.EncodeToString([]byte("oci:" + s["OCI registry password"]))
	s["wrong OCI basic auth"] = base64.StdEncoding.EncodeToString([]byte("oci:" + s["wrong OCI registry password"]))

	argoRepo := testenv.NewGitRepo(t, nil, testenv.GitBasicAuth("argo", s["Argo CD repository password"]))
	argoRepo.Commit("apps", map[string]string{"apps/web/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: argo-secret\nstringData:\n  v: " + s["Argo CD git Secret value"] + "\n"})
	wrongRepo := testenv.NewGitRepo(t, nil, testenv.GitBasicAuth("argo", "the-right-one"))
	wrongRepo.Commit("apps", map[string]string{"apps/web/cm.yaml": configMap("never", "1")})
	fluxRepo := testenv.NewGitRepo(t, nil, testenv.GitBasicAuth("flux", s["Flux git password"]))
	fluxRepo.Commit("apps", map[string]string{"apps/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: flux-secret\nstringData:\n  v: ${SUBST}\n"})

	// Manifests as an OCI artifact in a registry that wants a password,
	// read with it from a .dockerconfigjson Secret, and with a wrong one.
	reg := charttest.NewRegistry(t, "oci", s["OCI registry password"])
	reg.PushArtifact(t, "fleet/manifests", "1.0.0", map[string]string{"apps/cm.yaml": configMap("from-oci", "1")})
	for name, password := range map[string]string{"registry": s["OCI registry password"], "registry-wrong": s["wrong OCI registry password"]} {
		docker := fmt.Sprintf(`{"auths":{%q:{"username":"oci","password":%q}}}`, reg.Host, password)
		if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeDockerConfigJson,
			StringData: map[string]string{corev1.DockerConfigJsonKey: docker},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		repo := strings.TrimPrefix(name, "registry")
		createYAML(t, dyn, fluxOCIRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: manifests%s, namespace: %s}
spec: {interval: 10m, url: oci://%s/fleet/manifests, insecure: true, ref: {tag: "1.0.0"}, secretRef: {name: %s}}
`, repo, ns, reg.Host, name))
		createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: oci%s, namespace: %s}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: OCIRepository, name: manifests%s}}
`, repo, ns, repo))
	}

	repoSecret := func(name, url, password string) {
		t.Helper()
		createYAML(t, dyn, schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: %s
  labels: {argocd.argoproj.io/secret-type: repository}
stringData: {type: git, url: %q, username: argo, password: %q}
`, name, ns, url, password))
	}
	repoSecret("repo-web", argoRepo.URL, s["Argo CD repository password"])
	repoSecret("repo-wrong", wrongRepo.URL, s["Argo CD wrong password"])
	createSecret(t, cl, "flux-auth", map[string]string{"username": "flux", "password": s["Flux git password"]})
	createSecret(t, cl, "subst", map[string]string{"SUBST": s["Flux substituted value"]})
	application := func(name, url string) string {
		doc := strings.Replace(argoApplication(name, url, "apps/web", ns), "namespace: argocd", "namespace: "+ns, 1)
		return strings.Replace(doc, "  finalizers: [resources-finalizer.argocd.argoproj.io]\n", "", 1)
	}
	createYAML(t, dyn, argoApplications, application("web", argoRepo.URL))
	createYAML(t, dyn, argoApplications, application("wrong", wrongRepo.URL))
	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1m, url: %q, ref: {branch: main}, secretRef: {name: flux-auth}}
`, ns, fluxRepo.URL))
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: %s}
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef: {kind: GitRepository, name: fleet}
  postBuild: {substituteFrom: [{kind: Secret, name: subst}]}
`, ns))

	log := &platform.LogBuffer{}
	ctl := runController(t, cl.Kubeconfig, ns, log, "--compat", "argo,flux")
	t.Cleanup(func() {
		// The Argo CD and Flux objects first, while the controller
		// removes what they map to and its finalizers.
		for _, gvr := range []schema.GroupVersionResource{argoApplications, fluxKustomization, fluxGitRepos, fluxOCIRepos} {
			_ = dyn.Resource(gvr).Namespace(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
		}
		testenv.Within(time.Minute, func() bool {
			for _, gvr := range []schema.GroupVersionResource{argoApplications, fluxKustomization, fluxGitRepos, fluxOCIRepos} {
				if l, err := dyn.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{}); err != nil || len(l.Items) > 0 {
					return false
				}
			}
			return true
		})
	})
	// wrongSource is the Source Application wrong's App reads.
	wrongSource := func() *tendv1.Source {
		var app tendv1.App
		if cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wrong"}, &app) != nil {
			return nil
		}
		var src tendv1.Source
		if cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: app.Spec.SourceRef.Name}, &src) != nil {
			return nil
		}
		return &src
	}
	eventually(t, "Application web Synced, Kustomization apps applied, Application wrong's fetch failing", 3*time.Minute, func() bool {
		_, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, "flux-secret", metav1.GetOptions{})
		src := wrongSource()
		if err != nil || src == nil || getStatus(dyn, argoApplications, ns, "web", "sync", "status") != "Synced" {
			return false
		}
		c := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady)
		return c != nil && strings.Contains(c.Message, "authentication failed") && configMapData(cl, ns, "from-oci", "v") == "1" &&
			strings.HasPrefix(condition(dyn, fluxOCIRepos, ns, "manifests-wrong", "Ready"), "False/")
	})

	places := map[string]string{}
	for _, gvr := range []schema.GroupVersionResource{argoApplications, fluxGitRepos, fluxOCIRepos, fluxKustomization} {
		list, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			b, _ := yaml.Marshal(o.Object)
			places[o.GetKind()+" "+o.GetName()] = string(b)
		}
	}
	for _, app := range []string{"web", "wrong", "apps", "oci", "oci-wrong"} {
		_, out, errOut := cl.tend(t, "status", app)
		places["`tend status "+app+"`"] = out + errOut
	}
	places["Events"] = leakEvents(t, cl, ns)
	leakObjects(t, cl, places)
	ctl.stop() // its log is complete once it has stopped
	places["controller log"] = log.String()

	// On these paths the controller logs little at its default level
	// (syncs and refused credentials are reported in status and events,
	// searched here); its log is searched all the same.
	s.search(t, places, map[string][]string{
		"controller log":                {"tend controller starting"},
		"Events":                        {"web", "apps"},
		"Application web":               {"Synced"},
		"Application wrong":             {"sync:"},
		"GitRepository fleet":           {"Ready"},
		"Kustomization apps":            {"Ready"},
		"Source " + wrongSource().Name:  {"authentication failed"},
		"inventory of web":              {"Secret|" + ns + "|web-argo-secret"},
		"inventory of apps":             {"Secret|" + ns + "|flux-secret"},
		"OCIRepository manifests":       {"1.0.0@sha256:"},
		"OCIRepository manifests-wrong": {"False"},
	})
}
