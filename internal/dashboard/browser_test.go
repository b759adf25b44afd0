package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// browserScript runs the Playwright script e2e/<script> in Debian's
// headless chromium with cfg, plus "chromium" and "screenshots"
// (docs/images), in TEND_E2E. The script prints "STEP <name>" when the
// test must check or change something: step(name) runs, then the script
// gets "GO" on stdin. The test fails when the script fails or ends
// without printing "DONE". Playwright comes from the committed lockfile
// (npm ci) when it is not installed yet.
func browserScript(t *testing.T, script string, cfg map[string]any, step func(name string)) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a browser against the local control plane")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the browser test needs Debian's chromium: apt-get install chromium (.ci/run installs it)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("the browser test needs Node.js (node) for Playwright")
	}
	e2e, err := filepath.Abs("e2e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = e2e
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", e2e, err, out)
		}
	}
	shots, err := filepath.Abs("../../docs/images")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg["chromium"], cfg["screenshots"] = chromium, shots
	env, _ := json.Marshal(cfg)

	ctx, stop := context.WithTimeout(context.Background(), 5*time.Minute)
	defer stop()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = e2e
	cmd.Env = append(os.Environ(), "TEND_E2E="+string(env))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	finished := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		name, isStep := strings.CutPrefix(line, "STEP ")
		switch {
		case line == "DONE":
			finished = true
		case isStep:
			step(name)
			if _, err := fmt.Fprintln(stdin, "GO"); err != nil {
				t.Fatal(err)
			}
		default:
			t.Logf("browser: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil || !finished {
		t.Fatalf("browser test %s: %v\n%s", script, err, strings.TrimSpace(stderr.String()))
	}
}
