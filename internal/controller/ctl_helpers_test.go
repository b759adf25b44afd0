package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// ctlRepo is a git repository served over smart HTTP on loopback
// (testenv.GitRepo); commit is its Commit and srv its Server.
type ctlRepo struct {
	*testenv.GitRepo
	srv *httptest.Server
	t   *testing.T
}

func newCtlRepo(t *testing.T) *ctlRepo {
	t.Helper()
	r := testenv.NewGitRepo(t, nil)
	return &ctlRepo{GitRepo: r, srv: r.Server, t: t}
}

// commit sets files (path -> content; "" deletes), commits and pushes; it
// returns the commit SHA.
func (r *ctlRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	return r.Commit(msg, files)
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, timeout, cond)
}

// ctlEnv is a running controller restricted to one test namespace.
type ctlEnv struct {
	*testenv.Env
	c    client.Client
	ctrl *Controller
}

func startController(t *testing.T) *ctlEnv {
	t.Helper()
	return startControllerWith(t, nil)
}

// startControllerWith starts a controller with options changed by mutate.
func startControllerWith(t *testing.T, mutate func(*Options)) *ctlEnv {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts := Options{Config: env.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0", Namespaces: []string{env.Namespace}}
	if mutate != nil {
		mutate(&opts)
	}
	// The log goes to stderr as before, and is kept for the leak search.
	log := &testenv.LogBuffer{Keep: 8 << 20}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, log), nil))
	}
	ctl, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Start(ctx) }()
	e := &ctlEnv{Env: env, c: c, ctrl: ctl}
	t.Cleanup(func() {
		if !t.Failed() {
			env.SearchSecrets(t, map[string]string{"the controller's log": log.String()})
		}
		// Apps first, while the controller runs (finalizers), then stop it.
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
	})
	return e
}

func (e *ctlEnv) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetNamespace(e.Namespace)
		if err := e.c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func (e *ctlEnv) app(t *testing.T, name string) *tendv1.App {
	t.Helper()
	var a tendv1.App
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

// waitObject waits up to a minute until cond holds for the object name of
// the test namespace, read into obj, and reports the object when it does
// not.
func waitObject[T client.Object](t *testing.T, e *ctlEnv, name, what string, obj T, cond func(T) bool) T {
	t.Helper()
	key := types.NamespacedName{Namespace: e.Namespace, Name: name}
	if !testenv.Within(time.Minute, func() bool { return e.c.Get(context.Background(), key, obj) == nil && cond(obj) }) {
		b, _ := yaml.Marshal(obj)
		t.Fatalf("timed out waiting for %T %s: %s\n%s", obj, name, what, b)
	}
	return obj
}

// waitApp waits until cond holds for the App, and reports its status when
// it does not.
func (e *ctlEnv) waitApp(t *testing.T, name, what string, timeout time.Duration, cond func(*tendv1.App) bool) *tendv1.App {
	t.Helper()
	var last tendv1.App
	deadline := time.Now().Add(timeout)
	for {
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &last); err == nil && cond(&last) {
			return &last
		}
		if time.Now().After(deadline) {
			b, _ := yaml.Marshal(last.Status)
			t.Fatalf("timed out after %s waiting for App %s: %s\nstatus:\n%s", timeout, name, what, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func gitSource(name, url string) *tendv1.Source {
	return &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tendv1.SourceSpec{
			Git:      &tendv1.GitSource{URL: url, Ref: tendv1.GitRef{Branch: "main"}},
			Interval: metav1.Duration{Duration: time.Second},
			Timeout:  metav1.Duration{Duration: 30 * time.Second},
		},
	}
}

func newApp(name, src, path, destNS string, mutate ...func(*tendv1.App)) *tendv1.App {
	a := &tendv1.App{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tendv1.AppSpec{
			SourceRef:   tendv1.NamespacedObjectReference{Name: src},
			Path:        path,
			Destination: tendv1.Destination{Namespace: destNS},
			Sync:        tendv1.SyncPolicy{Prune: true, SelfHeal: true},
		},
	}
	for _, m := range mutate {
		m(a)
	}
	return a
}

func condition(a *tendv1.App, typ string) *metav1.Condition {
	for i := range a.Status.Conditions {
		if a.Status.Conditions[i].Type == typ {
			return &a.Status.Conditions[i]
		}
	}
	return nil
}

func readyMessage(a *tendv1.App) string {
	if c := condition(a, tendv1.ConditionReady); c != nil {
		return c.Reason + ": " + c.Message
	}
	return ""
}

func deploymentYAML(name, image string, podAnnotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 2
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {%[3]s}
    spec:
      containers:
      - name: app
        image: %[2]s
`, name, image, podAnnotations)
}

func configMapYAML(name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  value: %q\n", name, value)
}

func clientSchemeCodecs() runtimeSerializer {
	return serializer.NewCodecFactory(Scheme()).WithoutConversion()
}

type runtimeSerializer = runtime.NegotiatedSerializer
