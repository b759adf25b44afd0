package controller

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestSteadyStateReadsReferencesFromWatches: an App rendering a chart with
// values from a ConfigMap and a Secret, reconciled every 2 s, reads them
// from watches: after its first sync no GET or LIST of Secrets or
// ConfigMaps reaches the apiserver however often it is reconciled. A new
// value in the Secret re-renders and applies the App at once (its interval
// is an hour by then), and deleting the App stops the watches.
func TestSteadyStateReadsReferencesFromWatches(t *testing.T) {
	var proxy *apiProxy
	e := startControllerWith(t, func(o *Options) {
		proxy = newAPIProxy(t, o.Config)
		o.Config = proxy.Config()
	})
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("chart", map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: greet\nversion: 0.1.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n" +
			"data:\n  greeting: {{ .Values.greeting | quote }}\n  color: {{ .Values.color | quote }}\n",
	})
	src := gitSource("repo", repo.URL)
	src.Spec.Interval = metav1.Duration{Duration: 10 * time.Minute}
	e.create(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "defaults"}, Data: map[string]string{"values.yaml": "color: blue\n"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "values"}, StringData: map[string]string{"values.yaml": "greeting: hello\n"}},
		src,
		newApp("greet", "repo", "chart", e.Namespace, func(a *tendv1.App) {
			a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{
				{Kind: "ConfigMap", Name: "defaults"}, {Kind: "Secret", Name: "values"},
			}}
			a.Spec.Sync.Interval = metav1.Duration{Duration: 2 * time.Second}
		}),
	)
	greeting := func() (string, string) {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "greeting", metav1.GetOptions{})
		if err != nil {
			return "", ""
		}
		return cm.Data["greeting"], cm.Data["color"]
	}
	e.waitApp(t, "greet", "Synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	eventually(t, "the values applied", 30*time.Second, func() bool { g, c := greeting(); return g == "hello" && c == "blue" })

	// Periodic reconciles: each reads both objects again, from memory.
	proxy.mu.Lock()
	mark := len(proxy.reqs)
	proxy.mu.Unlock()
	before, reconciles := e.ctrl.Refs.Stats(), renderRequests(e.ctrl)
	// Each periodic reconcile asks the render cache (which renders again
	// only when another test's CRD changed Helm's capabilities).
	eventually(t, "five periodic reconciles", 60*time.Second, func() bool {
		return renderRequests(e.ctrl) >= reconciles+5
	})
	proxy.mu.Lock()
	after := append(apiRequests(nil), proxy.reqs[mark:]...)
	proxy.mu.Unlock()
	var reads apiRequests
	for _, r := range after {
		// A watch, opened before the mark, lasts at least 5 minutes: any
		// GET of these collections now is a read, a list or a watch
		// started anew. (Other namespaces are other tests' business.)
		for _, p := range []string{"/api/v1/namespaces/" + e.Namespace + "/secrets", "/api/v1/namespaces/" + e.Namespace + "/configmaps"} {
			if r.method == http.MethodGet && (r.path == p || strings.HasPrefix(r.path, p+"/")) {
				reads = append(reads, r)
			}
		}
	}
	if len(reads) > 0 {
		t.Errorf("periodic reconciles read Secrets or ConfigMaps from the apiserver:\n%s", reads)
	}
	t.Logf("requests during %d periodic reconciles:\n%s", renderRequests(e.ctrl)-reconciles, after)
	if st := e.ctrl.Refs.Stats(); st.Reads < before.Reads+10 || st.Watches != 2 || st.Started != 2 {
		t.Errorf("refs = %+v, want 2 watches, started once each, and 10 reads more than %d", st, before.Reads)
	}

	// With an hour's interval only the watch can tell the App that the
	// Secret changed.
	app := e.app(t, "greet")
	orig := app.DeepCopy()
	app.Spec.Sync.Interval = metav1.Duration{Duration: time.Hour}
	if err := e.c.Patch(ctx, app, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "greet", "the new interval observed", 30*time.Second, func(a *tendv1.App) bool {
		return a.Status.ObservedGeneration == a.Generation
	})
	var sec corev1.Secret
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: "values"}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["values.yaml"] = []byte("greeting: bonjour\n")
	if err := e.c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Secret's new value applied", 30*time.Second, func() bool { g, c := greeting(); return g == "bonjour" && c == "blue" })

	if err := e.c.Delete(ctx, e.app(t, "greet")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watches stopped once the App was deleted", 30*time.Second, func() bool {
		return e.ctrl.Refs.Stats().Watches == 0
	})
}

// TestSteadyStateSendsNoAPIRequests: a controller (elected leader) with a
// git Source behind credentials, an App rendering a chart with values from
// a Secret into the cluster tend runs in, and one deploying through a
// Cluster (this cluster, reached through the same proxy), all synced and
// reconciled every 2 s (the Source fetched every 2 s): while nothing
// changes, every request tend sends the apiserver is a watch or a lease
// renewal. No read (Secrets and ConfigMaps come from their watches, Helm's
// capabilities from memory while no CRD or APIService changes), no status
// write, no event, no apply.
func TestSteadyStateSendsNoAPIRequests(t *testing.T) {
	var proxy *apiProxy
	e := startControllerWith(t, func(o *Options) {
		proxy = newAPIProxy(t, o.Config)
		o.Config = proxy.Config()
		o.LeaderElection = true
		o.LeaderElectionNamespace = o.Namespaces[0]
		o.LeaderElectionID = "tend-steady"
	})
	repo := testenv.NewGitRepo(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: greet\nversion: 0.1.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n" +
			"data:\n  greeting: {{ .Values.greeting | quote }}\n",
	}, testenv.GitBasicAuth("tend", "s3cret"))
	src := gitSource("repo", repo.URL)
	src.Spec.Git.SecretRef = &tendv1.LocalObjectReference{Name: "git-creds"}
	src.Spec.Interval = metav1.Duration{Duration: 2 * time.Second}
	app := func(name string, cluster string) *tendv1.App {
		return newApp(name, "repo", "chart", e.Namespace, func(a *tendv1.App) {
			a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{{Kind: "Secret", Name: "values"}}}
			a.Spec.Sync.Interval = metav1.Duration{Duration: 2 * time.Second}
			if cluster != "" {
				a.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: cluster}
			}
		})
	}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-creds"}, StringData: map[string]string{"username": "tend", "password": "s3cret"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "values"}, StringData: map[string]string{"values.yaml": "greeting: hello\n"}},
		// The "remote" cluster is this one, through the proxy.
		kubeconfigSecret("edge-kubeconfig", "kubeconfig", []byte(proxy.Kubeconfig())),
		remoteCluster("edge", "edge-kubeconfig"),
		src,
		app("local", ""),
		app("remote", "edge"),
	)
	for _, name := range []string{"local", "remote"} {
		e.waitApp(t, name, "Synced and Healthy", 60*time.Second, func(a *tendv1.App) bool {
			return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy"
		})
	}
	e.waitCluster(t, "edge", "Ready", 30*time.Second, clusterReady)

	// Let the first reconciles' status writes settle: the mark is taken
	// after two reconciles of each App that found their render cached.
	reconciles := renderRequests(e.ctrl)
	eventually(t, "the first periodic reconciles", 60*time.Second, func() bool {
		return renderRequests(e.ctrl) >= reconciles+4
	})
	proxy.mu.Lock()
	mark := len(proxy.reqs)
	proxy.mu.Unlock()
	helmBefore := helmStats(e.ctrl)
	reconciles, fetches := renderRequests(e.ctrl), repo.Requests()
	// Each periodic reconcile asks the render cache; each fetch asks the
	// git server for its refs.
	eventually(t, "twenty periodic App reconciles and five git requests", 90*time.Second, func() bool {
		return renderRequests(e.ctrl) >= reconciles+20 && repo.Requests() >= fetches+5
	})
	proxy.mu.Lock()
	after := append(apiRequests(nil), proxy.reqs[mark:]...)
	proxy.mu.Unlock()
	helmAfter := helmStats(e.ctrl)
	// Helm's capabilities are discovered again only after a CRD or an
	// APIService changed (other tests sharing the cluster install CRDs):
	// each connection made at most as many discoveries as changes it had
	// not yet taken in, and every discovery request belongs to one.
	var discoveries, due int64
	for name, a := range helmAfter {
		b := helmBefore[name]
		n := a.Discoveries - b.Discoveries
		if n > a.Changes-b.Seen {
			t.Errorf("connection %s discovered Helm's capabilities %d times after %d changes of the cluster's API definitions", name, n, a.Changes-b.Seen)
		}
		discoveries, due = discoveries+n, due+a.Changes-b.Seen
	}
	var unexpected apiRequests
	var versions int64
	for _, r := range after {
		if r.watch || strings.Contains(r.path, "/apis/coordination.k8s.io/v1/namespaces/"+e.Namespace+"/leases/") {
			continue
		}
		if discoveries > 0 && r.method == http.MethodGet && isDiscovery(r.path) {
			if r.path == "/version" {
				versions++
			}
			continue
		}
		unexpected = append(unexpected, r)
	}
	if versions != discoveries {
		t.Errorf("%d GET /version for %d discoveries of Helm's capabilities", versions, discoveries)
	}
	t.Logf("%d discoveries of Helm's capabilities after %d changes of the cluster's API definitions", discoveries, due)
	if len(unexpected) > 0 {
		t.Errorf("in steady state, %d of %d requests were neither watches nor lease renewals:\n%s", len(unexpected), len(after), unexpected)
	}
	t.Logf("%d requests during %d periodic App reconciles and %d git requests:\n%s", len(after), renderRequests(e.ctrl)-reconciles, repo.Requests()-fetches, after)
}

// renderRequests counts the render cache's answers: one per App reconcile
// that rendered or found its render kept.
func renderRequests(c *Controller) int64 {
	s := c.Apps.Cache.Stats()
	return s.Hits + s.Renders + s.Reused
}

// helmStats is every connection's cluster.HelmStats by name.
func helmStats(c *Controller) map[string]cluster.HelmStats {
	out := map[string]cluster.HelmStats{}
	for _, conn := range c.Clusters.All() {
		out[conn.Display()] = conn.HelmStats()
	}
	return out
}

// isDiscovery says whether a path is one a discovery client reads:
// /version, /api, /apis, /api/v1 or /apis/<group>/<version>.
func isDiscovery(path string) bool {
	switch parts := strings.Split(strings.Trim(path, "/"), "/"); {
	case path == "/version" || path == "/api" || path == "/apis":
		return true
	case parts[0] == "api":
		return len(parts) == 2
	case parts[0] == "apis":
		return len(parts) == 3
	}
	return false
}
