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

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/argocd"
	"github.com/tend-gitops/tend/internal/compat"
	"github.com/tend-gitops/tend/internal/flux"
)

func (m *Main) migrateCommand() *cobra.Command {
	var namespace, decryption string
	cmd := &cobra.Command{
		Use:   "migrate FILE|DIR|- ...",
		Short: "Print the tend Sources, Apps, AppSets and Notifiers of Argo CD and Flux objects",
		Long: `Print the tend Sources, Apps, AppSets and Notifiers of Argo CD and Flux objects.

Reads Argo CD Applications and ApplicationSets (list, git directories and
files, matrix and merge generators) and Flux GitRepositories,
HelmRepositories (HTTP and OCI), Kustomizations, HelmReleases, Alerts and
Providers (Flux 2's current APIs) from YAML files, from the .yaml and .yml
files under directories, or from standard input (-), including kubectl's
List output, and prints the tend Sources, Apps, AppSets and Notifiers of the
same meaning, ready for kubectl apply or to commit next to them. A Flux
Alert becomes a Notifier with its Provider's type and address.
Other objects are skipped; other kinds of Argo CD and Flux objects are
reported as not converted.

Argo CD Applications become Apps of the same name, in the Application's
namespace or --app-namespace; Applications of one repository and revision
share a Source. Argo CD repository and repo-creds Secrets in the input
(kubectl get secrets -n argocd -l argocd.argoproj.io/secret-type -o yaml)
are matched to repository URLs as Argo CD matches them, and the Sources
name them: tend reads their username, password and sshPrivateKey keys as
they are. Argo CD cluster Secrets in the input become Clusters that read
them as they are, for Applications whose destination names their server or
name. Only URLs and cluster names are read here; nothing of a Secret is
printed. Flux objects keep their names and namespaces, so sourceRef
and dependsOn keep pointing where they did, and the Secrets Flux reads (git
credentials, SOPS keys, values) are read by tend unchanged.

Every field tend cannot honour is listed on standard error with the file,
the object and the field's path; such an object is left out rather than
converted in part (exit 1). docs/adopt.md maps every field.`,
		Example: `  tend migrate argocd/apps/ clusters/production/ > tend.yaml
  kubectl get applications -n argocd -o yaml | tend migrate -
  flux export kustomization --all | tend migrate -`,
		Annotations: map[string]string{annotationExit1: "when an object could not be converted (its fields are listed)"},
		Args:        cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.migrate(args, namespace, decryption)
		},
	}
	cmd.Flags().StringVar(&namespace, "app-namespace", "", "namespace of the Apps and Sources of Argo CD Applications (default: each Application's own)")
	cmd.Flags().StringVar(&decryption, "argo-decryption-secret", "", "the Secret (in each App's namespace) with the SOPS keys Apps of Argo CD Applications decrypt KSOPS generators and SOPS files with: their spec.decryption")
	return cmd
}

// migrate converts the Argo CD and Flux objects in paths and prints what
// converted; what did not is listed on stderr.
func (m *Main) migrate(paths []string, namespace, decryption string) error {
	docs, errs := m.convertInput(paths)
	if len(errs) > 0 {
		return &exitError{code: ExitUsage, err: errors.Join(errs...)}
	}
	objects := map[string]any{} // "order/namespace/name" -> object
	var (
		refused  []error
		warnings []string
		fluxDocs []flux.Document
	)
	creds, err := argoCredentials(docs)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	for _, d := range docs {
		switch {
		case flux.IsFlux(d.kind.GroupVersion().String()):
			fluxDocs = append(fluxDocs, flux.Document{Where: d.where, Body: d.body})
			continue
		case d.kind.Group != argocd.Group:
			continue
		case d.kind.Kind == "AppProject":
			// The Project its Applications name (spec.project), in the
			// namespace they go to.
			p, err := argocd.ParseAppProject(d.body)
			var res *argocd.ProjectResult
			if err == nil {
				res, err = argocd.ConvertProject(p)
			}
			if err != nil {
				refused = append(refused, fmt.Errorf("%s: %w", d.where, err))
				continue
			}
			if namespace != "" {
				res.Project.Namespace = namespace
			}
			for _, w := range res.Warnings {
				warnings = append(warnings, fmt.Sprintf("%s: AppProject %s/%s: %s", d.where, p.Namespace, p.Name, w))
			}
			objects["0/"+res.Project.Namespace+"/"+res.Project.Name] = res.Project
			continue
		case d.kind.Kind != "Application" && d.kind.Kind != "ApplicationSet":
			warnings = append(warnings, fmt.Sprintf("%s: %s is not converted", d.where, d.kind.Kind))
			continue
		}
		var head metav1.PartialObjectMetadata
		if err := sigsyaml.Unmarshal(d.body, &head); err != nil {
			refused = append(refused, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		target := namespace
		if target == "" {
			target = head.Namespace
		}
		what := fmt.Sprintf("%s: %s %s/%s", d.where, d.kind.Kind, head.Namespace, head.Name)
		// Clusters are printed only for what converts.
		clusters := map[string]any{}
		opts := argocd.Options{Namespace: namespace, DecryptionSecret: decryption, Cluster: func(server, name string) (string, error) {
			sec := creds.Cluster(server, name)
			if sec == nil {
				return "", fmt.Errorf("cluster %s: no Argo CD cluster Secret for it in the input; add it (kubectl get secrets -n argocd -l argocd.argoproj.io/secret-type=cluster -o yaml)", orDash(server, name))
			}
			if sec.Namespace != target {
				warnings = append(warnings, fmt.Sprintf("%s: copy the Argo CD cluster Secret %s/%s into namespace %s: Clusters read Secrets in their own", what, sec.Namespace, sec.Name, target))
			}
			clusters["0/"+target+"/"+sec.Name] = argocd.ClusterFromSecret(sec, target)
			return sec.Name, nil
		}, Credentials: func(url string) string {
			sec := creds.Repository(url)
			if sec == nil {
				return ""
			}
			if sec.Namespace != target {
				warnings = append(warnings, fmt.Sprintf("%s: copy the Argo CD repository Secret %s/%s into namespace %s: Sources read Secrets in their own", what, sec.Namespace, sec.Name, target))
			}
			if _, ok := sec.Data["known_hosts"]; argocd.IsSSH(url) && !ok {
				warnings = append(warnings, fmt.Sprintf("%s: add known_hosts to Secret %s: tend checks SSH host keys (Argo CD keeps them in the ConfigMap argocd-ssh-known-hosts-cm)", what, sec.Name))
			}
			return sec.Name
		}}
		if d.kind.Kind == "ApplicationSet" {
			set, err := argocd.ParseApplicationSet(d.body)
			if err == nil {
				var res *argocd.SetResult
				if res, err = argocd.ConvertApplicationSet(set, opts); err == nil {
					for _, w := range res.Warnings {
						warnings = append(warnings, what+": "+w)
					}
					for _, src := range res.Sources {
						objects["1/"+src.Namespace+"/"+src.Name] = src
					}
					objects["3/"+res.AppSet.Namespace+"/"+res.AppSet.Name] = res.AppSet
					maps.Copy(objects, clusters)
					if res.Clusters {
						// Its clusters generator lists the Clusters of the
						// namespace: one per Argo CD cluster Secret.
						for _, sec := range creds.Clusters() {
							if sec.Namespace != target {
								warnings = append(warnings, fmt.Sprintf("%s: copy the Argo CD cluster Secret %s/%s into namespace %s: Clusters read Secrets in their own", what, sec.Namespace, sec.Name, target))
							}
							objects["0/"+target+"/"+sec.Name] = argocd.ClusterFromSecret(sec, target)
						}
					}
					continue
				}
			}
			refused = append(refused, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		app, err := argocd.ParseApplication(d.body)
		if err != nil {
			refused = append(refused, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		res, err := argocd.Convert(app, opts)
		if err != nil {
			refused = append(refused, fmt.Errorf("%s: %w", d.where, err))
			continue
		}
		for _, w := range res.Warnings {
			warnings = append(warnings, what+": "+w)
		}
		key := "2/" + res.App.Namespace + "/" + res.App.Name
		if _, dup := objects[key]; dup {
			refused = append(refused, fmt.Errorf("%s: Application %s/%s: another Application becomes App %s already; pass --app-namespace or rename one", d.where, app.Namespace, app.Name, key[2:]))
			continue
		}
		for _, src := range append([]*tendv1.Source{res.Source}, res.OtherSources...) {
			objects["1/"+src.Namespace+"/"+src.Name] = src
		}
		adoptFrom(res.App, schema.GroupVersionKind{Group: argocd.Group, Version: "v1alpha1", Kind: "Application"}, app.Namespace, app.Name)
		objects[key] = res.App
		maps.Copy(objects, clusters)
	}
	if len(fluxDocs) > 0 {
		res := flux.Convert(fluxDocs)
		refused = append(refused, res.Errors...)
		warnings = append(warnings, res.Warnings...)
		for _, s := range res.Skipped {
			warnings = append(warnings, s+" is not converted")
		}
		for _, s := range res.Sources {
			key := "1/" + s.Namespace + "/" + s.Name
			if _, dup := objects[key]; dup {
				refused = append(refused, fmt.Errorf("source %s (Flux): an Argo CD Application's Source has its name", key[2:]))
				continue
			}
			objects[key] = s
		}
		for i, a := range res.Apps {
			adoptFrom(a, fluxAppKinds[res.AppKinds[i]], a.Namespace, a.Name)
			key := "2/" + a.Namespace + "/" + a.Name
			if _, dup := objects[key]; dup {
				refused = append(refused, fmt.Errorf("object %s (Flux): an Argo CD Application becomes an App of that name", key[2:]))
				continue
			}
			objects[key] = a
		}
		for _, n := range res.Notifiers {
			objects["4/"+n.Namespace+"/"+n.Name] = n
		}
	}
	for _, w := range warnings {
		fmt.Fprintf(m.Stderr, "warning: %s\n", w)
	}
	for _, err := range refused {
		fmt.Fprintf(m.Stderr, "not converted: %v\n", err)
	}
	if len(objects) == 0 && len(refused) == 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("no Argo CD Application or Flux GitRepository, HelmRepository, Kustomization, HelmRelease or Alert in %s", strings.Join(paths, ", "))}
	}
	if err := m.printConverted(objects); err != nil {
		return err
	}
	if len(refused) > 0 {
		return &exitError{code: ExitDiff, quiet: true, err: fmt.Errorf("%d objects not converted", len(refused))}
	}
	return nil
}

func orDash(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// argoCredentials collects the Argo CD repository, repo-creds and cluster
// Secrets in docs.
func argoCredentials(docs []document) (*argocd.Secrets, error) {
	c := argocd.NewSecrets()
	for _, d := range docs {
		if d.kind.Group != "" || d.kind.Kind != "Secret" {
			continue
		}
		var sec corev1.Secret
		if err := sigsyaml.Unmarshal(d.body, &sec); err != nil {
			return nil, fmt.Errorf("%s: %w", d.where, err)
		}
		if err := c.Add(&sec); err != nil {
			return nil, fmt.Errorf("%s: %w", d.where, err)
		}
	}
	return c, nil
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

// fluxAppKinds are the Flux kinds Apps are made from.
var fluxAppKinds = map[string]schema.GroupVersionKind{
	kustomizev1.KustomizationKind: kustomizev1.GroupVersion.WithKind(kustomizev1.KustomizationKind),
	helmv2.HelmReleaseKind:        helmv2.GroupVersion.WithKind(helmv2.HelmReleaseKind),
}

// adoptFrom marks app as replacing the Argo CD or Flux object gvk
// namespace/name: the controller starts it with the inventory that object
// recorded, when it is still in the cluster at the App's first sync. An
// object without a namespace names none, so nothing is marked.
func adoptFrom(app *tendv1.App, gvk schema.GroupVersionKind, namespace, name string) {
	if namespace == "" || gvk.Kind == "" {
		return
	}
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[tendv1.AnnotationAdoptFrom] = compat.AdoptFromRef(gvk, namespace, name)
}
