package cli

import (
	"os"
	"strings"
	"testing"
)

// docs/cli.md is generated from the commands; this fails when a command
// changed and the file was not regenerated.
func TestCLIDocsUpToDate(t *testing.T) {
	code, out, stderr := run(t, "docs", "cli")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"## tend sync", "## tend completion", "### Flags", "--kubeconfig string", "## Exit codes", "tend diff web --revision"} {
		if !strings.Contains(out, want) {
			t.Errorf("generated docs lack %q", want)
		}
	}
	if strings.Contains(out, "## tend docs") || strings.Contains(out, "__complete") {
		t.Errorf("generated docs show hidden commands")
	}
	have, err := os.ReadFile("../../docs/cli.md")
	if err != nil || string(have) != out {
		t.Fatalf("docs/cli.md is not what the commands generate (%v): run\n\tgo run ./cmd/tend docs cli > docs/cli.md", err)
	}
}
