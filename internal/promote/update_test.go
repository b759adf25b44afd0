package promote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var web = tendv1.FreightImage{Repository: "registry.example.com/team/web", Tag: "1.10", Digest: "sha256:" + strings.Repeat("ab", 32)}

// The entry for the image gets the new tag (quoted: 1.10 is not a
// number) and digest; comments and other entries stay; a second run
// changes nothing; an image without an entry gets one.
func TestSetKustomizeImage(t *testing.T) {
	dir := writeFiles(t, map[string]string{"envs/dev/kustomization.yaml": `# dev overlay
resources: [../../base]
images:
- name: registry.example.com/team/web # the web image
  newTag: "1.0.0"
- name: nginx
  newTag: "1.27"
`})
	changed, err := SetKustomizeImage(dir, "envs/dev", web, true)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	got := read(t, dir, "envs/dev/kustomization.yaml")
	for _, want := range []string{"# dev overlay", "# the web image", `newTag: "1.10"`, "digest: sha256:abab", "- name: nginx\n    newTag: \"1.27\""} {
		if !strings.Contains(got, want) {
			t.Errorf("kustomization lacks %q:\n%s", want, got)
		}
	}
	if changed, err := SetKustomizeImage(dir, "envs/dev", web, true); err != nil || changed {
		t.Errorf("second run: changed %v, %v", changed, err)
	}
	if changed, _ := SetKustomizeImage(dir, "envs/dev", web, false); !changed || strings.Contains(read(t, dir, "envs/dev/kustomization.yaml"), "digest:") {
		t.Errorf("without digest, the digest stays:\n%s", read(t, dir, "envs/dev/kustomization.yaml"))
	}
	worker := tendv1.FreightImage{Repository: "registry.example.com/team/worker", Tag: "2.0.0"}
	if changed, err := SetKustomizeImage(dir, "envs/dev", worker, false); err != nil || !changed || !strings.Contains(read(t, dir, "envs/dev/kustomization.yaml"), "- name: registry.example.com/team/worker\n    newTag: 2.0.0") {
		t.Errorf("new entry: %v, %v:\n%s", changed, err, read(t, dir, "envs/dev/kustomization.yaml"))
	}
	if _, err := SetKustomizeImage(dir, "envs/prod", web, false); err == nil || !strings.Contains(err.Error(), "envs/prod") {
		t.Errorf("no kustomization: %v", err)
	}
	if _, err := SetKustomizeImage(dir, "../x", web, false); err == nil {
		t.Error("a path out of the repository was accepted")
	}
}

// A Helm values key, nested maps created on the way, comments kept.
func TestSetValue(t *testing.T) {
	dir := writeFiles(t, map[string]string{"envs/dev/values.yaml": "# values for dev\nreplicas: 2\nimage:\n  repository: registry.example.com/team/web\n  tag: 1.0.0 # set by tend\n"})
	if changed, err := SetValue(dir, "envs/dev/values.yaml", "image.tag", "1.10"); err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if changed, err := SetValue(dir, "envs/dev/values.yaml", "sidecar.image.tag", "3.0.0"); err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	got := read(t, dir, "envs/dev/values.yaml")
	for _, want := range []string{"# values for dev", `tag: "1.10" # set by tend`, "sidecar:\n  image:\n    tag: 3.0.0", "replicas: 2"} {
		if !strings.Contains(got, want) {
			t.Errorf("values lack %q:\n%s", want, got)
		}
	}
	if _, err := SetValue(dir, "envs/dev/values.yaml", "replicas.x", "1"); err == nil || !strings.Contains(err.Error(), "replicas is not a map") {
		t.Errorf("a key through a scalar: %v", err)
	}
	if _, err := SetValue(dir, "envs/dev/missing.yaml", "a", "1"); err == nil {
		t.Error("a missing file was accepted")
	}
}

// Flux's image policy markers: the whole reference, :tag, :name and
// :digest; quotes kept; list items; other policies left alone.
func TestSetMarkers(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"apps/web/deploy.yaml": `spec:
  containers:
  - name: web
    image: registry.example.com/team/web:1.0.0 # {"$imagepolicy": "flux-system:web"}
  - name: other
    image: nginx:1.27 # {"$imagepolicy": "flux-system:nginx"}
`,
		"apps/web/release.yaml": `values:
  image:
    repository: "old/repo" # {"$imagepolicy": "flux-system:web:name"}
    tag: "1.0.0" # {"$imagepolicy": "flux-system:web:tag"}
    digest: x # {"$imagepolicy": "flux-system:web:digest"}
  list:
  - registry.example.com/team/web:0.9 # {"$imagepolicy": "flux-system:web"}
`,
		"apps/web/README.md": `image: a:b # {"$imagepolicy": "flux-system:web"}`,
	})
	n, err := SetMarkers(dir, "apps", map[string]tendv1.FreightImage{"flux-system:web": web})
	if err != nil || n != 5 {
		t.Fatalf("changed %d values, %v; want 5", n, err)
	}
	deploy, release := read(t, dir, "apps/web/deploy.yaml"), read(t, dir, "apps/web/release.yaml")
	for _, want := range []string{
		`image: registry.example.com/team/web:1.10 # {"$imagepolicy": "flux-system:web"}`,
		`image: nginx:1.27 # {"$imagepolicy": "flux-system:nginx"}`,
	} {
		if !strings.Contains(deploy, want) {
			t.Errorf("deploy.yaml lacks %q:\n%s", want, deploy)
		}
	}
	for _, want := range []string{
		`repository: "registry.example.com/team/web" # {"$imagepolicy": "flux-system:web:name"}`,
		`tag: "1.10" # {"$imagepolicy": "flux-system:web:tag"}`,
		`digest: ` + web.Digest + ` # {"$imagepolicy": "flux-system:web:digest"}`,
		`  - registry.example.com/team/web:1.10 # {"$imagepolicy": "flux-system:web"}`,
	} {
		if !strings.Contains(release, want) {
			t.Errorf("release.yaml lacks %q:\n%s", want, release)
		}
	}
	if got := read(t, dir, "apps/web/README.md"); got != `image: a:b # {"$imagepolicy": "flux-system:web"}` {
		t.Errorf("a non-YAML file changed: %s", got)
	}
	if n, err := SetMarkers(dir, "apps", map[string]tendv1.FreightImage{"flux-system:web": web}); err != nil || n != 0 {
		t.Errorf("second run changed %d, %v", n, err)
	}
}
