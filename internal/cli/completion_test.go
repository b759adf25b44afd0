package cli

import (
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_tend",
		"zsh":  "#compdef tend",
		"fish": "complete -c tend",
	} {
		code, out, stderr := run(t, "completion", shell)
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", shell, code, stderr)
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s script lacks %q", shell, want)
		}
	}
	if code, _, _ := run(t, "completion", "powershell"); code != ExitUsage {
		t.Errorf("powershell: exit %d, want %d", code, ExitUsage)
	}
}

// Completion offers commands and the resources of tend get.
func TestCompletionOfCommandsAndArguments(t *testing.T) {
	code, out, _ := run(t, "__complete", "sy")
	if code != ExitOK || !strings.Contains(out, "sync") {
		t.Errorf("__complete sy: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "__complete", "get", "")
	if code != ExitOK || !strings.Contains(out, "apps") || !strings.Contains(out, "sources") {
		t.Errorf("__complete get: exit %d\n%s", code, out)
	}
}

func TestCompletionOfAppNames(t *testing.T) {
	cl := newCluster(t)
	cl.createApp(t, "web", healthyStatus())
	cl.createApp(t, "worker", healthyStatus())
	code, out, _ := run(t, "__complete", "history", "--kubeconfig", cl.Kubeconfig, "-n", cl.Namespace, "w")
	if code != ExitOK || !strings.Contains(out, "web\n") || !strings.Contains(out, "worker\n") {
		t.Errorf("__complete history: exit %d\n%s", code, out)
	}
}
