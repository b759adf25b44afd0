package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply/secret"
	"github.com/tend-gitops/tend/internal/replicate"
)

// replicatedSecretYAML is a Secret with a git value and a generated one,
// replicated to the namespaces labelled selector.
func replicatedSecretYAML(token, team, selector string) string {
	ann := ""
	if selector != "" {
		ann = fmt.Sprintf(", tend.dev/replicate-to: %q", selector)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: shared
  labels: {team: %s}
  annotations: {tend.dev/generate: "password"%s}
stringData: {token: %s}
`, team, ann, token)
}

// namespace creates a namespace with labels for the test, deleted after it.
func (e *ctlEnv) namespace(t *testing.T, suffix string, lbls map[string]string) string {
	t.Helper()
	name := e.Namespace + "-" + suffix
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	if _, err := e.Clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func (e *ctlEnv) labelNamespace(t *testing.T, name, key string, value *string) {
	t.Helper()
	v := "null"
	if value != nil {
		v = fmt.Sprintf("%q", *value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, key, v)
	if _, err := e.Clientset.CoreV1().Namespaces().Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReplicateSecret(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	secrets := func(ns string) func() (*corev1.Secret, error) {
		return func() (*corev1.Secret, error) {
			return e.Clientset.CoreV1().Secrets(ns).Get(ctx, "shared", metav1.GetOptions{})
		}
	}
	source := secrets(e.Namespace)
	// The selector's label is unique to the test: other tests' namespaces
	// never match.
	key, yes := "replicate-test", e.Namespace
	selector := key + "=" + yes
	nsA := e.namespace(t, "a", map[string]string{key: yes})
	nsB := e.namespace(t, "b", map[string]string{key: yes})
	nsOther := e.namespace(t, "o", map[string]string{key: "another-value"})
	// The namespace with a Secret of its own comes to match later: until
	// then no copy is refused, and nothing but a change (a namespace's, a
	// Secret's) makes the source replicate again.
	nsForeign := e.namespace(t, "f", map[string]string{key: "not-yet"})
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: nsForeign}, StringData: map[string]string{"mine": "not tend's"}}
	if _, err := e.Clientset.CoreV1().Secrets(nsForeign).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	repo := newCtlRepo(t)
	rev := repo.commit("replicated", map[string]string{"app/secret.yaml": replicatedSecretYAML("t1", "web", selector)})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	synced := func(what string) {
		t.Helper()
		e.waitApp(t, "app", what, 60*time.Second, func(a *tendv1.App) bool {
			return a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced && len(a.Status.OutOfSync) == 0
		})
	}
	synced("Synced")

	// copyEquals reports why the copy in ns differs from the source, or "".
	copyEquals := func(ns string) string {
		src, err := source()
		if err != nil {
			return err.Error()
		}
		c, err := secrets(ns)()
		if err != nil {
			return err.Error()
		}
		switch {
		case string(c.Data["token"]) != string(src.Data["token"]) || string(c.Data["password"]) != string(src.Data["password"]) || len(c.Data) != len(src.Data):
			return "data differs"
		case c.Labels["team"] != src.Labels["team"]:
			return "label team is " + c.Labels["team"]
		case c.Labels[secret.LabelReplicate] != secret.ReplicateCopy || c.Annotations[secret.AnnotationReplicaOf] != e.Namespace+"/shared":
			return fmt.Sprintf("not marked as a copy: %v %v", c.Labels, c.Annotations)
		case c.Annotations[secret.AnnotationReplicaOwner] != e.Namespace+"/app":
			return fmt.Sprintf("the copy does not name the App of its source: %v", c.Annotations)
		case c.Annotations["tend.dev/owner"] != "" || c.Annotations[secret.AnnotationGenerate] != "":
			return "the copy carries the source's annotations"
		case c.Type != src.Type:
			return "type differs"
		}
		return ""
	}
	waitCopies := func(what string, want ...string) {
		t.Helper()
		var why string
		eventually(t, what, 20*time.Second, func() bool {
			for _, ns := range want {
				if why = copyEquals(ns); why != "" {
					why = ns + ": " + why
					return false
				}
			}
			return true
		})
	}
	gone := func(ns string) bool {
		_, err := secrets(ns)()
		return apierrors.IsNotFound(err)
	}
	waitCopies("copies in the matching namespaces", nsA, nsB)
	src, _ := source()
	if len(src.Data["password"]) != 32 || src.Labels[secret.LabelReplicate] != secret.ReplicateSource {
		t.Fatalf("source: password %d characters, labels %v", len(src.Data["password"]), src.Labels)
	}
	// The event of a pass comes after its copies: once events have said
	// both copies were made, a pass that also copied into nsOther is over.
	eventually(t, "events saying the copies were made", 20*time.Second, func() bool {
		notes := replicatedNotes(t, e, "copied into ")
		return strings.Contains(notes, nsA) && strings.Contains(notes, nsB)
	})
	if !gone(nsOther) {
		t.Error("copied into a namespace the selector does not match")
	}
	if notes := replicatedNotes(t, e, "copied into "); strings.Contains(notes, nsOther) || strings.Contains(notes, nsForeign) {
		t.Errorf("copies into namespaces the selector does not match: %s", notes)
	}

	// A namespace stops matching: its copy goes (the namespace's change is
	// all that can make the source replicate).
	e.labelNamespace(t, nsB, key, nil)
	eventually(t, "the copy in "+nsB+" removed", time.Minute, func() bool { return gone(nsB) })

	// A new matching namespace gets a copy, from its creation alone.
	nsC := e.namespace(t, "c", map[string]string{key: yes})
	waitCopies("a copy in the new namespace", nsC)

	// The namespace with a foreign Secret comes to match: that Secret is
	// left alone, and events say why.
	e.labelNamespace(t, nsForeign, key, &yes)
	eventually(t, "an event about the refused copy", 20*time.Second, func() bool {
		evs, err := e.Clientset.EventsV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		var onSecret, onApp bool
		for _, ev := range evs.Items {
			if ev.Reason == replicate.ReasonReplicationRefused && strings.Contains(ev.Note, nsForeign+"/shared exists and is not a copy") {
				onSecret = onSecret || ev.Regarding.Kind == "Secret"
				onApp = onApp || ev.Regarding.Kind == "App"
			}
		}
		return onSecret && onApp
	})
	if f, err := secrets(nsForeign)(); err != nil || string(f.Data["mine"]) != "not tend's" || len(f.Data) != 1 || f.Labels[secret.LabelReplicate] != "" {
		t.Fatalf("the foreign Secret was changed: %v %v", f, err)
	}

	// The source changes in git: the copies follow, and the generated
	// value stays.
	password := string(src.Data["password"])
	rev = repo.commit("token t2", map[string]string{"app/secret.yaml": replicatedSecretYAML("t2", "api", selector)})
	synced("Synced at t2")
	waitCopies("copies updated", nsA, nsC)
	if c, _ := secrets(nsA)(); string(c.Data["token"]) != "t2" || string(c.Data["password"]) != password || c.Labels["team"] != "api" {
		t.Fatalf("copy after the change: token %q, password kept %v, team %q", c.Data["token"], string(c.Data["password"]) == password, c.Labels["team"])
	}

	// Someone edits a copy: it is put back.
	if _, err := e.Clientset.CoreV1().Secrets(nsA).Patch(ctx, "shared", types.MergePatchType, []byte(`{"data":{"token":"ZWRpdGVk"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCopies("the edited copy restored", nsA)

	// The App still sees nothing to do.
	synced("Synced with copies around")

	// The annotation leaves git: every copy goes, the foreign Secret stays.
	rev = repo.commit("not replicated", map[string]string{"app/secret.yaml": replicatedSecretYAML("t2", "api", "")})
	synced("Synced without replication")
	eventually(t, "copies removed", 20*time.Second, func() bool { return gone(nsA) && gone(nsC) })
	if _, err := secrets(nsForeign)(); err != nil {
		t.Fatalf("the foreign Secret: %v", err)
	}
	if src, _ := source(); src.Labels[secret.LabelReplicate] != "" || string(src.Data["password"]) != password {
		t.Errorf("source without replication: labels %v, password kept %v", src.Labels, string(src.Data["password"]) == password)
	}

	// Back on, then the source leaves git (pruned): the copies go with it.
	rev = repo.commit("replicated again", map[string]string{"app/secret.yaml": replicatedSecretYAML("t3", "api", selector)})
	synced("Synced, replicated again")
	waitCopies("copies back", nsA, nsC)
	rev = repo.commit("source removed", map[string]string{"app/secret.yaml": "", "app/cm.yaml": configMapYAML("keep", "x")})
	synced("Synced without the source")
	eventually(t, "copies removed with their source", 20*time.Second, func() bool { return gone(e.Namespace) && gone(nsA) && gone(nsC) })
}

// replicatedNotes joins the notes of the namespace's Replicated events
// that start with prefix.
func replicatedNotes(t *testing.T, e *ctlEnv, prefix string) string {
	t.Helper()
	evs, err := e.Clientset.EventsV1().Events(e.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, ev := range evs.Items {
		if ev.Reason == replicate.ReasonReplicated && strings.HasPrefix(ev.Note, prefix) {
			notes = append(notes, ev.Note)
		}
	}
	return strings.Join(notes, "; ")
}
