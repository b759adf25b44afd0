package git

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tend-gitops/tend/internal/testenv"
)

// testEnv is the environment of the git commands tests use to build
// repositories: no user config, a fixed identity.
func testEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
	}
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = testEnv(t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newTestRepo serves a repository over smart HTTP on loopback whose main
// holds one commit, "initial commit", with apps/a/cm.yaml, apps/b/cm.yaml
// and README.md.
func newTestRepo(t *testing.T, opts ...testenv.GitOption) *testenv.GitRepo {
	t.Helper()
	return testenv.NewGitRepo(t, map[string]string{
		"apps/a/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: a\n",
		"apps/b/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: b\n",
		"README.md":      "# platform\n",
	}, opts...)
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
