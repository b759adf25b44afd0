package refwatch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// counter counts the requests a client sends, watches apart.
type counter struct {
	mu   sync.Mutex
	reqs []string
}

func (c *counter) RoundTrip(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if q := r.URL.Query(); q.Get("watch") != "true" && q.Get("watch") != "1" {
			c.mu.Lock()
			c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
			c.mu.Unlock()
		}
		return next.RoundTrip(r)
	})
}

func (c *counter) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reqs)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// changes collects OnChange calls.
type changes struct {
	ch chan change
}

type change struct {
	ref    Ref
	owners []Owner
}

func newChanges() *changes { return &changes{ch: make(chan change, 100)} }

func (c *changes) onChange(ref Ref, owners []Owner) {
	slices.SortFunc(owners, func(a, b Owner) int { return strings.Compare(a.Name, b.Name) })
	c.ch <- change{ref, owners}
}

func (c *changes) next(t *testing.T, what string) change {
	t.Helper()
	select {
	case ch := <-c.ch:
		return ch
	case <-time.After(30 * time.Second):
		t.Fatalf("no change told: %s", what)
		return change{}
	}
}

func newWatcher(t *testing.T, cfg *rest.Config, opts Options) (*Watcher, *counter) {
	t.Helper()
	cnt := &counter{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(cnt.RoundTrip)
	opts.Config = cfg
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w, cnt
}

var (
	app1 = Owner{Kind: "App", Namespace: "ns", Name: "a"}
	app2 = Owner{Kind: "App", Namespace: "ns", Name: "b"}
)

// TestReadsAreServedFromTheWatch: the first read of a Secret lists it, the
// reads that follow send no request; two owners share one watch, and a
// change reaches both with the new value readable at once.
func TestReadsAreServedFromTheWatch(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "values", Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{}}`}},
		StringData: map[string]string{"values.yaml": "greeting: hello"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A neighbour that is not referenced: never read, never held.
	if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "other"}, StringData: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ch := newChanges()
	w, cnt := newWatcher(t, env.Config, Options{OnChange: ch.onChange})
	key := types.NamespacedName{Namespace: env.Namespace, Name: "values"}

	var sec corev1.Secret
	if err := w.Get(ctx, app1, key, &sec); err != nil {
		t.Fatal(err)
	}
	if got, want := string(sec.Data["values.yaml"]), "greeting: hello"; got != want {
		t.Fatalf("values.yaml = %q, want %q", got, want)
	}
	if _, ok := sec.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Errorf("the last-applied-configuration annotation (a copy of the data) is kept")
	}
	first := cnt.requests()
	for range 10 {
		for _, o := range []Owner{app1, app2} {
			var s corev1.Secret
			if err := w.Get(ctx, o, key, &s); err != nil {
				t.Fatal(err)
			}
		}
	}
	if more := cnt.requests()[len(first):]; len(more) > 0 {
		t.Errorf("reads after the first sent requests: %v", more)
	}
	if st := w.Stats(); st.Watches != 1 || st.Started != 1 || st.Reads != 21 {
		t.Errorf("stats = %+v, want 1 watch, 1 started, 21 reads", st)
	}

	sec.StringData = map[string]string{"values.yaml": "greeting: bonjour"}
	if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Update(ctx, &sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := ch.next(t, "after an update")
	if c.ref != (Ref{Kind: Secret, Namespace: env.Namespace, Name: "values"}) || !slices.Equal(c.owners, []Owner{app1, app2}) {
		t.Errorf("change = %+v, want the Secret with both owners", c)
	}
	var after corev1.Secret
	if err := w.Get(ctx, app1, key, &after); err != nil {
		t.Fatal(err)
	}
	if got, want := string(after.Data["values.yaml"]), "greeting: bonjour"; got != want {
		t.Errorf("after the change values.yaml = %q, want %q", got, want)
	}

	if err := env.Clientset.CoreV1().Secrets(env.Namespace).Delete(ctx, "values", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ch.next(t, "after a delete")
	if err := w.Get(ctx, app1, key, &after); !apierrors.IsNotFound(err) {
		t.Errorf("read of a deleted Secret: %v, want NotFound", err)
	}
}

// TestMissingObjectIsNotFoundAndWatched: a missing ConfigMap reads as
// NotFound, and its creation is a change its owner is told about.
func TestMissingObjectIsNotFoundAndWatched(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	ch := newChanges()
	w, _ := newWatcher(t, env.Config, Options{OnChange: ch.onChange})
	key := types.NamespacedName{Namespace: env.Namespace, Name: "defaults"}
	var cm corev1.ConfigMap
	if err := w.Get(ctx, app1, key, &cm); !apierrors.IsNotFound(err) {
		t.Fatalf("read of a missing ConfigMap: %v, want NotFound", err)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "defaults"}, Data: map[string]string{"values.yaml": "replicas: 2"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := ch.next(t, "after the ConfigMap was created"); !slices.Equal(c.owners, []Owner{app1}) {
		t.Errorf("owners told = %v, want %v", c.owners, []Owner{app1})
	}
	if err := w.Get(ctx, app1, key, &cm); err != nil {
		t.Fatal(err)
	}
	if got, want := cm.Data["values.yaml"], "replicas: 2"; got != want {
		t.Errorf("values.yaml = %q, want %q", got, want)
	}
}

// TestWatchesStopWhenNoOwnerReferencesThem: an owner that stops
// referencing an object lets go of it; the watch stops with its last owner,
// and a later read starts a new one.
func TestWatchesStopWhenNoOwnerReferencesThem(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	for _, name := range []string{"s1", "s2"} {
		if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": name},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := newWatcher(t, env.Config, Options{})
	get := func(o Owner, name string) {
		t.Helper()
		var s corev1.Secret
		if err := w.Get(ctx, o, types.NamespacedName{Namespace: env.Namespace, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
	}
	s1 := Ref{Kind: Secret, Namespace: env.Namespace, Name: "s1"}
	get(app1, "s1")
	get(app1, "s2")
	get(app2, "s1")
	if got := w.Stats().Watches; got != 2 {
		t.Fatalf("%d watches, want 2", got)
	}
	w.Keep(app1, []Ref{s1}) // app1 no longer reads s2
	if got := w.Stats().Watches; got != 1 {
		t.Errorf("after app1 let go of s2: %d watches, want 1", got)
	}
	w.Forget(app1)
	if got := w.Stats().Watches; got != 1 {
		t.Errorf("after app1 was forgotten: %d watches, want 1 (app2 reads s1)", got)
	}
	w.Forget(app2)
	if got := w.Stats().Watches; got != 0 {
		t.Errorf("with no owner left: %d watches, want 0", got)
	}
	get(app2, "s1")
	if st := w.Stats(); st.Watches != 1 || st.Started != 3 {
		t.Errorf("after a new read: %+v, want 1 watch, 3 started", st)
	}
}

// TestUnreachableAPIServerIsAnError: when the watch cannot list, the read
// fails with that error (the caller backs off), not NotFound and not only at
// the sync timeout.
func TestUnreachableAPIServerIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // connection refused from now on
	w, _ := newWatcher(t, &rest.Config{Host: srv.URL}, Options{SyncTimeout: 10 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var s corev1.Secret
	err := w.Get(ctx, app1, types.NamespacedName{Namespace: "ns", Name: "values"}, &s)
	switch {
	case err == nil:
		t.Fatal("read through an unreachable apiserver succeeded")
	case apierrors.IsNotFound(err):
		t.Fatalf("read through an unreachable apiserver: NotFound (%v), want the connection error", err)
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("read through an unreachable apiserver waited for its deadline: %v", err)
	}
	t.Logf("error: %v", err)
	// A second read fails at once too, while the watch keeps trying.
	if err := w.Get(ctx, app1, types.NamespacedName{Namespace: "ns", Name: "values"}, &s); err == nil || apierrors.IsNotFound(err) {
		t.Errorf("second read: %v, want the connection error", err)
	}
}

// TestStoppedWatcherRefusesReads: after Stop no watch is left and reads
// fail with ErrStopped.
func TestStoppedWatcherRefusesReads(t *testing.T) {
	env := testenv.New(t)
	w, _ := newWatcher(t, env.Config, Options{})
	var cm corev1.ConfigMap
	if err := w.Get(context.Background(), app1, types.NamespacedName{Namespace: env.Namespace, Name: "none"}, &cm); !apierrors.IsNotFound(err) {
		t.Fatalf("read: %v, want NotFound", err)
	}
	w.Stop()
	if got := w.Stats().Watches; got != 0 {
		t.Errorf("%d watches after Stop", got)
	}
	if err := w.Get(context.Background(), app1, types.NamespacedName{Namespace: env.Namespace, Name: "none"}, &cm); !errors.Is(err, ErrStopped) {
		t.Errorf("read after Stop: %v, want ErrStopped", err)
	}
}
