package cli

import (
	"context"
	"strings"
	"testing"
)

// A released binary installs its own version (label and image tag); a
// build between releases installs latest.
func TestInstallUsesTheReleaseVersion(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"v1.2.3", "v1.2.3"},
		{"v1.3.0-rc.1", "v1.3.0-rc.1"},
		{"v1.2.3-4-gabcdef0", "latest"},
		{"v1.2.3-dirty", "latest"},
		{"dev", "latest"},
	} {
		var out, errb strings.Builder
		m := &Main{Stdout: &out, Stderr: &errb, Build: BuildInfo{Version: tc.version, Commit: "abc"}}
		if code := m.Run(context.Background(), []string{"install", "--export"}); code != ExitOK {
			t.Fatalf("%s: install --export: exit %d: %s", tc.version, code, errb.String())
		}
		for _, want := range []string{"image: ghcr.io/tend-gitops/tend:" + tc.want + "\n", "app.kubernetes.io/version: " + tc.want + "\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("tend %s install --export lacks %q", tc.version, want)
			}
		}
	}
}

// --image wins over the release's own image.
func TestInstallImageFlag(t *testing.T) {
	var out, errb strings.Builder
	m := &Main{Stdout: &out, Stderr: &errb, Build: BuildInfo{Version: "v1.2.3", Commit: "abc"}}
	if code := m.Run(context.Background(), []string{"install", "--export", "--image", "registry.example.com/tend:mine"}); code != ExitOK {
		t.Fatalf("install --export --image: exit %d: %s", code, errb.String())
	}
	if s := out.String(); !strings.Contains(s, "image: registry.example.com/tend:mine\n") || !strings.Contains(s, "app.kubernetes.io/version: v1.2.3\n") {
		t.Errorf("install --export --image: want the given image and the release's version label")
	}
}
