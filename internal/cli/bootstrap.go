package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	sigsyaml "sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/install"
)

// bootstrapOptions are the flags of `tend bootstrap`.
type bootstrapOptions struct {
	Repo, Path, Branch, AgeKey, Namespace string
	// Version labels the installed objects and tags the image ("" latest).
	Version string
	// Image of the controller (default the release's own, see Version).
	Image string
	// LocalController installs everything but the controller Deployment:
	// the controller runs as a local process (`tend controller`), as in
	// `make demo` where there is no container runtime.
	LocalController bool
	ClusterAdmin    bool
	Force           bool
	Interval        time.Duration
	// SecretName names an existing Secret with read credentials for the
	// repository (username/password or identity/known_hosts).
	SecretName string
}

func (m *Main) bootstrapCommand() *cobra.Command {
	var (
		kf kubeFlags
		o  bootstrapOptions
	)
	cmd := &cobra.Command{
		Use:   "bootstrap --repo URL --path clusters/NAME",
		Short: "Install tend into a cluster and make it manage itself from git",
		Long: `Install tend (CRDs, RBAC, controller) into the cluster, write tend's own install
manifests into PATH/tend in the repository (committing and pushing them when they
changed), and create the Source "tend" and the App "tend" that apply PATH - tend
itself included - from then on. Upgrading tend is then a commit.

Safe to re-run: nothing changes when everything is in place. Refuses to switch
a cluster that tend already manages from another repository unless --force.`,
		Example: `  tend bootstrap --repo https://git.example.com/ops/platform.git --path clusters/home --age-key age.key
  tend bootstrap --repo http://127.0.0.1:8418/homelab/.git --path clusters/homelab --local-controller`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Repo == "" || o.Path == "" {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--repo and --path are required")}
			}
			cfg, err := kf.restConfig()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			o.Version = m.releaseVersion()
			return bootstrap(cmd.Context(), cfg, o, m.Stdout)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.StringVar(&o.Repo, "repo", "", "git repository URL tend follows (and bootstrap pushes to)")
	f.StringVar(&o.Path, "path", "", "directory in the repository for this cluster, e.g. clusters/home")
	f.StringVar(&o.Branch, "branch", "main", "branch to follow")
	f.StringVar(&o.AgeKey, "age-key", "", "file with age identities for SOPS; stored in the Secret sops-age")
	f.StringVar(&o.Namespace, "tend-namespace", install.DefaultNamespace, "namespace tend runs in")
	f.BoolVar(&o.LocalController, "local-controller", false, "install everything but the controller Deployment; run `tend controller` yourself")
	f.StringVar(&o.Image, "image", "", "controller image (default "+install.DefaultImageRepo+":<version>)")
	f.BoolVar(&o.ClusterAdmin, "cluster-admin", false, "bind tend to cluster-admin instead of its least-privilege role")
	f.BoolVar(&o.Force, "force", false, "take over a cluster tend already manages from another repository")
	f.DurationVar(&o.Interval, "interval", time.Minute, "how often tend fetches the repository")
	f.StringVar(&o.SecretName, "secret-name", "", "existing Secret in the tend namespace with repository read credentials")
	return cmd
}

func bootstrap(ctx context.Context, cfg *rest.Config, o bootstrapOptions, out io.Writer) error {
	o.Path = strings.Trim(path.Clean("/"+o.Path), "/")
	if o.Path == "" {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--path must name a directory in the repository, e.g. clusters/home")}
	}
	dyn, mapper, err := dynamicClients(cfg)
	if err != nil {
		return err
	}
	ns := o.Namespace

	// Refuse to move a cluster tend already manages to another repository.
	srcGVR := tendv1.GroupVersion.WithResource("sources")
	if existing, err := dyn.Resource(srcGVR).Namespace(ns).Get(ctx, "tend", metav1.GetOptions{}); err == nil {
		url, _, _ := unstructured.NestedString(existing.Object, "spec", "git", "url")
		if normalizeRepo(url) != normalizeRepo(o.Repo) && !o.Force {
			return &exitError{code: ExitUsage, err: fmt.Errorf("tend in this cluster already follows %s; pass --force to switch it to %s", url, o.Repo)}
		}
	} else if !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
		return bootstrapUnreachable(cfg, err)
	}

	objs, err := install.Manifests(install.Options{Namespace: ns, ClusterAdmin: o.ClusterAdmin, Version: o.Version, Image: o.Image})
	if err != nil {
		return err
	}
	if o.LocalController {
		objs = withoutController(objs)
	}
	fmt.Fprintf(out, "► installing tend into namespace %s (%d objects)\n", ns, len(objs))
	for _, obj := range objs {
		if err := bootstrapApply(ctx, dyn, mapper, obj); err != nil {
			return err
		}
	}
	if err := waitCRDs(ctx, dyn, objs); err != nil {
		return err
	}

	fmt.Fprintf(out, "► writing tend's install manifests to %s/tend in %s\n", o.Path, o.Repo)
	manifest, err := renderManifests(objs)
	if err != nil {
		return err
	}
	changed, err := writeToRepo(ctx, o, path.Join(o.Path, "tend", "tend.yaml"), manifest)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(out, "  committed and pushed %s/tend/tend.yaml\n", o.Path)
	} else {
		fmt.Fprintf(out, "  %s/tend/tend.yaml is up to date\n", o.Path)
	}

	if o.AgeKey != "" {
		key, err := os.ReadFile(o.AgeKey)
		if err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("--age-key: %w", err)}
		}
		if !strings.Contains(string(key), "AGE-SECRET-KEY-") {
			return &exitError{code: ExitUsage, err: fmt.Errorf("--age-key %s holds no age identity (AGE-SECRET-KEY-...)", o.AgeKey)}
		}
		sec := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Secret",
			"metadata":   map[string]any{"name": "sops-age", "namespace": ns},
			"stringData": map[string]any{"age.agekey": string(key)},
		}}
		if err := bootstrapApply(ctx, dyn, mapper, sec); err != nil {
			return err
		}
		fmt.Fprintf(out, "► stored the age key in Secret %s/sops-age\n", ns)
	}

	src := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": tendv1.GroupVersion.String(), "kind": "Source",
		"metadata": map[string]any{"name": "tend", "namespace": ns},
		"spec": map[string]any{
			"git":      map[string]any{"url": o.Repo, "ref": map[string]any{"branch": o.Branch}},
			"interval": o.Interval.String(),
		},
	}}
	if o.SecretName != "" {
		_ = unstructured.SetNestedField(src.Object, o.SecretName, "spec", "git", "secretRef", "name")
	}
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": tendv1.GroupVersion.String(), "kind": "App",
		"metadata": map[string]any{"name": "tend", "namespace": ns},
		"spec": map[string]any{
			"sourceRef":   map[string]any{"name": "tend"},
			"path":        o.Path,
			"recursive":   true,
			"destination": map[string]any{"namespace": ns},
			"sync":        map[string]any{"prune": true, "selfHeal": true},
		},
	}}
	if o.AgeKey != "" {
		_ = unstructured.SetNestedField(app.Object, "sops-age", "spec", "decryption", "secretRef", "name")
	}
	for _, obj := range []*unstructured.Unstructured{src, app} {
		if err := bootstrapApply(ctx, dyn, mapper, obj); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "► Source %s/tend follows %s (%s); App %s/tend applies %s, tend included\n", ns, o.Repo, o.Branch, ns, o.Path)
	if o.LocalController {
		fmt.Fprintf(out, "► local-controller mode: no controller runs in the cluster; run `tend controller` against it\n")
	} else {
		fmt.Fprintf(out, "► the controller runs as Deployment %s/tend\n", ns)
	}
	return nil
}

// withoutController drops the controller's Deployment and Service.
func withoutController(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if k := o.GetKind(); k == "Deployment" || k == "Service" {
			continue
		}
		out = append(out, o)
	}
	return out
}

func renderManifests(objs []*unstructured.Unstructured) ([]byte, error) {
	var b strings.Builder
	b.WriteString("# tend's own install, written by `tend bootstrap`. tend applies it from git:\n# upgrade tend by changing it here.\n")
	for _, o := range objs {
		y, err := bootstrapYAML(o)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String()), nil
}

// bootstrapApply server-side applies o as field manager tend (the same
// manager the App "tend" uses later, so it adopts these objects without a
// conflict), retrying while discovery learns a just-created CRD's kind.
func bootstrapApply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	name := gvk.Kind + " " + o.GetName()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			if meta.IsNoMatchError(err) && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			return fmt.Errorf("apply %s: %w", name, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "tend", Force: true}); err != nil {
			return fmt.Errorf("apply %s: %w", name, err)
		}
		return nil
	}
}

// dynamicClients returns a dynamic client and a REST mapper for cfg.
func dynamicClients(cfg *rest.Config) (dynamic.Interface, meta.RESTMapper, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, nil, bootstrapUnreachable(cfg, err)
	}
	return dyn, mapper, nil
}

// bootstrapUnreachable turns a connection failure into one line.
func bootstrapUnreachable(cfg *rest.Config, err error) error {
	var ne net.Error
	if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") {
		return fmt.Errorf("cannot reach the cluster at %s: %v", cfg.Host, rootCause(err))
	}
	return err
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func bootstrapYAML(o *unstructured.Unstructured) ([]byte, error) { return sigsyaml.Marshal(o.Object) }

func normalizeRepo(u string) string {
	u = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(u), "/"), ".git")
	return strings.ToLower(u)
}

// waitCRDs waits until the CRDs among objs are Established.
func waitCRDs(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	gvr := apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	deadline := time.Now().Add(time.Minute)
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		for {
			crd, err := dyn.Resource(gvr).Get(ctx, o.GetName(), metav1.GetOptions{})
			if err == nil {
				var c apiextv1.CustomResourceDefinition
				if runtime.DefaultUnstructuredConverter.FromUnstructured(crd.Object, &c) == nil && established(&c) {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not Established after a minute", o.GetName())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func established(c *apiextv1.CustomResourceDefinition) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextv1.Established && cond.Status == apiextv1.ConditionTrue {
			return true
		}
	}
	return false
}

// writeToRepo clones the repository, writes file, and commits and pushes it
// when it changed. It reports whether it pushed.
func writeToRepo(ctx context.Context, o bootstrapOptions, file string, content []byte) (bool, error) {
	dir, err := os.MkdirTemp("", "tend-bootstrap-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		b, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(string(b)))
		}
		return string(b), nil
	}
	if _, err := git("clone", "--quiet", "--depth", "1", "--branch", o.Branch, o.Repo, "."); err != nil {
		return false, fmt.Errorf("clone %s (branch %s) to write tend's manifests: %w", o.Repo, o.Branch, err)
	}
	full := filepath.Join(dir, filepath.FromSlash(file))
	if old, err := os.ReadFile(full); err == nil && string(old) == string(content) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return false, err
	}
	if err := os.WriteFile(full, content, 0o644); err != nil {
		return false, err
	}
	if _, err := git("add", file); err != nil {
		return false, err
	}
	if _, err := git("-c", "user.name=tend bootstrap", "-c", "user.email=tend@localhost", "commit", "--quiet", "-m", "tend: install manifests"); err != nil {
		return false, err
	}
	if _, err := git("push", "--quiet", "origin", "HEAD:"+o.Branch); err != nil {
		return false, fmt.Errorf("push tend's manifests to %s: %w (bootstrap needs write access to the repository)", o.Repo, err)
	}
	return true, nil
}
