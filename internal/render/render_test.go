package render

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// writeFiles creates the test's input files (slash paths relative to root).
func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// treeState describes every entry under root: path, kind, size and
// modification time.
func treeState(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %v %d", p, fi.Mode(), fi.ModTime(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// render renders opts from root and checks that rendering created,
// changed or removed nothing in the artifact directory.
func render(t testing.TB, r *Renderer, root string, opts Options) (*Result, error) {
	t.Helper()
	before := treeState(t, root)
	res, err := r.Render(context.Background(), root, opts)
	if after := treeState(t, root); !slices.Equal(before, after) {
		t.Errorf("rendering changed the artifact directory:\nbefore %v\nafter  %v", before, after)
	}
	return res, err
}

// mustRender renders and fails the test on error.
func mustRender(t testing.TB, r *Renderer, root string, opts Options) *Result {
	t.Helper()
	res, err := render(t, r, root, opts)
	if err != nil {
		t.Fatalf("Render(%q): %v", opts.Path, err)
	}
	return res
}

// renderErr renders and returns the error, failing the test when there is
// none.
func renderErr(t testing.TB, r *Renderer, root string, opts Options) error {
	t.Helper()
	_, err := render(t, r, root, opts)
	if err == nil {
		t.Fatalf("Render(%q) succeeded, want an error", opts.Path)
	}
	return err
}

// wantErrContains fails the test unless err mentions every part.
func wantErrContains(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not mention %q:\n%v", p, err)
		}
	}
}

// ids names objects as "Kind namespace/name" in order.
func ids(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, describe(o))
	}
	return out
}

// findObj returns the object of kind and name, failing the test when absent.
func findObj(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q in %v", kind, name, ids(objs))
	return nil
}

func nestedString(t testing.TB, o *unstructured.Unstructured, fields ...string) string {
	t.Helper()
	v, _, err := unstructured.NestedString(o.Object, fields...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRenderErrorsArePerApp(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"apps/a/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"apps/broken/cm.yaml":       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b\n",
		"apps/c/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
		"apps/d/kustomization.yaml": "resources: [cm.yaml]\n",
		"apps/d/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n",
	})
	r := &Renderer{}
	for _, app := range []string{"a", "c", "d"} {
		res := mustRender(t, r, root, Options{Path: "apps/" + app, Namespace: "ns"})
		if got, want := ids(res.Objects()), []string{"ConfigMap ns/" + app}; !slices.Equal(got, want) {
			t.Errorf("app %s: got %v, want %v", app, got, want)
		}
	}
	err := renderErr(t, r, root, Options{Path: "apps/broken"})
	wantErrContains(t, err, "apps/broken/cm.yaml", "line")
}

func TestRenderPathErrors(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"apps/a/cm.yaml": "x: 1\n"})
	r := &Renderer{}
	wantErrContains(t, renderErr(t, r, root, Options{Path: "apps/missing"}), `"apps/missing"`, "check the App's path")
	wantErrContains(t, renderErr(t, r, root, Options{Path: "apps/a/cm.yaml"}), "is a file")
}
