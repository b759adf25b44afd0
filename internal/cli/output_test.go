package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClosest(t *testing.T) {
	for _, c := range []struct {
		name string
		from []string
		want string
	}{
		{"webb", []string{"api", "web", "worker"}, "web"},
		{"wbe", []string{"api", "web"}, "web"},
		{"ingres", []string{"ingress", "web"}, "ingress"},
		{"database", []string{"api", "web"}, ""},
		{"names", []string{"namespace", "name"}, "name"},
	} {
		if got := closest(c.name, c.from); got != c.want {
			t.Errorf("closest(%q, %v) = %q, want %q", c.name, c.from, got, c.want)
		}
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	code, _, stderr := run(t, "stauts")
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(stderr, "Did you mean this?") || !strings.Contains(stderr, "status") {
		t.Fatalf("no suggestion: %q", stderr)
	}
}

func TestUnknownFlagSuggests(t *testing.T) {
	code, _, stderr := run(t, "status", "--namespcae", "x")
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(stderr, "did you mean --namespace?") {
		t.Fatalf("no suggestion: %q", stderr)
	}
}

// A kubeconfig whose cluster does not answer gives one line saying so, not
// client-go's retries and stack of wrapped errors.
func TestUnreachableClusterIsOneLine(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: gone
  context: {cluster: gone, user: u, namespace: team}
current-context: gone
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"get", "apps"}, {"history", "web"}, {"sync", "web"}, {"diff", "web"}} {
		code, stdout, stderr := run(t, append(args, "--kubeconfig", kc)...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
		want := "tend: cannot reach the cluster at https://127.0.0.1:1: connection refused"
		if !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: stderr is not one line starting %q:\n%s", args, want, stderr)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q", args, stdout)
		}
	}
}

func TestTableAlignsColouredCells(t *testing.T) {
	tb := &table{header: []string{"APP", "HEALTH", "MESSAGE"}}
	tb.add(plain("web"), state("Healthy"), plain(""))
	tb.add(plain("database"), state("Degraded"), plain("pods\ncrash"))
	var plainOut, colourOut strings.Builder
	if err := tb.write(&plainOut, painter{}); err != nil {
		t.Fatal(err)
	}
	if err := tb.write(&colourOut, painter{on: true}); err != nil {
		t.Fatal(err)
	}
	want := "APP        HEALTH     MESSAGE\nweb        Healthy    \ndatabase   Degraded   pods crash\n"
	if got := plainOut.String(); got != want {
		t.Errorf("table:\n%q\nwant\n%q", got, want)
	}
	stripped := strings.NewReplacer(colorGreen, "", colorRed, "", colorReset, "").Replace(colourOut.String())
	if stripped != want {
		t.Errorf("coloured table misaligned:\n%q", stripped)
	}
	if !strings.Contains(colourOut.String(), colorRed+"Degraded"+colorReset) {
		t.Errorf("no colour: %q", colourOut.String())
	}
}
