package example_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	certificates    = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}
	clusterIssuers  = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}
	pgClusters      = schema.GroupVersionResource{Group: "postgresql.cnpg.io", Version: "v1", Resource: "clusters"}
	externalSecrets = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
	// The CRDs the example's cert-manager, cnpg and external-secrets Apps own.
	exampleCRDs = []string{
		"certificates.cert-manager.io", "clusterissuers.cert-manager.io", "clusters.postgresql.cnpg.io",
		"externalsecrets.external-secrets.io", "clustersecretstores.external-secrets.io",
	}
	apps = []string{"tend", "cert-manager", "cnpg", "external-secrets", "database", "mswa-api", "mswa-web"}
	// The Apps that depend on the database.
	dependents = []string{"mswa-api", "mswa-web"}
	// The namespaces the example declares; the test runs them under
	// names of its own.
	exampleNamespaces = []string{"database", "mswa", "mswa-model"}
	// The lines of the example that name them: in the Namespaces, and in
	// the Apps' destinations.
	namespaceName = regexp.MustCompile(`(?m)^(\s*name: )(database|mswa|mswa-model)$`)
	namespaceRef  = regexp.MustCompile(`(?m)^(\s*namespace: )(database|mswa|mswa-model)$`)
)

const (
	platformFile    = "clusters/production/platform.yaml"
	namespacesFile  = "clusters/production/namespaces.yaml"
	credentialsFile = "apps/database/credentials.yaml"
	clusterFile     = "apps/database/cluster.yaml"

	dbSecret    = "mswa-db-app"
	dbCluster   = "mswa-db"
	clientLabel = "mswa.example.org/database-client"
	issuer      = "letsencrypt-prod"
	apiChart    = "mswa-api-2.3.1" // pushed to the registry, pinned by the App
	webChart    = "mswa-web-1.8.2" // in the chart repository, the highest ~1.8.0
)

// TestHelmPlatform syncs this example from a git server the way a cluster
// would after `tend bootstrap`, with the team's charts in a chart
// repository and an OCI registry on loopback. It plays cert-manager,
// CloudNativePG and the External Secrets Operator, and checks what the
// team behind seed 002 needed: the apps start only once their database is
// up, the generated database password never changes by itself, and every
// namespace that needs it has a copy that follows the original.
func TestHelmPlatform(t *testing.T) {
	start := time.Now()
	e := setup(t)

	// What the team's CI publishes: mswa-web to the chart repository,
	// mswa-api to the registry.
	charts := charttest.NewRepo(t, "", "")
	charts.Add(t, charttest.Package(t, testenv.DirFiles(t, "charts/mswa-web")))
	registry := charttest.NewRegistry(t, "", "")
	registry.Push(t, charttest.Package(t, testenv.DirFiles(t, "charts/mswa-api")))

	// The example as its git repository, with two edits: the Sources point
	// at this test's servers (the registry speaks plain HTTP, so its Source
	// sets spec.oci.insecure), and the namespaces get this run's names.
	repo := testenv.NewGitRepo(t, nil)
	files := testenv.DirFiles(t, ".")
	files[platformFile] = platform.ReplaceAll(t, files[platformFile],
		"https://github.com/example-university/mswa-infra.git", repo.URL,
		"https://example-university.github.io/mswa-charts", charts.URL,
		"    url: oci://ghcr.io/example-university/charts\n", "    url: "+registry.URL+"\n    insecure: true\n")
	for _, f := range []string{platformFile, namespacesFile, credentialsFile} {
		files[f] = e.renameNamespaces(t, f, files[f])
	}
	repo.Commit("mswa platform", files)

	// The read token the Source names (this git server needs none).
	e.Create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "github-read-token", Namespace: e.Namespace},
		StringData: map[string]string{"username": "mswa-bot", "token": "github_pat_not_a_real_token"},
	})
	// A namespace that will need the database later.
	late := e.Namespace + "-reports"
	e.createNamespace(t, late)
	// What `tend bootstrap --path clusters/production` creates.
	e.Bootstrap(t, repo.URL, "clusters/production")

	e.issuerRegisters(t)
	e.dependentsWait(t)
	password := e.replicated(t, late)
	played := e.cnpgReady(t)
	e.dependentsSync(t, played)
	e.apiHealth(t)
	e.ingressCertificate(t)
	e.WaitAppsHealthy(t)
	t.Logf("platform Healthy after %s", time.Since(start).Round(time.Millisecond))
	e.checkCharts(t, charts)
	e.passwordKept(t, repo, files, password, []string{e.ns["mswa"], e.ns["mswa-model"], late})
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// issuerRegisters: the cert-manager App waits for its ClusterIssuer to
// register the ACME account (the App's health rule), then is Healthy.
func (e *env) issuerRegisters(t *testing.T) {
	t.Helper()
	a := e.WaitApp(t, "cert-manager", "synced, waiting for the ACME account", func(a *tendv1.App) bool {
		return a.Status.Revision != "" && a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Progressing"
	})
	if msg := platform.ReadyMessage(a); !strings.Contains(msg, issuer) || !strings.Contains(msg, "no ACME account registered yet") {
		t.Errorf("cert-manager App's Ready message %q does not name the ClusterIssuer and the health rule's message", msg)
	}
	e.setStatus(t, clusterIssuers, "", issuer, "cert-manager-clusterissuers", map[string]any{
		"acme":       map[string]any{"uri": "https://acme-v02.api.letsencrypt.org/acme/acct/1234567", "lastRegisteredEmail": "infra@mswa.example.org"},
		"conditions": []any{condition("Ready", "True", "ACMEAccountRegistered", "The ACME account was registered with the ACME server")},
	})
	e.WaitApp(t, "cert-manager", "Healthy", platform.Healthy)
}

// dependentsWait: the database App is synced, but CNPG has not reported
// the cluster ready (the App's health rule), so it is Progressing; the
// Apps that depend on it wait, with nothing applied.
func (e *env) dependentsWait(t *testing.T) {
	t.Helper()
	db := e.WaitApp(t, "database", "synced, waiting for CNPG", func(a *tendv1.App) bool {
		return a.Status.Revision != "" && a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Progressing"
	})
	if msg := platform.ReadyMessage(db); !strings.Contains(msg, dbCluster) || !strings.Contains(msg, "is the CloudNativePG operator running?") {
		t.Errorf("database App's Ready message %q does not name the Cluster and the health rule's message", msg)
	}
	want := "waiting for App " + e.Namespace + "/database to be Healthy (it is Progressing)"
	for _, name := range dependents {
		a := e.WaitApp(t, name, "waiting for the database", func(a *tendv1.App) bool {
			c := readyCondition(a)
			return c != nil && c.Reason == controller.ReasonDependencyNotReady && strings.Contains(c.Message, want)
		})
		e.notSynced(t, a)
	}
}

// notSynced checks a dependent App has applied nothing yet.
func (e *env) notSynced(t *testing.T, a *tendv1.App) {
	t.Helper()
	if a.Status.Revision != "" || len(a.Status.History) > 0 || a.Status.Objects > 0 {
		t.Errorf("App %s synced before the database was Healthy: revision %q, %d syncs, %d objects", a.Name, a.Status.Revision, len(a.Status.History), a.Status.Objects)
	}
	_, err := e.Clientset.AppsV1().Deployments(e.ns["mswa"]).Get(context.Background(), a.Name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("Deployment %s exists before the database was Healthy (get: %v)", a.Name, err)
	}
}

// replicated: tend generated the password at the first sync, and copied
// the Secret into every namespace the selector matches, including one
// labelled later; it returns the password.
func (e *env) replicated(t *testing.T, late string) string {
	t.Helper()
	ctx := context.Background()
	src := e.waitSecret(t, e.ns["database"], dbSecret, "a generated password", func(s *corev1.Secret) bool { return len(s.Data["password"]) > 0 })
	password := string(src.Data["password"])
	if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(password) {
		t.Errorf("generated password has %d characters; want 32 letters and digits (tend.dev/generate's default)", len(password))
	}
	if got := string(src.Data["username"]); got != "mswa" {
		t.Errorf("username %q, want git's mswa", got)
	}
	for _, ns := range []string{e.ns["mswa"], e.ns["mswa-model"]} {
		e.waitCopy(t, ns, "with the generated password", func(s *corev1.Secret) bool { return string(s.Data["password"]) == password })
	}

	// A namespace without the label has no copy; labelled, it gets one.
	if _, err := e.Clientset.CoreV1().Secrets(late).Get(ctx, dbSecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s, not labelled %s, has the Secret %s (get: %v)", late, clientLabel, dbSecret, err)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{clientLabel: "true"}}})
	if _, err := e.Clientset.CoreV1().Namespaces().Patch(ctx, late, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitCopy(t, late, "with the generated password", func(s *corev1.Secret) bool { return string(s.Data["password"]) == password })

	// Every namespace of this run the selector matches has one.
	list, err := e.Clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: clientLabel + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, ns := range list.Items {
		if strings.HasPrefix(ns.Name, e.Namespace+"-") {
			matched++
			e.waitCopy(t, ns.Name, "", func(*corev1.Secret) bool { return true })
		}
	}
	if matched != 3 {
		t.Errorf("%d namespaces of this run are labelled %s=true, want 3 (mswa, mswa-model, reports)", matched, clientLabel)
	}
	return password
}

// cnpgReady plays CloudNativePG: first the primary being set up (still
// Progressing: CNPG's Ready=False while it works is no failure), then the
// healthy cluster. It returns when the test started making it healthy.
func (e *env) cnpgReady(t *testing.T) time.Time {
	t.Helper()
	ns := e.ns["database"]
	e.setStatus(t, pgClusters, ns, dbCluster, "cloudnative-pg", map[string]any{
		"phase": "Setting up primary", "instances": 1, "readyInstances": 0,
		"conditions": []any{condition("Ready", "False", "ClusterIsNotReady", "Cluster Is Not Ready")},
	})
	db := e.WaitApp(t, "database", "reporting CNPG's phase", func(a *tendv1.App) bool {
		return strings.Contains(platform.ReadyMessage(a), "Setting up primary (0 of 2 instances ready)")
	})
	if db.Status.Health != "Progressing" {
		t.Errorf("database App is %s while CNPG sets up the primary, want Progressing", db.Status.Health)
	}
	for _, name := range dependents {
		e.notSynced(t, e.App(t, name))
	}

	played := time.Now().Truncate(time.Second) // the API's timestamps are whole seconds
	e.setStatus(t, pgClusters, ns, dbCluster, "cloudnative-pg", map[string]any{
		"phase": "Cluster in healthy state", "instances": 2, "readyInstances": 2,
		"currentPrimary": dbCluster + "-1", "targetPrimary": dbCluster + "-1",
		"instanceNames": []any{dbCluster + "-1", dbCluster + "-2"},
		"conditions":    []any{condition("Ready", "True", "ClusterIsReady", "Cluster is Ready")},
	})
	e.WaitApp(t, "database", "Healthy", platform.Healthy)
	return played
}

// dependentsSync: once the database is Healthy, the Apps that depend on
// it sync, and not earlier.
func (e *env) dependentsSync(t *testing.T, played time.Time) {
	t.Helper()
	for _, name := range dependents {
		a := e.WaitApp(t, name, "synced", func(a *tendv1.App) bool {
			return a.Status.Revision != "" && a.Status.Sync == tendv1.SyncSynced && len(a.Status.History) > 0
		})
		first := a.Status.History[len(a.Status.History)-1]
		if first.Result != "Succeeded" {
			t.Errorf("App %s: first sync %s: %s", name, first.Result, first.Message)
		}
		if first.StartedAt.Time.Before(played) {
			t.Errorf("App %s started syncing at %s, before CNPG reported the database ready at %s", name, first.StartedAt.Time, played)
		}
		d, err := e.Clientset.AppsV1().Deployments(e.ns["mswa"]).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Deployment %s: %v", name, err)
		}
		if d.CreationTimestamp.Time.Before(played) {
			t.Errorf("Deployment %s created at %s, before CNPG reported the database ready at %s", name, d.CreationTimestamp.Time, played)
		}
	}
}

// apiHealth plays cert-manager and the External Secrets Operator for the
// API and checks that the App's health rules follow them: Healthy only
// once both the Certificate is issued and the ExternalSecret synced, and
// Progressing, not Degraded, while cert-manager issues a certificate again
// (Ready=False, which tend's default reading would call Degraded).
func (e *env) apiHealth(t *testing.T) {
	t.Helper()
	ns := e.ns["mswa"]
	e.waitObject(t, certificates, ns, "mswa-api-tls")
	e.waitObject(t, externalSecrets, ns, "mswa-api-keys")
	issued := map[string]any{
		"notBefore": time.Now().UTC().Format(time.RFC3339), "notAfter": time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339),
		"revision":   1,
		"conditions": []any{condition("Ready", "True", "Ready", "Certificate is up to date and has not expired")},
	}
	e.setStatus(t, certificates, ns, "mswa-api-tls", "cert-manager-certificates-readiness", issued)
	e.WaitApp(t, "mswa-api", "waiting for the ExternalSecret", func(a *tendv1.App) bool {
		msg := platform.ReadyMessage(a)
		return a.Status.Health == "Progressing" && strings.Contains(msg, "mswa-api-keys") && strings.Contains(msg, "not synced from its store yet")
	})

	// ESO writes the target Secret, owned by the ExternalSecret, and
	// reports it synced.
	es := e.get(t, externalSecrets, ns, "mswa-api-keys")
	e.Create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mswa-api-keys", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "external-secrets.io/v1", Kind: "ExternalSecret", Name: es.GetName(), UID: es.GetUID(),
			Controller: ptr(true), BlockOwnerDeletion: ptr(true),
		}}},
		StringData: map[string]string{"MAPS_API_KEY": "not-a-real-key"},
	})
	e.setStatus(t, externalSecrets, ns, "mswa-api-keys", "external-secrets", map[string]any{
		"refreshTime": time.Now().UTC().Format(time.RFC3339), "binding": map[string]any{"name": "mswa-api-keys"},
		"conditions": []any{condition("Ready", "True", "SecretSynced", "secret synced")},
	})
	e.WaitApp(t, "mswa-api", "Healthy", platform.Healthy)

	// The certificate's Secret is lost; cert-manager issues it again.
	msg := "Issuing certificate as Secret does not exist"
	e.setStatus(t, certificates, ns, "mswa-api-tls", "cert-manager-certificates-readiness", map[string]any{
		"conditions": []any{condition("Ready", "False", "DoesNotExist", msg), condition("Issuing", "True", "DoesNotExist", msg)},
	})
	a := e.WaitApp(t, "mswa-api", "re-issuing its certificate", func(a *tendv1.App) bool { return strings.Contains(platform.ReadyMessage(a), msg) })
	if a.Status.Health != "Progressing" {
		t.Errorf("mswa-api is %s while cert-manager issues its certificate, want Progressing", a.Status.Health)
	}
	e.setStatus(t, certificates, ns, "mswa-api-tls", "cert-manager-certificates-readiness", issued)
	e.WaitApp(t, "mswa-api", "Healthy again", platform.Healthy)
}

// ingressCertificate plays cert-manager's ingress-shim for the web
// Ingress: the annotation names the ClusterIssuer the cert-manager App
// applied, and cert-manager makes a Certificate for the Ingress's TLS
// hosts, owned by the Ingress. tend leaves that Certificate alone.
func (e *env) ingressCertificate(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ns := e.ns["mswa"]
	ing, err := e.Clientset.NetworkingV1().Ingresses(ns).Get(ctx, "mswa-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := ing.Annotations["cert-manager.io/cluster-issuer"]
	if name != issuer || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName == "" {
		t.Fatalf("Ingress mswa-web: cert-manager.io/cluster-issuer %q, tls %+v; want %s and one TLS entry", name, ing.Spec.TLS, issuer)
	}
	ci := e.get(t, clusterIssuers, "", name)
	if ci.GetAnnotations()["tend.dev/owner"] != e.Namespace+"/cert-manager" {
		t.Errorf("ClusterIssuer %s is not the cert-manager App's: %v", name, ci.GetAnnotations())
	}
	tls := ing.Spec.TLS[0]
	cert := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
		"metadata": map[string]any{"name": tls.SecretName, "namespace": ns, "ownerReferences": []any{map[string]any{
			"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": ing.Name, "uid": string(ing.UID),
			"controller": true, "blockOwnerDeletion": true,
		}}},
		"spec": map[string]any{
			"secretName": tls.SecretName, "dnsNames": toAny(tls.Hosts), "usages": []any{"digital signature", "key encipherment"},
			"issuerRef": map[string]any{"name": name, "kind": "ClusterIssuer", "group": "cert-manager.io"},
		},
	}}
	if _, err := e.dyn.Resource(certificates).Namespace(ns).Create(ctx, cert, metav1.CreateOptions{FieldManager: "cert-manager-ingress-shim"}); err != nil {
		t.Fatal(err)
	}
	e.setStatus(t, certificates, ns, tls.SecretName, "cert-manager-certificates-readiness", map[string]any{
		"conditions": []any{condition("Ready", "True", "Ready", "Certificate is up to date and has not expired")},
	})
}

// checkCharts checks that both charts were fetched from their servers and
// rendered with the App's values, and their objects applied by their App.
func (e *env) checkCharts(t *testing.T, charts *charttest.Repo) {
	t.Helper()
	ctx := context.Background()
	ns := e.ns["mswa"]
	for _, c := range []struct{ app, chart, kind, apiVersion, name string }{
		{"mswa-api", apiChart, "Deployment", "apps/v1", "mswa-api"},
		{"mswa-api", apiChart, "Service", "v1", "mswa-api"},
		{"mswa-api", apiChart, "Ingress", "networking.k8s.io/v1", "mswa-api"},
		{"mswa-api", apiChart, "Certificate", "cert-manager.io/v1", "mswa-api-tls"},
		{"mswa-api", apiChart, "ExternalSecret", "external-secrets.io/v1", "mswa-api-keys"},
		{"mswa-web", webChart, "Deployment", "apps/v1", "mswa-web"},
		{"mswa-web", webChart, "Service", "v1", "mswa-web"},
		{"mswa-web", webChart, "Ingress", "networking.k8s.io/v1", "mswa-web"},
	} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(c.apiVersion)
		u.SetKind(c.kind)
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.name}, u); err != nil {
			t.Errorf("%s %s of chart %s: %v", c.kind, c.name, c.chart, err)
			continue
		}
		if got := u.GetLabels()["helm.sh/chart"]; got != c.chart {
			t.Errorf("%s %s rendered from chart %q, want %s", c.kind, c.name, got, c.chart)
		}
		if got := u.GetAnnotations()["tend.dev/owner"]; got != e.Namespace+"/"+c.app {
			t.Errorf("%s %s is owned by %q, want App %s", c.kind, c.name, got, c.app)
		}
		if c.kind == "Ingress" && u.GetAnnotations()["traefik.ingress.kubernetes.io/router.entrypoints"] != "websecure" {
			t.Errorf("Ingress %s lacks the annotation the App's inline values set: %v", c.name, u.GetAnnotations())
		}
	}
	if n := charts.Hits("/index.yaml"); n == 0 {
		t.Errorf("the chart repository's index.yaml was never fetched")
	}
	if n := charts.Hits("/charts/" + webChart + ".tgz"); n == 0 {
		t.Errorf("the chart %s was never downloaded from the chart repository", webChart)
	}

	// The Certificate cert-manager made for the web Ingress is not tend's.
	cert := e.get(t, certificates, ns, "mswa-web-tls")
	if owner := cert.GetAnnotations()["tend.dev/owner"]; owner != "" {
		t.Errorf("the ingress-shim's Certificate mswa-web-tls is claimed by App %s", owner)
	}
}

// passwordKept syncs the database three times, by a commit that changes
// the Secret, a forced sync and a commit that changes only the Cluster,
// and checks after each that the generated password is the one of the
// first sync, in the Secret and in every copy, and that the copies follow
// the Secret's change.
func (e *env) passwordKept(t *testing.T, repo *testenv.GitRepo, files map[string]string, password string, copies []string) {
	t.Helper()
	db := e.ns["database"]
	before := e.secret(t, db, dbSecret).ResourceVersion
	steps := []struct {
		what string
		sync func() tendv1.SyncRecord
	}{
		{"a commit that adds a key to the Secret", func() tendv1.SyncRecord {
			return e.commitSync(t, repo, "database: the login names the database too", map[string]string{
				credentialsFile: platform.ReplaceAll(t, files[credentialsFile], `port: "5432"`, "port: \"5432\"\n  dbname: mswa"),
			})
		}},
		{"a forced sync", func() tendv1.SyncRecord { return e.RequestSync(t, "database", "force") }},
		{"a commit that changes only the Cluster", func() tendv1.SyncRecord {
			return e.commitSync(t, repo, "database: more connections", map[string]string{
				clusterFile: platform.ReplaceAll(t, files[clusterFile], `max_connections: "100"`, `max_connections: "200"`),
			})
		}},
	}
	lastID := e.App(t, "database").Status.History[0].ID
	for i, s := range steps {
		rec := s.sync()
		if rec.Result != "Succeeded" || rec.ID <= lastID {
			t.Fatalf("sync %d (%s): %s (id %d, last %d): %s", i+1, s.what, rec.Result, rec.ID, lastID, rec.Message)
		}
		lastID = rec.ID
		e.WaitApp(t, "database", "Healthy", platform.Healthy)
		src := e.secret(t, db, dbSecret)
		if string(src.Data["password"]) != password {
			t.Errorf("after sync %d (%s) the generated password changed", i+1, s.what)
		}
		if i == 0 {
			if src.ResourceVersion == before || string(src.Data["dbname"]) != "mswa" {
				t.Errorf("sync 1 did not apply git's change to the Secret (resourceVersion %s, was %s; dbname %q)", src.ResourceVersion, before, src.Data["dbname"])
			}
		}
		for _, ns := range copies {
			cp := e.waitCopy(t, ns, "with git's new key", func(s *corev1.Secret) bool { return string(s.Data["dbname"]) == "mswa" })
			if string(cp.Data["password"]) != password {
				t.Errorf("after sync %d (%s) the copy in %s has another password than the first sync generated", i+1, s.what, ns)
			}
		}
	}
}

// commitSync commits files, has tend fetch them as a push webhook would,
// and returns the database App's sync of the new revision.
func (e *env) commitSync(t *testing.T, repo *testenv.GitRepo, msg string, files map[string]string) tendv1.SyncRecord {
	t.Helper()
	rev := repo.Commit(msg, files)
	e.RequestFetch(t, "tend")
	a := e.WaitApp(t, "database", "synced revision "+rev[:8], func(a *tendv1.App) bool {
		return a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced && len(a.Status.History) > 0 && a.Status.History[0].Revision == rev
	})
	if rec := a.Status.History[0]; rec.Changed == 0 {
		t.Errorf("the sync of %s changed no object", rev[:8])
	}
	return a.Status.History[0]
}

func (e *env) secret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := e.Clientset.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, name, err)
	}
	return s
}

func (e *env) waitSecret(t *testing.T, ns, name, what string, cond func(*corev1.Secret) bool) *corev1.Secret {
	t.Helper()
	var s *corev1.Secret
	e.WaitFor(t, "Secret "+ns+"/"+name+" "+what, func() bool {
		var err error
		s, err = e.Clientset.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && cond(s)
	})
	return s
}

// waitCopy waits for tend's copy of the database login in ns to satisfy
// cond, and checks it is marked as a copy of the original.
func (e *env) waitCopy(t *testing.T, ns, what string, cond func(*corev1.Secret) bool) *corev1.Secret {
	t.Helper()
	s := e.waitSecret(t, ns, dbSecret, "(copy) "+what, cond)
	if s.Labels["tend.dev/replicate"] != "copy" || s.Annotations["tend.dev/replica-of"] != e.ns["database"]+"/"+dbSecret {
		t.Errorf("Secret %s/%s is not marked as tend's copy: labels %v, annotations %v", ns, dbSecret, s.Labels, s.Annotations)
	}
	if s.Type != corev1.SecretTypeBasicAuth {
		t.Errorf("copy in %s has type %s, want the original's %s", ns, s.Type, corev1.SecretTypeBasicAuth)
	}
	return s
}

// renameNamespaces gives the example's namespaces this run's names in one
// file of the example.
func (e *env) renameNamespaces(t *testing.T, file, s string) string {
	t.Helper()
	re := namespaceRef
	if file == namespacesFile {
		re = namespaceName
	}
	out := re.ReplaceAllStringFunc(s, func(line string) string {
		m := re.FindStringSubmatch(line)
		return m[1] + e.ns[m[2]]
	})
	out = strings.ReplaceAll(out, ".database.svc", "."+e.ns["database"]+".svc")
	if out == s {
		t.Fatalf("%s names none of the example's namespaces any more; update the test", file)
	}
	return out
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func ptr[T any](v T) *T { return &v }
