package testenv_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// namespaces records what the tests below were given; tests in a file run in
// source order, so TestNamespacesAreDeleted sees both.
var namespaces []string

func TestFirstGetsANamespace(t *testing.T)  { useNamespace(t) }
func TestSecondGetsANamespace(t *testing.T) { useNamespace(t) }

func useNamespace(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	ns, err := env.Clientset.CoreV1().Namespaces().Get(ctx, env.Namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace %s not created: %v", env.Namespace, err)
	}
	if ns.Labels[testenv.TestLabel] != "true" {
		t.Errorf("namespace %s lacks the %s label", ns.Name, testenv.TestLabel)
	}
	// The namespace is usable: a ConfigMap can be written and read back.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: env.Namespace}, Data: map[string]string{"k": "v"}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	got, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Get(ctx, "probe", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("read back ConfigMap: %v %v", got, err)
	}
	namespaces = append(namespaces, env.Namespace)
}

func TestNamespacesAreDeleted(t *testing.T) {
	env := testenv.New(t)
	if len(namespaces) != 2 {
		t.Fatalf("earlier tests recorded %d namespaces, want 2", len(namespaces))
	}
	if namespaces[0] == namespaces[1] || namespaces[0] == env.Namespace {
		t.Fatalf("tests share a namespace: %v and %s", namespaces, env.Namespace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ns := range namespaces {
		for {
			_, err := env.Clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("namespace %s still exists after its test ended (last error %v)", ns, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}
