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
var tendResources = []string{"apps", "sources", "notifiers", "clusters", "appsets", "projects"}

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
}
