package example_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// env is the platform test's environment (the cluster, the controller in
// this process, clients) with this example's checks.
type env struct {
	*platform.Env
	c   client.Client
	dyn dynamic.Interface
}

func setup(t *testing.T) *env {
	t.Helper()
	// The root App's finalizer prunes the AppSet; the Apps it generated
	// are deleted after it.
	pe := platform.Start(t, platform.Options{Apps: []string{"tend"}})
	return &env{Env: pe, c: pe.Client, dyn: pe.Dynamic}
}

// bootstrap does what `tend bootstrap --path PATH --age-key FILE` does:
// the Secret sops-age with the age key, then the Source "tend" and the
// root App, which decrypts with that key.
func (e *env) bootstrap(t *testing.T, url, path string, ageKey []byte) {
	t.Helper()
	e.Create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sops-age", Namespace: e.Namespace},
		Data:       map[string][]byte{"age.agekey": ageKey},
	})
	e.Bootstrap(t, url, path, map[string]any{"decryption": map[string]any{"secretRef": map[string]any{"name": "sops-age"}}})
}

// waitSynced waits until each App is Synced and Healthy at revision rev
// ("": any revision).
func (e *env) waitSynced(t *testing.T, rev string, names ...string) {
	t.Helper()
	for _, name := range names {
		e.WaitApp(t, name, "Synced and Healthy at "+shortRev(rev), func(a *tendv1.App) bool {
			return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" &&
				a.Status.ObservedGeneration == a.Generation && (rev == "" || a.Status.Revision == rev)
		})
	}
}

func readyCondition(a *tendv1.App) *metav1.Condition {
	for i, c := range a.Status.Conditions {
		if c.Type == tendv1.ConditionReady {
			return &a.Status.Conditions[i]
		}
	}
	return nil
}

func keyOf(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
