package testenv

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// minSecretLen is the shortest Secret value searched for: shorter ones
// ("true", "admin", a port) stand in ordinary text by chance.
const minSecretLen = 8

// tendResources are the tend kinds whose status SearchSecrets reads.
var tendResources = []string{"apps", "sources", "notifiers", "clusters", "appsets", "projects", "warehouses", "stages"}

// SearchSecrets fails t when a value of a Secret in e's namespace (those
// git declares, SOPS-decrypted and generated ones, and the keys and
// credentials the test created; 8 bytes or more), raw or in base64, shows
// in an Event of the namespace, the status of a tend object there, or one
// of more (name -> text, such as the controller's log): where tend writes
// what people and tools read. The example platforms' tests and the
// controller's end with it.
func (e *Env) SearchSecrets(t testing.TB, more map[string]string) {
	t.Helper()
	ctx := context.Background()
	secrets, err := e.Clientset.CoreV1().Secrets(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("leak search: list Secrets: %v", err)
		return
	}
	values := map[string]string{} // "value of Secret name key k" -> value
	for _, s := range secrets.Items {
		if s.Type == corev1.SecretTypeServiceAccountToken || s.Type == "tend.dev/inventory" {
			continue
		}
		for k, v := range s.Data {
			if len(v) >= minSecretLen && strings.TrimSpace(string(v)) != "" {
				values["value of Secret "+s.Name+" key "+k] = string(v)
			}
		}
	}
	places := map[string]string{}
	for k, v := range more {
		places[k] = v
	}
	events, err := e.Clientset.CoreV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("leak search: list Events: %v", err)
		return
	}
	for _, ev := range events.Items {
		places["Events"] += ev.Reason + ": " + ev.Message + "\n"
	}
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		t.Errorf("leak search: %v", err)
		return
	}
	for _, res := range tendResources {
		list, err := dyn.Resource(schema.GroupVersionResource{Group: "tend.dev", Version: "v1alpha1", Resource: res}).Namespace(e.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue // a kind this cluster lacks
		}
		for _, o := range list.Items {
			b, _ := yaml.Marshal(o.Object["status"])
			places[o.GetKind()+" "+o.GetName()+" status"] = string(b)
		}
	}
	for _, f := range FindLeaks(values, places) {
		t.Errorf("secret leaked: %s", f)
	}
}

// FindLeaks looks for each secret (name -> value), raw and in base64, in
// each place (name -> text), and returns what it found, sorted, each with
// the text around it.
func FindLeaks(secrets, places map[string]string) []string {
	var found []string
	for name, value := range secrets {
		for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))} {
			for where, text := range places {
				if i := strings.Index(text, form); i >= 0 {
					found = append(found, fmt.Sprintf("the %s leaked into %s: …%s…", name, where, text[max(0, i-200):min(len(text), i+len(form)+80)]))
				}
			}
		}
	}
	sort.Strings(found)
	return found
}
