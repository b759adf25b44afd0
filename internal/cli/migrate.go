package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/argocd"
	"github.com/tend-gitops/tend/internal/flux"
)

func (m *Main) convertCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert Argo CD's or Flux's objects to tend's",
		Args:  cobra.NoArgs,
	}
	var namespace string
	argo := &cobra.Command{
		Use:   "argocd FILE|DIR|- ...",
		Short: "Convert Argo CD Applications to tend Apps and Sources",
		Long: `Convert Argo CD Applications to tend Apps and Sources.

Reads Applications from YAML files, from the .yaml and .yml files under
directories, or from standard input (-), and prints the tend Sources and
Apps they map to, ready for kubectl apply or for committing next to them.
Applications of one repository and revision share a Source. Other objects
are skipped.

Every field tend cannot honour is reported, with the Application and the
field's path, and nothing is printed (exit 2). Where tend behaves
differently in a way that does not change what is applied (an AppProject's
restrictions, which tend does not enforce yet), a warning goes to standard
error. Destinations must be the cluster tend runs in
(https://kubernetes.default.svc or in-cluster).`,
		Example: `  tend convert argocd apps/ > tend-apps.yaml
  kubectl get applications -n argocd -o yaml | tend convert argocd -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.convertArgoCD(args, namespace)
		},
	}
	argo.Flags().StringVar(&namespace, "app-namespace", "", "namespace of the Apps and Sources (default: each Application's own)")
	fl := &cobra.Command{
		Use:   "flux FILE|DIR|- ...",
		Short: "Convert Flux sources, Kustomizations and HelmReleases to tend Sources and Apps",
		Long: `Convert Flux sources, Kustomizations and HelmReleases to tend Sources and Apps.

Reads GitRepository, HelmRepository (HTTP and OCI), Kustomization and
HelmRelease objects of Flux 2's current APIs from YAML files, from the .yaml
and .yml files under directories, or from standard input (-), and prints the
tend Sources and Apps they map to, with the same names and namespaces, so
sourceRef and dependsOn keep pointing where they did and the Secrets Flux
reads (git credentials, SOPS keys, values) are read by tend unchanged.

Every field tend cannot honour is reported, with the file, the object and
the field's path, and nothing is printed (exit 2); so is a misspelt field.
Other kinds of Flux objects are reported as not converted.`,
		Example: `  tend convert flux clusters/production/ > tend.yaml
  flux export source git --all | tend convert flux -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.convertFlux(args)
		},
	}
	cmd.AddCommand(argo, fl)
	return cmd
}

// convertArgoCD converts the Applications in paths and prints the result.
func (m *Main) convertArgoCD(paths []string, namespace string) error {
	docs, errs := m.convertInput(paths)
	objects := map[string]any{} // "kind/namespace/name" -> object
	apps := 0
	for _, d := range docs {
		if d.kind.Group != argocd.Group {
			continue
		}
		if d.kind.Kind != "Application" {
			fmt.Fprintf(m.Stderr, "warning: %s: %s is not converted\n", d.where, d.kind.Kind)
			continue
		}
		app, err := argocd.ParseApplication(d.body)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		res, err := argocd.Convert(app, argocd.Options{Namespace: namespace})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(m.Stderr, "warning: %s: Application %s/%s: %s\n", d.where, app.Namespace, app.Name, w)
		}
		apps++
		objects["1/"+res.Source.Namespace+"/"+res.Source.Name] = res.Source
		key := "2/" + res.App.Namespace + "/" + res.App.Name
		if _, dup := objects[key]; dup {
			errs = append(errs, fmt.Errorf("%s: Application %s/%s: an App of that name is converted already; pass --app-namespace or rename one", d.where, app.Namespace, app.Name))
		}
		objects[key] = res.App
	}
	if len(errs) > 0 {
		return &exitError{code: ExitUsage, err: errors.Join(errs...)}
	}
	if apps == 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("no Argo CD Application in %s", strings.Join(paths, ", "))}
	}
	return m.printConverted(objects)
}

// convertFlux converts the Flux objects in paths and prints the result.
func (m *Main) convertFlux(paths []string) error {
	docs, errs := m.convertInput(paths)
	var in []flux.Document
	for _, d := range docs {
		if flux.IsFlux(d.kind.GroupVersion().String()) {
			in = append(in, flux.Document{Where: d.where, Body: d.body})
		}
	}
	res, err := flux.Convert(in)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return &exitError{code: ExitUsage, err: errors.Join(errs...)}
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(m.Stderr, "warning: %s\n", w)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(m.Stderr, "warning: %s is not converted\n", s)
	}
	if len(res.Sources)+len(res.Apps) == 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("no Flux GitRepository, HelmRepository, Kustomization or HelmRelease in %s", strings.Join(paths, ", "))}
	}
	objects := map[string]any{}
	for _, s := range res.Sources {
		objects["1/"+s.Namespace+"/"+s.Name] = s
	}
	for _, a := range res.Apps {
		objects["2/"+a.Namespace+"/"+a.Name] = a
	}
	return m.printConverted(objects)
}

// convertInput reads the documents of paths ("-" is standard input), with
// the items of Lists (kubectl get -o yaml) as documents of their own.
func (m *Main) convertInput(paths []string) ([]document, []error) {
	stdin := m.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	raw, err := readDocuments(paths, stdin)
	if err != nil {
		return nil, []error{err}
	}
	var (
		docs []document
		errs []error
	)
	for len(raw) > 0 {
		d := raw[0]
		raw = raw[1:]
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Items      []json.RawMessage `json:"items"`
		}
		if err := sigsyaml.Unmarshal(d.body, &head); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		gv, _ := schema.ParseGroupVersion(head.APIVersion)
		if head.Items != nil && strings.HasSuffix(head.Kind, "List") {
			items := make([]document, len(head.Items))
			for i, it := range head.Items {
				items[i] = document{where: fmt.Sprintf("%s (item %d)", d.where, i+1), body: it}
			}
			raw = append(items, raw...)
			continue
		}
		d.kind = gv.WithKind(head.Kind)
		docs = append(docs, d)
	}
	return docs, errs
}

// printConverted prints objects as YAML documents in the order of their
// keys, without status and creation time.
func (m *Main) printConverted(objects map[string]any) error {
	var out bytes.Buffer
	for i, k := range slices.Sorted(maps.Keys(objects)) {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(objects[k])
		if err != nil {
			return err
		}
		delete(u, "status")
		if md, ok := u["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		b, err := sigsyaml.Marshal(u)
		if err != nil {
			return err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	_, err := m.Stdout.Write(out.Bytes())
	return err
}

// document is one YAML document and where it came from.
type document struct {
	where string // "file.yaml" or "file.yaml (document 2)"
	body  []byte
	kind  schema.GroupVersionKind // set by convertInput
}

// readDocuments reads the YAML documents of files, of the .yaml and .yml
// files under directories, and of stdin for "-".
func readDocuments(paths []string, stdin io.Reader) ([]document, error) {
	var docs []document
	read := func(name string, r io.Reader) error {
		yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
		for n := 1; ; n++ {
			b, err := yr.Read()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			where := name
			if n > 1 {
				where = fmt.Sprintf("%s (document %d)", name, n)
			}
			docs = append(docs, document{where: where, body: b})
		}
	}
	for _, p := range paths {
		if p == "-" {
			if err := read("standard input", stdin); err != nil {
				return nil, err
			}
			continue
		}
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir // .git and the like
				}
				return nil
			}
			if path != p && !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml") {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			return read(path, f)
		})
		if err != nil {
			return nil, err
		}
	}
	return docs, nil
}
