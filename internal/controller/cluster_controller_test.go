package controller

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestClusterRemoteTarget runs against two control planes: the shared test
// cluster, where tend runs, and a second one it starts, reached through a
// Cluster. One second control plane serves every subtest (it takes a few
// seconds to start).
func TestClusterRemoteTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a second control plane (run without -short)")
	}
	c2 := startSecondCluster(t)
	logs := &syncBuffer{}
	e := startClusterController(t, slog.New(slog.NewTextHandler(logs, nil)))
	ctx := context.Background()
	e.create(t, kubeconfigSecret("c2-kubeconfig", "kubeconfig", c2.kubeconfig), remoteCluster("c2", "c2-kubeconfig"))

	t.Run("connects", func(t *testing.T) {
		sv, err := c2.clientset.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		cl := e.waitCluster(t, "c2", "Ready", 60*time.Second, clusterReady)
		if got, want := cl.Status.KubeVersion, sv.GitVersion; got != want {
			t.Errorf("kubeVersion = %q, want %q", got, want)
		}
		if got, want := clusterMessage(cl, tendv1.ConditionReady), ClusterReasonConnected+": connected, Kubernetes "+sv.GitVersion; got != want {
			t.Errorf("Ready = %q, want %q", got, want)
		}
		if cl.Status.ObservedGeneration != cl.Generation {
			t.Errorf("observedGeneration = %d, want %d", cl.Status.ObservedGeneration, cl.Generation)
		}
		table := getTable(t, e.Config, "/apis/tend.dev/v1alpha1/namespaces/"+e.Namespace+"/clusters")
		if !strings.Contains(table, sv.GitVersion) || !strings.Contains(table, `"True"`) {
			t.Errorf("kubectl get clusters does not show the version and Ready:\n%s", table)
		}
		// A requested check that changes nothing writes nothing: once the
		// cluster controller has finished a reconcile after the request,
		// the Cluster is as it was.
		before := reconciles(t, "cluster")
		cl.Annotations = map[string]string{AnnotationRequestedAt: "1"}
		if err := e.c.Update(ctx, cl); err != nil {
			t.Fatal(err)
		}
		rv := cl.ResourceVersion
		eventually(t, "a reconcile of the requested check", 30*time.Second, func() bool { return reconciles(t, "cluster") > before })
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "c2"}, cl); err != nil {
			t.Fatal(err)
		}
		if cl.ResourceVersion != rv {
			t.Errorf("an unchanged check wrote the Cluster: resourceVersion %s -> %s", rv, cl.ResourceVersion)
		}
	})

	repo := newCtlRepo(t)
	rev := repo.commit("remote apps", map[string]string{
		"remote/cm.yaml":     configMapYAML("remote-config", "v1"),
		"remote/deploy.yaml": deploymentYAML("remote-web", "nginx:1.27", ""),
		"late/cm.yaml":       configMapYAML("late-config", "v1"),
	})
	e.create(t, gitSource("repo", repo.URL))

	t.Run("App deploys to it", func(t *testing.T) {
		e.create(t, newApp("remote", "repo", "remote", "remote-apps", toCluster("c2")))
		a := e.waitApp(t, "remote", "Synced and Healthy at "+rev, 90*time.Second, func(a *tendv1.App) bool {
			return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && a.Status.Revision == rev
		})
		if a.Status.Objects != 2 { // the Namespace it created is not one
			t.Errorf("objects = %d, want 2", a.Status.Objects)
		}
		if _, err := c2.clientset.CoreV1().Namespaces().Get(ctx, "remote-apps", metav1.GetOptions{}); err != nil {
			t.Errorf("destination Namespace not created in the second cluster: %v", err)
		}
		cm, err := c2.clientset.CoreV1().ConfigMaps("remote-apps").Get(ctx, "remote-config", metav1.GetOptions{})
		if err != nil || cm.Data["value"] != "v1" {
			t.Fatalf("ConfigMap not in the second cluster: %v %v", cm, err)
		}
		d, err := c2.clientset.AppsV1().Deployments("remote-apps").Get(ctx, "remote-web", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Deployment not in the second cluster: %v", err)
		}
		if d.Status.AvailableReplicas != 2 {
			t.Errorf("the App is Healthy but the remote Deployment has %d available replicas", d.Status.AvailableReplicas)
		}
		for _, ns := range []string{"remote-apps", e.Namespace} {
			if _, err := e.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "remote-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("ConfigMap also in namespace %s of the first cluster: %v", ns, err)
			}
			if _, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, "remote-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("Deployment also in namespace %s of the first cluster: %v", ns, err)
			}
		}
		// The remote watch cache sees a hand edit there, and selfHeal undoes it.
		patch := []byte(`{"data":{"value":"edited by hand"}}`)
		if _, err := c2.clientset.CoreV1().ConfigMaps("remote-apps").Patch(ctx, "remote-config", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "hand edit in the second cluster undone", 20*time.Second, func() bool {
			cm, err := c2.clientset.CoreV1().ConfigMaps("remote-apps").Get(ctx, "remote-config", metav1.GetOptions{})
			return err == nil && cm.Data["value"] == "v1"
		})
	})

	t.Run("App to a missing Cluster", func(t *testing.T) {
		e.create(t, newApp("lost", "repo", "late", "late-apps", toCluster("ghost")))
		a := e.waitApp(t, "lost", "Stalled naming the Cluster", 30*time.Second, func(a *tendv1.App) bool {
			c := condition(a, tendv1.ConditionStalled)
			return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "Cluster "+e.Namespace+"/ghost does not exist")
		})
		if c := condition(a, tendv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("Ready = %+v", c)
		}
		// Once the Cluster exists and connects, the App syncs without
		// waiting for its 10-minute interval.
		e.create(t, remoteCluster("ghost", "c2-kubeconfig"))
		e.waitApp(t, "lost", "Synced once the Cluster exists", 30*time.Second, func(a *tendv1.App) bool {
			return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev && condition(a, tendv1.ConditionStalled) == nil
		})
		if _, err := c2.clientset.CoreV1().ConfigMaps("late-apps").Get(ctx, "late-config", metav1.GetOptions{}); err != nil {
			t.Fatalf("late-config not in the second cluster: %v", err)
		}
	})

	// An Argo CD cluster Secret (server and config) serves as it is.
	t.Run("Argo CD cluster Secret", func(t *testing.T) {
		sec := testenv.ArgoCDClusterSecret(t, c2.kubeconfig, "cluster-c2", "c2")
		e.create(t, sec, remoteCluster("argo-c2", "cluster-c2"))
		sv, err := c2.clientset.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		cl := e.waitCluster(t, "argo-c2", "Ready", 60*time.Second, clusterReady)
		if cl.Status.KubeVersion != sv.GitVersion {
			t.Errorf("kubeVersion = %q, want %q", cl.Status.KubeVersion, sv.GitVersion)
		}
	})

	t.Run("Secret without the key", func(t *testing.T) {
		sec := kubeconfigSecret("nokey-kubeconfig", "config", c2.kubeconfig)
		e.create(t, sec, remoteCluster("nokey", "nokey-kubeconfig"))
		cl := e.waitCluster(t, "nokey", "not Ready", 30*time.Second, clusterNotReady)
		want := `Secret ` + e.Namespace + `/nokey-kubeconfig has no key "kubeconfig" (it has keys config)`
		if msg := clusterMessage(cl, tendv1.ConditionReady); !strings.HasPrefix(msg, ReasonSecretInvalid+": "+want) {
			t.Errorf("Ready = %q, want it to start with %q", msg, ReasonSecretInvalid+": "+want)
		}
		// The user must fix the Secret: Stalled, not retried hot.
		if c := meta.FindStatusCondition(cl.Status.Conditions, tendv1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("Stalled = %+v, want True: only a fixed Secret helps", c)
		}
		// Fixing the Secret is picked up through its watch, well before the
		// 30 s retry.
		sec.Data["kubeconfig"] = c2.kubeconfig
		if err := e.c.Update(ctx, sec); err != nil {
			t.Fatal(err)
		}
		e.waitCluster(t, "nokey", "Ready after the Secret was fixed", 20*time.Second, clusterReady)
	})

	t.Run("missing Secret", func(t *testing.T) {
		e.create(t, remoteCluster("late", "late-kubeconfig"))
		cl := e.waitCluster(t, "late", "not Ready", 30*time.Second, clusterNotReady)
		want := ClusterReasonSecretNotFound + ": Secret " + e.Namespace + "/late-kubeconfig (spec.kubeconfigSecretRef.name) not found"
		if msg := clusterMessage(cl, tendv1.ConditionReady); !strings.HasPrefix(msg, want) {
			t.Errorf("Ready = %q, want it to start with %q", msg, want)
		}
		e.create(t, kubeconfigSecret("late-kubeconfig", "kubeconfig", c2.kubeconfig))
		e.waitCluster(t, "late", "Ready after the Secret was created", 20*time.Second, clusterReady)
	})

	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		server := "https://" + l.Addr().String()
		l.Close()
		kc := c2.rewrite(t, func(c *clientcmdapi.Config) {
			for _, cl := range c.Clusters {
				cl.Server = server
			}
			for _, u := range c.AuthInfos {
				*u = clientcmdapi.AuthInfo{Token: testToken}
			}
		})
		e.create(t, kubeconfigSecret("down-kubeconfig", "kubeconfig", kc), remoteCluster("down", "down-kubeconfig"))
		cl := e.waitCluster(t, "down", "not Ready", 30*time.Second, clusterNotReady)
		want := ClusterReasonUnreachable + ": cannot reach " + server + ": "
		if msg := clusterMessage(cl, tendv1.ConditionReady); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "connection refused") {
			t.Errorf("Ready = %q, want %q... connection refused", msg, want)
		}
	})

	t.Run("spec errors and suspend", func(t *testing.T) {
		e.create(t, remoteCluster("nameless", ""), remoteCluster("badkey", "c2-kubeconfig", func(cl *tendv1.Cluster) {
			cl.Spec.KubeconfigSecretRef.Key = "no/slashes"
		}), remoteCluster("paused", "c2-kubeconfig", func(cl *tendv1.Cluster) { cl.Spec.Suspend = true }))
		for name, want := range map[string]string{
			"nameless": "spec.kubeconfigSecretRef.name is empty",
			"badkey":   `spec.kubeconfigSecretRef.key "no/slashes" is not a valid Secret key`,
		} {
			cl := e.waitCluster(t, name, "Stalled", 30*time.Second, func(cl *tendv1.Cluster) bool {
				return meta.IsStatusConditionTrue(cl.Status.Conditions, tendv1.ConditionStalled)
			})
			if msg := clusterMessage(cl, tendv1.ConditionStalled); !strings.Contains(msg, ReasonInvalidSpec+": "+want) {
				t.Errorf("%s: Stalled = %q, want %q", name, msg, want)
			}
			if !clusterNotReady(cl) {
				t.Errorf("%s: Ready is not False", name)
			}
		}
		cl := e.waitCluster(t, "paused", "not Ready", 30*time.Second, clusterNotReady)
		if msg := clusterMessage(cl, tendv1.ConditionReady); !strings.HasPrefix(msg, ReasonSuspended+": ") {
			t.Errorf("Ready = %q, want reason %s", msg, ReasonSuspended)
		}
	})

	t.Run("deleting a Cluster closes its connection", func(t *testing.T) {
		cl := remoteCluster("temp", "c2-kubeconfig")
		e.create(t, cl)
		e.waitCluster(t, "temp", "Ready", 30*time.Second, clusterReady)
		if !e.hasConn("temp") {
			t.Fatal("no connection for a Ready Cluster")
		}
		if err := e.c.Delete(ctx, cl); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the connection closed", 20*time.Second, func() bool { return !e.hasConn("temp") })
	})

	t.Run("no credentials in status, events or logs", func(t *testing.T) {
		// Every check above recorded an event; wait for the last ones.
		var evs []string
		eventually(t, "Cluster events", 20*time.Second, func() bool {
			list, err := e.Clientset.EventsV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false
			}
			evs = evs[:0]
			var connected, unreachable bool
			for _, ev := range list.Items {
				if ev.Regarding.Kind != "Cluster" {
					continue
				}
				evs = append(evs, ev.Reason+": "+ev.Note)
				connected = connected || ev.Regarding.Name == "c2" && ev.Reason == ClusterReasonConnected && ev.Type == corev1.EventTypeNormal
				unreachable = unreachable || ev.Regarding.Name == "down" && ev.Reason == ClusterReasonUnreachable && ev.Type == corev1.EventTypeWarning
			}
			return connected && unreachable
		})
		var clusters tendv1.ClusterList
		if err := e.c.List(ctx, &clusters, client.InNamespace(e.Namespace)); err != nil {
			t.Fatal(err)
		}
		texts := map[string]string{"events": strings.Join(evs, "\n"), "logs": logs.String()}
		for _, cl := range clusters.Items {
			b, _ := yaml.Marshal(cl.Status)
			texts["status of "+cl.Name] = string(b)
		}
		if !strings.Contains(texts["logs"], "cluster connection changed") {
			t.Errorf("no log of connection changes:\n%s", texts["logs"])
		}
		for what, text := range texts {
			for _, secret := range c2.secrets(t) {
				if strings.Contains(text, secret) {
					t.Errorf("%s contain credentials (%.12s...):\n%s", what, secret, text)
				}
			}
		}
	})
}

// secondCluster is an independent control plane the test starts.
type secondCluster struct {
	// kubeconfig is its admin kubeconfig, flattened: certificates inline.
	kubeconfig []byte
	clientset  kubernetes.Interface
}

// startSecondCluster starts a control plane with tools/cluster in a
// temporary directory; it is stopped when the test ends, however it ends
// (but a test binary killed by -timeout leaves it running).
func startSecondCluster(t *testing.T) *secondCluster {
	t.Helper()
	tool := clusterToolDir(t)
	dir := filepath.Join(t.TempDir(), "c2")
	run := func(ctx context.Context, args ...string) ([]byte, error) {
		return exec.CommandContext(ctx, "go", append([]string{"run", "-C", tool, "."}, args...)...).CombinedOutput()
	}
	// Registered before "up", so that a start failing half-way is cleaned
	// up too; it runs before t.TempDir removes the directory.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := run(ctx, "down", "--dir", dir); err != nil {
			t.Errorf("stop the second control plane: %v\n%s", err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := run(ctx, "up", "--dir", dir, "--nodes", "1"); err != nil {
		t.Fatalf("start a second control plane: %v\n%s", err, out)
	}
	t.Logf("second control plane up in %s", time.Since(start).Round(100*time.Millisecond))
	kc, err := clientcmd.LoadFromFile(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.FlattenConfig(kc); err != nil {
		t.Fatal(err)
	}
	raw, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &secondCluster{kubeconfig: raw, clientset: cs}
}

// rewrite returns the cluster's kubeconfig changed by mutate.
func (c *secondCluster) rewrite(t *testing.T, mutate func(*clientcmdapi.Config)) []byte {
	t.Helper()
	kc, err := clientcmd.Load(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	mutate(kc)
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secrets are pieces of credentials that must never be shown: the client
// key and certificate, in PEM and in base64, and the token the tests use.
func (c *secondCluster) secrets(t *testing.T) []string {
	t.Helper()
	kc, err := clientcmd.Load(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{testToken, "PRIVATE KEY"}
	for _, u := range kc.AuthInfos {
		for _, pemData := range [][]byte{u.ClientKeyData, u.ClientCertificateData} {
			lines := strings.Split(strings.TrimSpace(string(pemData)), "\n")
			if len(lines) < 3 {
				t.Fatalf("unexpected PEM data in the kubeconfig (%d lines)", len(lines))
			}
			out = append(out, lines[1], base64.StdEncoding.EncodeToString(pemData)[40:80])
		}
	}
	return out
}

// clusterToolDir finds tools/cluster above the package directory.
func clusterToolDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tools", "cluster", "go.mod")); err == nil {
			return filepath.Join(d, "tools", "cluster")
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no tools/cluster above %s", wd)
		}
	}
}

// startClusterController is startController with the ClusterReconciler
// registered through Options.Extra, as New's caller would, and log written
// to log. Remote connections are closed when the test ends.
func startClusterController(t *testing.T, log *slog.Logger) *ctlEnv {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctl, err := New(ctx, Options{
		Config: env.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0",
		Namespaces: []string{env.Namespace}, Log: log,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Start(ctx) }()
	t.Cleanup(func() {
		// Apps first, while the controller runs (finalizers prune), then
		// stop it and close the remote connections.
		var apps tendv1.AppList
		_ = c.List(context.Background(), &apps, client.InNamespace(env.Namespace))
		for i := range apps.Items {
			_ = c.Delete(context.Background(), &apps.Items[i])
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			_ = c.List(context.Background(), &apps, client.InNamespace(env.Namespace))
			if len(apps.Items) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		<-done
		for _, conn := range ctl.Clusters.All() {
			if conn != ctl.Clusters.Local {
				conn.Close()
			}
		}
	})
	return &ctlEnv{Env: env, c: c, ctrl: ctl}
}

// waitCluster waits until cond holds for the Cluster, and reports its
// status when it does not.
func (e *ctlEnv) waitCluster(t *testing.T, name, what string, timeout time.Duration, cond func(*tendv1.Cluster) bool) *tendv1.Cluster {
	t.Helper()
	var last tendv1.Cluster
	deadline := time.Now().Add(timeout)
	for {
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &last); err == nil && cond(&last) {
			return &last
		}
		if time.Now().After(deadline) {
			b, _ := yaml.Marshal(last.Status)
			t.Fatalf("timed out after %s waiting for Cluster %s: %s\nstatus:\n%s", timeout, name, what, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hasConn reports whether tend holds a connection for the Cluster.
func (e *ctlEnv) hasConn(name string) bool {
	for _, c := range e.ctrl.Clusters.All() {
		if c.Name == e.Namespace+"/"+name {
			return true
		}
	}
	return false
}

func clusterReady(cl *tendv1.Cluster) bool {
	return meta.IsStatusConditionTrue(cl.Status.Conditions, tendv1.ConditionReady)
}

func clusterNotReady(cl *tendv1.Cluster) bool {
	return meta.IsStatusConditionFalse(cl.Status.Conditions, tendv1.ConditionReady)
}

// clusterMessage is "Reason: message" of a condition.
func clusterMessage(cl *tendv1.Cluster, typ string) string {
	if c := meta.FindStatusCondition(cl.Status.Conditions, typ); c != nil {
		return c.Reason + ": " + c.Message
	}
	return ""
}

func kubeconfigSecret(name, key string, kubeconfig []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{key: kubeconfig}}
}

func remoteCluster(name, secret string, mutate ...func(*tendv1.Cluster)) *tendv1.Cluster {
	cl := &tendv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       tendv1.ClusterSpec{KubeconfigSecretRef: tendv1.SecretKeyReference{Name: secret}},
	}
	for _, m := range mutate {
		m(cl)
	}
	return cl
}

// toCluster makes an App deploy to a Cluster, creating its namespace.
func toCluster(name string) func(*tendv1.App) {
	return func(a *tendv1.App) {
		a.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: name}
		a.Spec.Destination.CreateNamespace = true
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// reconciles is how many reconciles the controllers named name in this
// process have finished (controller-runtime's reconcile counter).
func reconciles(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == name {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
