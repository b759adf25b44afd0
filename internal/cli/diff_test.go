package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dbSecretYAML = `apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: hunter2}
`

func TestDiffPathBeforeAndAfterSync(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml":      configMapYAML("a", "1"),
		"secret.yaml": dbSecretYAML,
		"web.yaml":    webDeploymentYAML,
	})

	code, out, stderr := cl.tend(t, "diff", dir, "--app", "site")
	if code != ExitDiff {
		t.Fatalf("before the sync: exit %d, want %d: %s\n%s", code, ExitDiff, stderr, out)
	}
	for _, want := range []string{"+++ desired v1 ConfigMap " + ns + "/a", "+  value: \"1\"", "+++ desired v1 Secret " + ns + "/db", "3 to create"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "aHVudGVyMg") {
		t.Fatalf("diff shows a Secret value:\n%s", out)
	}
	if stderr != "" {
		t.Errorf("differences are not an error: stderr %q", stderr)
	}

	if code, out, stderr := cl.tend(t, "sync", dir, "--app", "site"); code != ExitOK {
		t.Fatalf("sync: exit %d: %s\n%s", code, stderr, out)
	}
	code, out, stderr = cl.tend(t, "diff", dir, "--app", "site")
	if code != ExitOK {
		t.Fatalf("after the sync: exit %d, want 0: %s\n%s", code, stderr, out)
	}
	if strings.TrimSpace(out) != "3 unchanged" {
		t.Errorf("after the sync:\n%s", out)
	}

	// a changes, the Secret's value changes, then the Secret leaves git.
	writeFiles(t, dir, map[string]string{"a.yaml": configMapYAML("a", "2"), "secret.yaml": strings.Replace(dbSecretYAML, "hunter2", "swordfish", 1)})
	code, out, _ = cl.tend(t, "diff", dir, "--app", "site")
	if code != ExitDiff {
		t.Fatalf("after a change: exit %d\n%s", code, out)
	}
	for _, want := range []string{"-  value: \"1\"", "+  value: \"2\"", "(changed secret value)", "2 to update, 1 unchanged"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "swordfish") || strings.Contains(out, "hunter2") {
		t.Fatalf("diff shows a Secret value:\n%s", out)
	}
	if err := os.Remove(filepath.Join(dir, "secret.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cl.tend(t, "diff", dir, "--app", "site")
	if code != ExitDiff || !strings.Contains(out, "note: Secret "+ns+"/db left git and stays: pruning is off") || !strings.Contains(out, "1 to update, 1 unchanged") {
		t.Errorf("without --prune: exit %d\n%s", code, out)
	}
	code, out, _ = cl.tend(t, "diff", dir, "--app", "site", "--prune")
	if code != ExitDiff || !strings.Contains(out, "--- live v1 Secret "+ns+"/db") || !strings.Contains(out, "1 to update, 1 to delete, 1 unchanged") {
		t.Errorf("with --prune: exit %d\n%s", code, out)
	}
	// Without --app there is no inventory, so nothing to prune.
	code, out, _ = cl.tend(t, "diff", dir, "--prune")
	if code != ExitDiff || strings.Contains(out, "to delete") {
		t.Errorf("without --app: exit %d\n%s", code, out)
	}
}

func TestDiffInvalidObjectIsAnError(t *testing.T) {
	cl := newCluster(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"web.yaml": strings.Replace(webDeploymentYAML, "replicas: 1", "replicas: many", 1)})
	code, _, stderr := cl.tend(t, "diff", dir)
	if code != ExitUsage || !strings.Contains(stderr, "apps/Deployment "+cl.Namespace+"/web: a sync would fail") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
