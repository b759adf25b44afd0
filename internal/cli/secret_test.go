package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

const generatedSecretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  annotations: {tend.dev/generate: "password, api-key=24, user"}
stringData: {user: admin}
`

func (cl *testCluster) secretValues(t *testing.T, name string) map[string]string {
	t.Helper()
	s, err := cl.Clientset.CoreV1().Secrets(cl.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// TestSecretRotate rotates generated values end to end: the CLI asks, the
// controller's sync rotates exactly the keys asked for, and nothing else
// (diff, other syncs) sees a difference.
func TestSecretRotate(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	cl.startController(t)
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("db", map[string]string{
		"apps/db/secret.yaml": generatedSecretYAML,
		"apps/db/cm.yaml":     configMapYAML("settings", "1"),
	})
	cl.createSource(t, "repo", repo.URL, nil)
	app := &tendv1.App{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: tendv1.AppSpec{
			SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "apps/db",
			Destination: tendv1.Destination{Namespace: ns},
			Sync:        tendv1.SyncPolicy{Prune: true, SelfHeal: true},
		},
	}
	if err := cl.c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	synced := func(what string) *tendv1.App {
		t.Helper()
		var a tendv1.App
		eventually(t, what, 90*time.Second, func() bool {
			err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "db"}, &a)
			return err == nil && a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && len(a.Status.OutOfSync) == 0
		})
		return &a
	}
	synced("the App Synced")
	first := cl.secretValues(t, "db")
	if len(first["password"]) != 32 || len(first["api-key"]) != 24 || first["user"] != "admin" {
		t.Fatalf("generated values: password %d characters, api-key %d, user from git %v", len(first["password"]), len(first["api-key"]), first["user"] == "admin")
	}
	noValue := func(step, text string, values map[string]string) {
		t.Helper()
		for _, k := range []string{"password", "api-key"} {
			if strings.Contains(text, values[k]) {
				t.Errorf("%s: output contains the value of %s:\n%s", step, k, text)
			}
		}
	}
	code, out, stderr := cl.tend(t, "diff", "db")
	if code != ExitOK || strings.TrimSpace(out) != "2 unchanged" {
		t.Fatalf("diff of a synced App with generated values: exit %d: %s\n%s", code, stderr, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "rotate", "db", "--key", "token"}, `tend does not generate key "token"; it generates password, api-key, user`},
		{[]string{"secret", "rotate", "missing"}, "no Secret " + ns + "/missing"},
		{[]string{"secret", "rotate", "settings"}, "no Secret " + ns + "/settings"},
		{[]string{"secret", "rotate", "tend-inventory-db"}, "has no tend.dev/generate annotation"},
		{[]string{"secret", "rotate", "a/b/c"}, "want NAME or NAMESPACE/NAME"},
	} {
		code, _, stderr := cl.tend(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q: %s", tc.args, code, ExitUsage, tc.want, stderr)
		}
	}

	code, out, stderr = cl.tend(t, "secret", "rotate", "db", "--key", "password", "--timeout", "2m")
	if code != ExitOK || !strings.Contains(out, "rotated key password of Secret "+ns+"/db") {
		t.Fatalf("rotate --key password: exit %d: %s\n%s", code, stderr, out)
	}
	noValue("rotate", out+stderr, first)
	if strings.Contains(stderr, "warning") {
		t.Errorf("rotating a generated key warned: %s", stderr)
	}
	second := cl.secretValues(t, "db")
	noValue("rotate", out+stderr, second)
	if second["password"] == first["password"] || len(second["password"]) != 32 {
		t.Fatal("password not rotated")
	}
	if second["api-key"] != first["api-key"] || second["user"] != "admin" {
		t.Fatal("rotating password changed other keys")
	}
	a := synced("the App Synced after the rotation")
	if h := a.Status.History[0]; h.Result != "Succeeded" || h.Changed != 1 {
		t.Errorf("the rotation's sync: %+v", h)
	}
	noValue("status", strings.Join([]string{a.Status.History[0].Message}, " "), second)

	// Later syncs (a new commit) keep the rotated values, and diff shows
	// nothing.
	rev = repo.Commit("settings 2", map[string]string{"apps/db/cm.yaml": configMapYAML("settings", "2")})
	synced("the App Synced at the new commit")
	if got := cl.secretValues(t, "db"); got["password"] != second["password"] || got["api-key"] != second["api-key"] {
		t.Fatal("a sync after the rotation changed values")
	}
	code, out, stderr = cl.tend(t, "diff", "db")
	if code != ExitOK || strings.TrimSpace(out) != "2 unchanged" {
		t.Fatalf("diff after the rotation: exit %d: %s\n%s", code, stderr, out)
	}

	// Every generated key, NAMESPACE/NAME form.
	code, out, stderr = cl.tend(t, "secret", "rotate", ns+"/db", "--timeout", "2m")
	if code != ExitOK || !strings.Contains(out, "rotated every generated key of Secret "+ns+"/db") {
		t.Fatalf("rotate: exit %d: %s\n%s", code, stderr, out)
	}
	third := cl.secretValues(t, "db")
	if third["password"] == second["password"] || third["api-key"] == second["api-key"] || third["user"] != "admin" {
		t.Fatal("rotating every key did not rotate both generated keys, or changed git's user")
	}
	if !strings.Contains(stderr, "warning: not rotated, git sets their values (tend rotates only the values it generates): user") {
		t.Errorf("rotating every key does not say git's user was kept: %s", stderr)
	}

	// Asking for git's key only: nothing changes, and the command says why.
	code, _, stderr = cl.tend(t, "secret", "rotate", "db", "--key", "user", "--timeout", "2m")
	if code != ExitOK || !strings.Contains(stderr, "not rotated, git sets their values (tend rotates only the values it generates): user") {
		t.Fatalf("rotate --key user: exit %d: %s", code, stderr)
	}
	if got := cl.secretValues(t, "db"); got["password"] != third["password"] || got["user"] != "admin" {
		t.Fatal("rotating git's key changed values")
	}
}
