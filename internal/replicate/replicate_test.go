package replicate

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply/secret"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startReconciler runs a Reconciler scoped to namespaces in a manager of
// its own, until the test ends.
func startReconciler(t *testing.T, env *testenv.Env, namespaces []string) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 s,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend"), Namespaces: namespaces}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// TestScopedControllerKeepsOthersCopiesOfAGoneSource: a controller
// managing only namespace a, seeing the copies of a source that is gone,
// deletes the copy made for an App in a and leaves alone the copy made for
// an App in namespace b (b's controller decides about it) and a copy that
// does not say whose it is.
func TestScopedControllerKeepsOthersCopiesOfAGoneSource(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	a := env.Namespace
	b := env.Namespace + "-b" // another controller's; it need not exist
	gone := env.Namespace + "-src/shared"
	// Copies are removed in the order of their namespaces: those the
	// controller must keep come first, so that once the last one is
	// deleted, a pass that wrongly deleted them is over.
	copies := []struct {
		ns, owner string
		keep      bool
	}{
		{env.Namespace + "-1", b + "/app", true},
		{env.Namespace + "-2", "", true},
		{env.Namespace + "-3", a + "/app", false},
	}
	for _, c := range copies {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}
		if _, err := env.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = env.Clientset.CoreV1().Namespaces().Delete(context.Background(), c.ns, metav1.DeleteOptions{})
		})
		ann := map[string]string{secret.AnnotationReplicaOf: gone}
		if c.owner != "" {
			ann[secret.AnnotationReplicaOwner] = c.owner
		}
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: c.ns, Labels: map[string]string{secret.LabelReplicate: secret.ReplicateCopy}, Annotations: ann},
			StringData: map[string]string{"token": "t"},
		}
		if _, err := env.Clientset.CoreV1().Secrets(c.ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	startReconciler(t, env, []string{a})

	exists := func(ns string) bool {
		_, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, "shared", metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	last := copies[len(copies)-1]
	testenv.Eventually(t, "the copy made for an App in "+a+" deleted", 30*time.Second, func() bool { return !exists(last.ns) })
	for _, c := range copies[:len(copies)-1] {
		if !exists(c.ns) {
			t.Errorf("the copy in %s (made for App %q) was deleted by a controller of namespace %s", c.ns, c.owner, a)
		}
	}
}
