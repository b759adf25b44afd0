package render

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestKustomizeRemoteGitBaseAllowed builds a kustomization whose base is a
// git repository (on local disk, through file://) when the App allows it.
func TestKustomizeRemoteGitBaseAllowed(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git binary")
	}
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"deploy/kustomization.yaml": "resources: [cm.yaml]\n",
		"deploy/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remote}\n",
	})
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "."},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/kustomization.yaml": "resources:\n- file://" + filepath.ToSlash(repo) + "//deploy?ref=main\n",
	})
	res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", AllowRemoteBases: true})
	findObj(t, res.Objects(), "ConfigMap", "remote")
}
