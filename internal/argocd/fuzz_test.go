package argocd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/project"
)

// FuzzArgoCD reads an Argo CD Application, ApplicationSet or AppProject
// (by its kind) as `tend adopt` does and converts it. It never panics;
// what converts is what tend accepts: Source names are valid object
// names, an App's health rules, ignoreDifferences and kustomize overlay
// compile, and a Project's patterns compile. `make fuzz-smoke` runs it
// briefly; see docs/development.md for longer runs.
func FuzzArgoCD(f *testing.F) {
	files, _ := filepath.Glob("../../examples/argocd-platform/argocd/*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			f.Add(doc)
		}
	}
	f.Add([]byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://github.com/example/web.git
    targetRevision: v1.2.3
    path: deploy/overlays/prod
    kustomize: {namePrefix: prod-, images: ["nginx=nginx:1.27", "redis:7"], commonLabels: {team: web}}
  destination: {server: https://kubernetes.default.svc, namespace: web}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true], retry: {limit: 3, backoff: {duration: 5s, factor: 2, maxDuration: 3m}}}
  ignoreDifferences: [{group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}]
`))
	f.Add([]byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: chart, namespace: argocd}
spec:
  sources:
  - {repoURL: https://charts.example.com, chart: web, targetRevision: "1.*", helm: {valueFiles: [$values/web/prod.yaml], parameters: [{name: a.b, value: "x,y"}], values: "replicas: 2"}}
  - {repoURL: https://github.com/example/values.git, targetRevision: main, ref: values}
  destination: {name: in-cluster, namespace: web}
`))
	opts := Options{Namespace: "tend", Credentials: func(string) string { return "" }, DecryptionSecret: "sops-age"}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var head struct {
			Kind string `json:"kind"`
		}
		if yaml.Unmarshal(doc, &head) != nil {
			return
		}
		var apps []*tendv1.App
		var sources []*tendv1.Source
		switch head.Kind {
		case "Application":
			app, err := ParseApplication(doc)
			if err != nil {
				return
			}
			res, err := Convert(app, opts)
			if err != nil {
				if !strings.Contains(err.Error(), "Application") {
					t.Fatalf("error does not name the Application: %v", err)
				}
				return
			}
			apps = append(apps, res.App)
			sources = append(append(sources, res.Source), res.OtherSources...)
		case "ApplicationSet":
			set, err := ParseApplicationSet(doc)
			if err != nil {
				return
			}
			res, err := ConvertApplicationSet(set, opts)
			if err != nil {
				return
			}
			apps = append(apps, &tendv1.App{Spec: res.AppSet.Spec.Template.Spec})
			sources = append(sources, res.Sources...)
		case "AppProject":
			p, err := ParseAppProject(doc)
			if err != nil {
				return
			}
			res, err := ConvertProject(p)
			if err != nil {
				return
			}
			if _, err := project.Compile(res.Project); err != nil {
				t.Fatalf("the converted Project does not compile: %v\n%+v", err, res.Project.Spec)
			}
		}
		for _, s := range sources {
			if s == nil {
				continue
			}
			if msgs := validation.IsDNS1123Subdomain(s.Name); len(msgs) > 0 {
				t.Fatalf("Source name %q: %s", s.Name, strings.Join(msgs, "; "))
			}
		}
		for _, a := range apps {
			if _, err := appspec.Compile(a); err != nil {
				t.Fatalf("the converted App's rules do not compile: %v", err)
			}
			if _, err := appspec.Overlay(a.Spec.Kustomize); err != nil {
				t.Fatalf("the converted App's kustomize overlay is refused: %v", err)
			}
		}
	})
}
