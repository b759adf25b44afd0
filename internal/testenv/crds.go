package testenv

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/config"
)

var crds, compatCRDs struct {
	once sync.Once
	err  error
}

// InstallCRDs applies tend's CRDs (config/crd, server-side, so packages
// running in parallel may all do it) once per test process and waits until
// they are Established. They are never deleted: other tests use them.
func InstallCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	crds.once.Do(func() { crds.err = applyCRDs(cfg, config.CRDs, "crd/*.yaml") })
	if crds.err != nil {
		t.Fatalf("testenv: install tend's CRDs: %v", crds.err)
	}
}

// InstallCompatCRDs applies the Argo CD and Flux CRDs `tend install
// --compat` installs (config/compat), as InstallCRDs does tend's.
func InstallCompatCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	compatCRDs.once.Do(func() { compatCRDs.err = applyCRDs(cfg, config.CompatCRDs, "compat/*.yaml") })
	if compatCRDs.err != nil {
		t.Fatalf("testenv: install the Argo CD and Flux CRDs: %v", compatCRDs.err)
	}
}

func applyCRDs(cfg *rest.Config, fsys fs.FS, glob string) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ext, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	files, err := fs.Glob(fsys, glob)
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs embedded as %s (%v)", glob, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gvr := apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	var names []string
	for _, f := range files {
		raw, err := fs.ReadFile(fsys, f)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := dyn.Resource(gvr).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "tend-test", Force: true}); err != nil {
			return fmt.Errorf("apply %s: %w", f, err)
		}
		names = append(names, u.GetName())
	}
	for _, name := range names {
		for {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("CRD %s not Established: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *apiextv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
			return true
		}
	}
	return false
}

// WidgetCRD returns a namespaced CustomResourceDefinition of kind Widget
// (plural widgets) in group, served at v1 with any fields kept.
func WidgetCRD(group string) *apiextv1.CustomResourceDefinition {
	keep := true
	return &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets." + group},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextv1.NamespaceScoped,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &keep,
				}},
			}},
		},
	}
}
