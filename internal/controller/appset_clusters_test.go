package controller

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// appSetKubeconfig is a kubeconfig of a cluster at server.
func appSetKubeconfig(server string) string {
	return `apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "` + server + `", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-real-token}}]
`
}

// cluster creates Cluster name reading Secret name, which holds data.
func (f *appSetFixture) cluster(t *testing.T, name string, labels map[string]string, data map[string]string) {
	t.Helper()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: name}, StringData: data}
	if err := f.cl.Create(f.ctx(t), sec); err != nil {
		t.Fatal(err)
	}
	cl := &v1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: name, Labels: labels, Annotations: map[string]string{"example.com/team": "team-" + name}},
		Spec:       v1alpha1.ClusterSpec{KubeconfigSecretRef: v1alpha1.SecretKeyReference{Name: name}},
	}
	if err := f.cl.Create(f.ctx(t), cl); err != nil {
		t.Fatal(err)
	}
}

// waitApps waits until the names of the Apps in the namespace are want
// (comma-separated, sorted).
func (f *appSetFixture) waitApps(t *testing.T, what, want string) map[string]v1alpha1.App {
	t.Helper()
	var apps map[string]v1alpha1.App
	if !testenv.Within(30*time.Second, func() bool {
		apps = f.apps(t)
		return strings.Join(appSetNames(apps), ",") == want
	}) {
		t.Fatalf("%s: Apps = %s, want %s", what, strings.Join(appSetNames(apps), ","), want)
	}
	return apps
}

// A clusters generator makes one App per selected Cluster of the AppSet's
// namespace, with Argo CD's parameters (name, server from the kubeconfig
// or Argo CD cluster Secret, metadata.labels and annotations, values
// templated with them); without a selector the cluster tend runs in is
// one more, named in-cluster, whose App has no clusterRef. The AppSet
// follows Clusters being added, labelled and deleted.
func TestAppSetClustersGenerator(t *testing.T) {
	f := newAppSetFixture(t)
	mgr, err := ctrl.NewManager(f.env.Config, ctrl.Options{
		Scheme:     appSetScheme,
		Logger:     logr.FromSlogHandler(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{f.env.Namespace: {}}},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &AppSetReconciler{Client: mgr.GetClient(), Artifacts: f.arts, Resync: time.Hour, Log: f.r.Log}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	f.cluster(t, "prod", map[string]string{"env": "prod"}, map[string]string{"kubeconfig": appSetKubeconfig("https://prod.example.com:6443")})
	// An Argo CD cluster Secret, read as it is.
	f.cluster(t, "dev", map[string]string{"env": "dev"}, map[string]string{"server": "https://dev.example.com", "name": "dev-argo",
		"config": `{"bearerToken": "not-a-real-token", "tlsClientConfig": {"insecure": true}}`})
	f.cluster(t, "stage", nil, map[string]string{"kubeconfig": appSetKubeconfig("https://stage.example.com")})

	set := &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "fleet"},
		Spec: v1alpha1.AppSetSpec{
			PruneApps: true,
			Generators: []v1alpha1.Generator{{Clusters: &v1alpha1.ClustersGenerator{
				Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod", "dev", "stage", "qa"}}}},
				Values:   map[string]string{"namespace": "{{metadata.labels.env}}-{{nameNormalized}}"},
			}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{
					Name:        "web-{{name}}",
					Labels:      map[string]string{"env": "{{metadata.labels.env}}"},
					Annotations: map[string]string{"example.com/server": "{{server}}", "example.com/team": "{{metadata.annotations.example.com/team}}"},
				},
				Spec: v1alpha1.AppSpec{
					SourceRef:   v1alpha1.NamespacedObjectReference{Name: f.src.Name},
					Path:        "apps/web",
					Destination: v1alpha1.Destination{ClusterRef: &v1alpha1.LocalObjectReference{Name: "{{name}}"}, Namespace: "{{values.namespace}}"},
				},
			},
		},
	}
	f.create(t, set)
	apps := f.waitApps(t, "selector env", "web-dev,web-prod")
	prod := apps["web-prod"]
	if got := prod.Annotations["example.com/server"]; got != "https://prod.example.com:6443" {
		t.Errorf("App web-prod: server %q, want the kubeconfig's", got)
	}
	if got := apps["web-dev"].Annotations["example.com/server"]; got != "https://dev.example.com" {
		t.Errorf("App web-dev: server %q, want the Argo CD cluster Secret's", got)
	}
	if prod.Labels["env"] != "prod" || prod.Annotations["example.com/team"] != "team-prod" || prod.Spec.Destination.Namespace != "prod-prod" ||
		prod.Spec.Destination.ClusterRef == nil || prod.Spec.Destination.ClusterRef.Name != "prod" {
		t.Errorf("App web-prod: labels %v, annotations %v, destination %+v", prod.Labels, prod.Annotations, prod.Spec.Destination)
	}

	// Labelling a Cluster selects it; deleting one prunes its App.
	var stage v1alpha1.Cluster
	if err := f.cl.Get(f.ctx(t), types.NamespacedName{Namespace: f.env.Namespace, Name: "stage"}, &stage); err != nil {
		t.Fatal(err)
	}
	stage.Labels = map[string]string{"env": "stage"}
	if err := f.cl.Update(f.ctx(t), &stage); err != nil {
		t.Fatal(err)
	}
	apps = f.waitApps(t, "after labelling Cluster stage", "web-dev,web-prod,web-stage")
	if got := apps["web-stage"].Spec.Destination.Namespace; got != "stage-stage" {
		t.Errorf("App web-stage: namespace %q, want stage-stage", got)
	}
	if err := f.cl.Delete(f.ctx(t), &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "dev"}}); err != nil {
		t.Fatal(err)
	}
	f.waitApps(t, "after deleting Cluster dev", "web-prod,web-stage")
	f.cluster(t, "qa", map[string]string{"env": "qa"}, map[string]string{"kubeconfig": appSetKubeconfig("https://qa.example.com")})
	f.waitApps(t, "after adding Cluster qa", "web-prod,web-qa,web-stage")

	// Without a selector, with Go templates: every Cluster and the cluster
	// tend runs in, nested parameters.
	local := &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "all"},
		Spec: v1alpha1.AppSetSpec{
			GoTemplate:        true,
			GoTemplateOptions: []string{"missingkey=error"},
			Generators: []v1alpha1.Generator{{Clusters: &v1alpha1.ClustersGenerator{
				Values: map[string]string{"env": `{{ index .metadata.labels "env" | default "local" }}`},
			}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{Name: "mon-{{ .name }}", Annotations: map[string]string{"example.com/server": "{{ .server }}"}},
				Spec: v1alpha1.AppSpec{
					SourceRef:   v1alpha1.NamespacedObjectReference{Name: f.src.Name},
					Path:        "monitoring",
					Destination: v1alpha1.Destination{ClusterRef: &v1alpha1.LocalObjectReference{Name: "{{ .name }}"}, Namespace: "mon-{{ .values.env }}"},
				},
			},
		},
	}
	f.create(t, local)
	apps = f.waitApps(t, "no selector", "mon-in-cluster,mon-prod,mon-qa,mon-stage,web-prod,web-qa,web-stage")
	in := apps["mon-in-cluster"]
	if in.Spec.Destination.ClusterRef != nil || in.Spec.Destination.Namespace != "mon-local" || in.Annotations["example.com/server"] != "https://kubernetes.default.svc" {
		t.Errorf("App mon-in-cluster: destination %+v, annotations %v; want the cluster tend runs in (no clusterRef), namespace mon-local",
			in.Spec.Destination, in.Annotations)
	}
	if got := apps["mon-qa"].Spec.Destination; got.ClusterRef == nil || got.ClusterRef.Name != "qa" || got.Namespace != "mon-qa" {
		t.Errorf("App mon-qa: destination %+v", got)
	}
	// The manager writes the AppSet's status after it applied the Apps.
	testenv.Eventually(t, "AppSet all Ready", time.Minute, func() bool {
		ready := meta.FindStatusCondition(f.get(t, "all").Status.Conditions, v1alpha1.ConditionReady)
		return ready != nil && ready.Status == metav1.ConditionTrue
	})
}

// A matrix may hold one more matrix or merge, with clusters inside: a
// merge of the Clusters and a list overriding one of them, times a list.
// A bad selector stalls the AppSet naming the nested generator.
func TestAppSetNestedMatrixMerge(t *testing.T) {
	f := newAppSetFixture(t)
	f.cluster(t, "edge-1", map[string]string{"tier": "edge"}, map[string]string{"kubeconfig": appSetKubeconfig("https://edge-1.example.com")})
	f.cluster(t, "edge-2", map[string]string{"tier": "edge"}, map[string]string{"kubeconfig": appSetKubeconfig("https://edge-2.example.com")})
	f.cluster(t, "core", map[string]string{"tier": "core"}, map[string]string{"kubeconfig": appSetKubeconfig("https://core.example.com")})
	set := &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "nested"},
		Spec: v1alpha1.AppSetSpec{
			Generators: []v1alpha1.Generator{{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{
				{Merge: &v1alpha1.NestedMergeGenerator{MergeKeys: []string{"name"}, Generators: []v1alpha1.LeafGenerator{
					{Clusters: &v1alpha1.ClustersGenerator{
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}},
						Values:   map[string]string{"replicas": "1"},
					}},
					{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "edge-2", "values.replicas": "3"}, {"name": "elsewhere", "values.replicas": "9"}}}},
				}}},
				{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"app": "web"}, {"app": "db"}}}},
			}}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{Name: "{{app}}-{{name}}", Annotations: map[string]string{"example.com/replicas": "{{values.replicas}}"}},
				Spec: v1alpha1.AppSpec{
					SourceRef:   v1alpha1.NamespacedObjectReference{Name: f.src.Name},
					Path:        "apps/{{app}}",
					Destination: v1alpha1.Destination{ClusterRef: &v1alpha1.LocalObjectReference{Name: "{{name}}"}, Namespace: "{{app}}"},
				},
			},
		},
	}
	f.create(t, set)
	if res := f.reconcile(t, "nested"); res.RequeueAfter != 0 {
		t.Errorf("RequeueAfter = %v: an AppSet reading no Source is regenerated on changes, not on a timer", res.RequeueAfter)
	}
	apps := f.apps(t)
	if got, want := strings.Join(appSetNames(apps), ","), "db-edge-1,db-edge-2,web-edge-1,web-edge-2"; got != want {
		t.Fatalf("Apps = %s, want %s", got, want)
	}
	for name, want := range map[string]string{"web-edge-1": "1", "web-edge-2": "3", "db-edge-2": "3"} {
		if got := apps[name].Annotations["example.com/replicas"]; got != want {
			t.Errorf("App %s: replicas %q, want %q", name, got, want)
		}
	}
	if got := apps["db-edge-2"].Spec.Destination; got.ClusterRef == nil || got.ClusterRef.Name != "edge-2" || got.Namespace != "db" {
		t.Errorf("App db-edge-2: destination %+v", got)
	}
	if !appSetReadsClusters(f.get(t, "nested")) {
		t.Errorf("the nested clusters generator is not found: a Cluster change would not regenerate the AppSet")
	}

	f.update(t, "nested", func(s *v1alpha1.AppSet) {
		s.Spec.Generators[0].Matrix.Generators[0].Merge.Generators[0].Clusters.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}
	})
	f.reconcile(t, "nested")
	stalled := appSetCond(t, f.get(t, "nested"), v1alpha1.ConditionStalled)
	if stalled.Reason != AppSetReasonInvalidGenerator || !strings.Contains(stalled.Message, "spec.generators[0].matrix.generators[0].merge.generators[0].clusters.selector") {
		t.Errorf("Stalled = %s %q, want InvalidGenerator naming the selector", stalled.Reason, stalled.Message)
	}

	// The apiserver refuses a generator that is two at once inside a
	// nested merge.
	two := set.DeepCopy()
	two.ObjectMeta = metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "two"}
	two.Spec.Generators[0].Matrix.Generators[0].Merge.Generators[1].Clusters = &v1alpha1.ClustersGenerator{}
	if err := f.cl.Create(f.ctx(t), two); err == nil || !strings.Contains(err.Error(), "set exactly one of directories, files, list or clusters") {
		t.Errorf("create an AppSet with list and clusters in one nested generator: %v, want refused", err)
	}
}
