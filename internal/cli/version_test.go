package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Build: BuildInfo{Version: "v1.2.3", Commit: "abc1234"}}
	code = m.Run(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out, "tend v1.2.3 (commit abc1234,") {
		t.Fatalf("version printed %q", out)
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := run(t, "version", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got["version"] != "v1.2.3" || got["commit"] != "abc1234" {
		t.Fatalf("got %v", got)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"version", "-o", "xml"}, {"version", "--bogus"}, {"nosuchcommand"}} {
		code, _, errOut := run(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
		if !strings.Contains(errOut, "tend:") {
			t.Errorf("%v: no error message, stderr %q", args, errOut)
		}
	}
}
