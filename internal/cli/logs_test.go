package cli

import (
	"strings"
	"testing"
)

func TestLogsFilterMentionsTheApp(t *testing.T) {
	keep := mentions("web")
	for line, want := range map[string]bool{
		`level=INFO msg="sync started" app=tend-system/web revision=abc`:            true,
		`level=ERROR msg="Reconciler error" controller=app name=web namespace=x`:    true,
		`level=INFO msg="sync started" app=tend-system/web-migrate`:                 false,
		`level=INFO msg="applied App" app=webhook`:                                  false,
		`level=INFO msg="fetched" source=tend-system/platform revision=abc`:         false,
		`level=WARN msg="App deleted but its cluster is unreachable" app=other/web`: true,
	} {
		if got := keep(line); got != want {
			t.Errorf("mentions(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestLogsWithoutControllerPods(t *testing.T) {
	cl := newCluster(t)
	code, _, stderr := cl.tend(t, "logs", "--controller-namespace", cl.Namespace)
	if code != ExitDiff {
		t.Fatalf("exit %d, want %d: %s", code, ExitDiff, stderr)
	}
	for _, want := range []string{"the tend controller is not running in the cluster", "no pods labelled app.kubernetes.io/name=tend in namespace " + cl.Namespace, "tend demo"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, stderr)
		}
	}
}
