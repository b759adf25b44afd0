package flux

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tend-gitops/tend/internal/appspec"
)

// FuzzFlux converts two Flux documents (a Kustomization and its
// GitRepository, an Alert and its Provider...) as `tend adopt` does. It
// never panics; every error names the document it comes from, and what
// converts is what tend accepts: an App's kustomize overlay and rules
// compile. `make fuzz-smoke` runs it briefly;
// see docs/development.md for longer runs.
func FuzzFlux(f *testing.F) {
	var docs [][]byte
	for _, dir := range []string{"../../examples/flux-platform/clusters/production", "../../examples/flux-style-sops/clusters/production"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			for _, d := range bytes.Split(b, []byte("\n---\n")) {
				if IsFlux(string(d)) || bytes.Contains(d, []byte("toolkit.fluxcd.io")) {
					docs = append(docs, d)
				}
			}
		}
	}
	for i := range docs {
		f.Add(docs[i], docs[(i+1)%len(docs)])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		res := Convert([]Document{{Where: "a.yaml", Body: a}, {Where: "b.yaml", Body: b}})
		for _, err := range res.Errors {
			if msg := err.Error(); !strings.Contains(msg, "a.yaml") && !strings.Contains(msg, "b.yaml") {
				t.Fatalf("error names no document: %v", err)
			}
		}
		for _, a := range res.Apps {
			if _, err := appspec.Compile(a); err != nil {
				t.Fatalf("the converted App's rules do not compile: %v", err)
			}
			if _, err := appspec.Overlay(a.Spec.Kustomize); err != nil {
				t.Fatalf("the converted App's kustomize overlay is refused: %v", err)
			}
		}
	})
}
