package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/chart"
)

// MaskedValue replaces Secret values in `tend render` output.
const MaskedValue = "(masked)"

// renderFlags say how to render a PATH; an App's options come from its spec.
type renderFlags struct {
	recursive   bool
	helmRelease string
	valuesFiles []string
	ageKeyFile  string
}

func (rf *renderFlags) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&rf.recursive, "recursive", false, "PATH: include subdirectories of a plain YAML directory")
	fs.StringVar(&rf.helmRelease, "helm-release", "", "PATH: Helm release name of a chart directory (default --app, else the directory's name)")
	fs.StringArrayVarP(&rf.valuesFiles, "values", "f", nil, "PATH: Helm values file, merged in order after the chart's defaults (repeatable)")
	fs.StringVar(&rf.ageKeyFile, "age-key-file", "", "PATH: file of age identities to decrypt SOPS files (default $SOPS_AGE_KEY_FILE, then ~/.config/sops/age/keys.txt)")
}

// pathOnly are the flags that make sense for a PATH only.
var pathOnly = []string{"recursive", "helm-release", "values", "age-key-file"}

// checkAppFlags refuses PATH flags for an App, whose spec says all that.
func checkAppFlags(cmd *cobra.Command, app string) error {
	for _, name := range pathOnly {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return &exitError{code: ExitUsage, err: fmt.Errorf("--%s applies to a PATH; App %s renders as its spec says (no directory %q here)", name, app, app)}
		}
	}
	return nil
}

// target is what render, diff and sync act on: a directory on disk or an
// App in the cluster.
type target struct {
	path string
	app  string
}

// resolveTarget decides what arg names: an existing directory, or anything
// that looks like a path (has a slash or starts with a dot), is a PATH;
// anything else is an App name.
func resolveTarget(arg string) (target, error) {
	fi, err := os.Stat(arg)
	switch {
	case err == nil && fi.IsDir():
		return target{path: arg}, nil
	case err == nil:
		return target{}, &exitError{code: ExitUsage, err: fmt.Errorf("%s is a file; pass the directory that holds it", arg)}
	case strings.ContainsRune(arg, filepath.Separator) || strings.ContainsRune(arg, '/') || strings.HasPrefix(arg, "."):
		return target{}, &exitError{code: ExitUsage, err: fmt.Errorf("no directory %s", arg)}
	}
	return target{app: arg}, nil
}

// gitTop returns the top-level directory of the git work tree holding dir,
// or "" when dir is not in one.
func gitTop(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// localRevision names what a PATH render came from: the commit checked
// out in its repository, or "local".
func localRevision(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return "local"
	}
	return "local@" + shortRev(strings.TrimSpace(string(out)))
}

// renderPath renders the directory path. The artifact root is the git
// work tree holding path (so kustomize bases and values files elsewhere in
// the repository work, as they do for an App), else path itself. namespace
// is the destination namespace; release the default Helm release name.
func (rf *renderFlags) renderPath(ctx context.Context, r *render.Renderer, path, namespace, release string) (*render.Result, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	root := gitTop(abs)
	if root == "" {
		root = abs
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return nil, "", err
	}
	if rf.helmRelease != "" {
		release = rf.helmRelease
	}
	if release == "" {
		release = filepath.Base(abs)
	}
	opts := render.Options{
		Path:      filepath.ToSlash(rel),
		Namespace: namespace,
		Recursive: rf.recursive,
		Helm:      &render.HelmOptions{ReleaseName: release},
	}
	for _, vf := range rf.valuesFiles {
		vabs, err := filepath.Abs(vf)
		if err != nil {
			return nil, "", err
		}
		if r, err := filepath.Rel(root, vabs); err == nil && !strings.HasPrefix(r, "..") {
			// In the repository: read through the renderer (SOPS works).
			fromDir, _ := filepath.Rel(abs, vabs)
			opts.Helm.ValuesFiles = append(opts.Helm.ValuesFiles, filepath.ToSlash(fromDir))
			continue
		}
		b, err := os.ReadFile(vabs)
		if err != nil {
			return nil, "", &exitError{code: ExitUsage, err: fmt.Errorf("--values: %w", err)}
		}
		var vals map[string]any
		if err := yaml.Unmarshal(b, &vals); err != nil {
			return nil, "", &exitError{code: ExitUsage, err: fmt.Errorf("--values %s is not a YAML map of values", vf)}
		}
		opts.Helm.ValuesFrom = append(opts.Helm.ValuesFrom, vals)
	}
	keys, err := ageKeys(rf.ageKeyFile)
	if err != nil {
		return nil, "", err
	}
	opts.Keys = keys
	res, err := r.Render(ctx, root, opts)
	if err != nil {
		return nil, "", &exitError{code: ExitUsage, err: fmt.Errorf("render %s: %w", path, err)}
	}
	return res, localRevision(ctx, root), nil
}

// ageKeys reads age identities for SOPS: from file, else
// $SOPS_AGE_KEY_FILE, else sops' default ~/.config/sops/age/keys.txt when
// it exists, plus $SOPS_AGE_KEY. It returns nil when there are none.
func ageKeys(file string) (*render.Keys, error) {
	explicit := file != ""
	if file == "" {
		file = os.Getenv("SOPS_AGE_KEY_FILE")
		explicit = file != ""
	}
	if file == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			file = filepath.Join(dir, "sops", "age", "keys.txt")
		}
	}
	var text string
	if file != "" {
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			text = string(b)
		case explicit:
			return nil, &exitError{code: ExitUsage, err: fmt.Errorf("age key file: %w", err)}
		}
	}
	text += "\n" + os.Getenv("SOPS_AGE_KEY")
	keys := &render.Keys{}
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			keys.Age = append(keys.Age, line)
		}
	}
	if len(keys.Age) == 0 {
		if explicit {
			return nil, &exitError{code: ExitUsage, err: fmt.Errorf("age key file %s holds no age identity (AGE-SECRET-KEY-...)", file)}
		}
		return nil, nil
	}
	return keys, nil
}

// clusterRenderer renders for the cluster k reaches (appdiff.Renderer).
func clusterRenderer(k *kube) *render.Renderer {
	return appdiff.Renderer(k.cfg, k.c.RESTMapper())
}

// maskSecret returns obj with its Secret values replaced by MaskedValue; other
// objects are returned as they are.
func maskSecret(obj *unstructured.Unstructured) *unstructured.Unstructured {
	gvk := obj.GroupVersionKind()
	if gvk.Group != "" || gvk.Kind != "Secret" {
		return obj
	}
	out := obj.DeepCopy()
	for _, field := range []string{"data", "stringData"} {
		if m, ok := out.Object[field].(map[string]any); ok {
			for k := range m {
				m[k] = MaskedValue
			}
		}
	}
	return out
}

// writeObjects prints objects as YAML documents or a JSON List.
func writeObjects(w io.Writer, format string, objs []*unstructured.Unstructured, showSecrets bool) error {
	shown := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		shown[i] = o
		if !showSecrets {
			shown[i] = maskSecret(o)
		}
	}
	if format == formatJSON {
		items := make([]any, len(shown))
		for i, o := range shown {
			items[i] = o.Object
		}
		return printData(w, formatJSON, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	var b strings.Builder
	for _, o := range shown {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (m *Main) renderCommand() *cobra.Command {
	var (
		kf          kubeFlags
		rf          renderFlags
		output      string
		showSecrets bool
		revision    string
		app         string
	)
	cmd := &cobra.Command{
		Use:   "render PATH|APP",
		Short: "Print the objects a directory or an App renders to",
		Long: `Print the Kubernetes objects a directory (PATH) or an App renders to, as YAML
documents: plain YAML, a kustomization, or a Helm chart, with SOPS files
decrypted. Secret values are shown as "(masked)" unless --show-secrets.

PATH is rendered offline, exactly as an App would render that directory of its
repository: the repository root (the git work tree holding PATH, else PATH) is
the artifact, so kustomize bases and values files elsewhere in it work. -n
sets the namespace of namespaced objects that have none (by default they keep
none).

APP renders an App of the cluster from its Source: the revision the Source
last fetched (or the App's pinned spec.targetRevision, or --revision), fetched
into a temporary directory with the Source's credentials, with the App's own
options (path, Helm values, decryption keys from its Secrets).

An argument that names an existing directory, or has a slash or a leading dot,
is a PATH; anything else is an App name.`,
		Example: `  tend render clusters/home/web
  tend render charts/web --helm-release web -n web -f charts/web/values-prod.yaml
  tend render web -n tend-system --show-secrets`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			apps, _ := completeApps(cmd.Context(), &kf)
			return apps, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output, formatYAML, formatJSON); err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := resolveTarget(args[0])
			if err != nil {
				return err
			}
			var objs []*unstructured.Unstructured
			if t.path != "" {
				if revision != "" {
					return &exitError{code: ExitUsage, err: errors.New("--revision applies to an App; a PATH renders what is on disk")}
				}
				res, _, err := rf.renderPath(ctx, &render.Renderer{Charts: chart.New(chart.Options{})}, t.path, kf.namespace, app)
				if err != nil {
					return err
				}
				objs = res.Objects()
			} else {
				if err := checkAppFlags(cmd, t.app); err != nil {
					return err
				}
				k, err := kf.connect()
				if err != nil {
					return notPathOrApp(t.app, err)
				}
				a, err := k.app(ctx, t.app)
				if err != nil {
					return err
				}
				ar, err := renderApp(ctx, k, a, revision)
				if err != nil {
					return err
				}
				objs = ar.Objects
			}
			return writeObjects(m.Stdout, output, objs, showSecrets)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	rf.addFlags(f)
	f.StringVar(&app, "app", "", "PATH: App name used as the default Helm release name")
	f.StringVarP(&output, "output", "o", formatYAML, "output format: yaml or json")
	f.BoolVar(&showSecrets, "show-secrets", false, "print Secret values instead of (masked)")
	f.StringVar(&revision, "revision", "", "APP: render this git branch, tag or commit of the App's Source (a tag or digest of an OCI artifact Source)")
	return cmd
}

// notPathOrApp explains an argument that is neither a directory nor, for
// want of a cluster, an App.
func notPathOrApp(arg string, err error) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf("no directory %s here, and no cluster to look up an App of that name: %v", arg, err)}
}

// differ renders and compares Apps of k's cluster; engine may be nil when
// only rendering.
func (k *kube) differ(engine *apply.Engine) *appdiff.Differ {
	return &appdiff.Differ{Config: k.cfg, Client: k.c, Engine: engine}
}

// renderApp renders app from its Source at revision ref (a branch, tag or
// commit; "" means the App's pinned spec.targetRevision, else the revision
// the Source last fetched), fetched into a temporary directory.
func renderApp(ctx context.Context, k *kube, app *tendv1.App, ref string) (*appdiff.Rendered, error) {
	src, err := k.appSource(ctx, app)
	if err != nil {
		return nil, err
	}
	return renderAppFrom(ctx, k, app, src, ref, appdiff.Known{})
}

// appSource returns the App's Source, or an error that suggests the Source
// the user probably meant.
func (k *kube) appSource(ctx context.Context, app *tendv1.App) (*tendv1.Source, error) {
	ns := app.Namespace
	if app.Spec.SourceRef.Namespace != "" {
		ns = app.Spec.SourceRef.Namespace
	}
	return k.source(ctx, ns, app.Spec.SourceRef.Name)
}

// renderAppFrom is renderApp with the App's Source given; kn are Sources and
// Projects of the App's namespace that are not created yet (tend adopt
// renders from what Flux or Argo CD objects map to).
func renderAppFrom(ctx context.Context, k *kube, app *tendv1.App, src *tendv1.Source, ref string, kn appdiff.Known) (*appdiff.Rendered, error) {
	r, err := k.differ(nil).Render(ctx, app, src, ref, kn)
	return r, k.appError(err)
}

// appError turns an error of package appdiff into what the CLI reports.
func (k *kube) appError(err error) error {
	var (
		nf *appdiff.NotFetchedError
		ie *appdiff.InputError
		ce *appdiff.ClusterError
		oc *appdiff.OtherClusterError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf):
		what := "a branch, tag or commit"
		if nf.Source.Spec.OCIArtifact() {
			what = "a tag or digest"
		}
		return &exitError{code: ExitUsage, err: fmt.Errorf("%w; pass --revision to render %s", err, what)}
	case errors.As(err, &ie):
		return &exitError{code: ExitUsage, err: err}
	case errors.As(err, &oc):
		return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s/%s deploys to Cluster %s: tend diff compares with the cluster of the kubeconfig only; point --kubeconfig at that cluster and diff the App's directory", oc.Namespace, oc.Name, oc.Cluster)}
	case errors.As(err, &ce):
		return k.wrap(ce.Err)
	}
	return err
}
