package platform

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// minSecretLen is the shortest Secret value searched for: shorter ones
// ("true", "admin", a port) stand in ordinary text by chance.
const minSecretLen = 8

// searchSecrets fails t when a value of a Secret in the platform's
// namespace (those git declares, SOPS-decrypted and generated ones, and
// the keys and credentials the test created) shows in the controller's
// log, an Event of the namespace, or the status of a tend object: where
// tend writes what people and tools read. Every example platform is
// searched at its end this way, besides TestSecretsDoNotLeak's own
// platform.
func (e *Env) searchSecrets(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	secrets, err := e.Clientset.CoreV1().Secrets(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("leak search: list Secrets: %v", err)
		return
	}
	values := map[string]string{} // value -> "Secret name key"
	for _, s := range secrets.Items {
		if s.Type == corev1.SecretTypeServiceAccountToken || s.Type == "tend.dev/inventory" {
			continue
		}
		for k, v := range s.Data {
			if len(v) >= minSecretLen && strings.TrimSpace(string(v)) != "" {
				values[string(v)] = "Secret " + s.Name + " key " + k
			}
		}
	}
	places := map[string]string{"the controller's log": e.Log.String()}
	events, err := e.Clientset.CoreV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("leak search: list Events: %v", err)
		return
	}
	for _, ev := range events.Items {
		places["Events"] += ev.Reason + ": " + ev.Message + "\n"
	}
	for _, kind := range []string{"App", "Source", "Notifier", "Cluster", "AppSet", "Project"} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(tendv1.GroupVersion.WithKind(kind + "List"))
		if err := e.Client.List(ctx, list, client.InNamespace(e.Namespace)); err != nil {
			continue // a kind this test's CRDs lack
		}
		for _, o := range list.Items {
			b, _ := yaml.Marshal(o.Object["status"])
			places[kind+" "+o.GetName()+" status"] = string(b)
		}
	}
	var found []string
	for value, from := range values {
		for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))} {
			for where, text := range places {
				if i := strings.Index(text, form); i >= 0 {
					found = append(found, fmt.Sprintf("the value of %s in %s: …%s…", from, where, text[max(0, i-120):min(len(text), i+len(form)+40)]))
				}
			}
		}
	}
	sort.Strings(found)
	for _, f := range found {
		t.Errorf("secret leaked: %s", f)
	}
	if len(found) == 0 {
		t.Logf("leak search: %d Secret values, none in the log, Events or status", len(values))
	}
}
