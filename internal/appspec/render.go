package appspec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/chart"
)

// SourceFiles reads files of git Sources other than the one an App renders
// (spec.helm.valuesFrom kind Source): the controller from the artifacts
// it fetched, the CLI from checkouts of its own.
type SourceFiles interface {
	// ReadFile returns the file at name (slash-separated, relative to the
	// repository root) in the Source's current revision, and the revision.
	// A file that does not exist is an error satisfying
	// errors.Is(err, fs.ErrNotExist); a Source that has fetched nothing
	// yet, ErrSourceNotReady.
	ReadFile(ctx context.Context, src *tendv1.Source, name string) (data []byte, revision string, err error)
}

// ErrSourceNotReady says a Source has no revision to read yet: wait for it.
var ErrSourceNotReady = errors.New("the Source has not fetched a revision yet")

// RenderOptions builds the render options of an App from its spec and what
// it references (values from Secrets, ConfigMaps and other Sources' files,
// chart repository credentials, SOPS keys), as the controller renders it;
// `tend render` and `tend diff` use it too. Secrets it reads end up only in
// the options, never in status or logs. Errors the user must fix satisfy
// objstatus.IsPermanent; a values Source not fetched yet is
// ErrSourceNotReady. files may be nil when no valuesFrom names a Source.
func RenderOptions(ctx context.Context, c client.Reader, files SourceFiles, app *tendv1.App, src *tendv1.Source) (render.Options, error) {
	r := &optionsReader{Client: c, files: files}
	opts := render.Options{
		Path:      app.Spec.Path,
		Namespace: app.Spec.Destination.Namespace,
		Recursive: app.Spec.Recursive,
		Include:   app.Spec.Include,
		Exclude:   app.Spec.Exclude,
	}
	if opts.Namespace == "" {
		opts.Namespace = app.Namespace
	}
	if app.Spec.Kustomize != nil {
		opts.AllowRemoteBases = app.Spec.Kustomize.AllowRemoteBases
		ov, err := Overlay(app.Spec.Kustomize)
		if err != nil {
			return opts, err
		}
		opts.Overlay = ov
	}
	chartSource := src.Spec.ChartRegistry()
	if chartSource && app.Spec.Chart == nil {
		return opts, objstatus.Permanentf("Source %s is a chart repository: set spec.chart.name", src.Name)
	}
	if !chartSource && app.Spec.Chart != nil {
		what := "a git repository"
		if src.Spec.OCIArtifact() {
			what = "an OCI artifact (spec.oci.ref)"
		}
		return opts, objstatus.Permanentf("spec.chart is set but Source %s is %s; use spec.path to name a chart directory", src.Name, what)
	}
	if app.Spec.Helm != nil || app.Spec.Chart != nil {
		h := &render.HelmOptions{ReleaseName: app.Name}
		if hs := app.Spec.Helm; hs != nil {
			if hs.ReleaseName != "" {
				h.ReleaseName = hs.ReleaseName
			}
			h.ValuesFiles = hs.ValuesFiles
			if hs.Values != nil && len(hs.Values.Raw) > 0 {
				if err := json.Unmarshal(hs.Values.Raw, &h.Values); err != nil {
					return opts, objstatus.Permanentf("spec.helm.values: %v", err)
				}
			}
			for i, ref := range hs.ValuesFrom {
				vals, err := r.valuesFrom(ctx, app.Namespace, ref)
				if err != nil {
					return opts, fieldError(fmt.Sprintf("spec.helm.valuesFrom[%d]", i), err)
				}
				if vals != nil {
					h.ValuesFrom = append(h.ValuesFrom, vals)
				}
			}
		}
		if app.Spec.Chart != nil {
			ref := &render.ChartRef{Name: app.Spec.Chart.Name, Version: app.Spec.Chart.Version}
			var secret *tendv1.LocalObjectReference
			if src.Spec.Helm != nil {
				ref.RepoURL, secret = src.Spec.Helm.URL, src.Spec.Helm.SecretRef
			} else {
				// spec.oci.insecure: plain HTTP, as the Source controller checks.
				ref.RepoURL, secret = chart.OCIURL(src.Spec.OCI.URL, src.Spec.OCI.Insecure), src.Spec.OCI.SecretRef
			}
			if secret != nil {
				sec, err := r.secret(ctx, src.Namespace, secret.Name)
				if err != nil {
					return opts, fieldError("Source "+src.Name+" credentials", err)
				}
				ref.Username, ref.Password = string(sec.Data["username"]), string(sec.Data["password"])
				if src.Spec.OCI != nil {
					// Also a .dockerconfigjson, as Flux's OCI repositories read.
					if ref.Username, ref.Password, err = chart.SecretCredentials(sec.Data, chart.OCIHost(src.Spec.OCI.URL)); err != nil {
						return opts, objstatus.Permanentf("Source %s credentials: Secret %s/%s: %v", src.Name, src.Namespace, secret.Name, err)
					}
				}
			}
			h.Chart = ref
		}
		opts.Helm = h
	} else {
		// A chart directory in git needs no spec.helm: its release is
		// named after the App, as docs/api.md says.
		opts.Helm = &render.HelmOptions{ReleaseName: app.Name}
	}
	if pb := app.Spec.PostBuild; pb != nil {
		p, err := r.postBuild(ctx, app.Namespace, pb)
		if err != nil {
			return opts, err
		}
		opts.PostBuild = p
	}
	if d := app.Spec.Decryption; d != nil {
		keys, err := r.decryptionKeys(ctx, app.Namespace, d.SecretRef.Name)
		if err != nil {
			return opts, fieldError("spec.decryption", err)
		}
		opts.Keys = keys
	}
	return opts, nil
}

// fieldError names the field err came from; it stays permanent if it
// was, else it is a failure to read (the apiserver did not answer),
// which a retry fixes.
func fieldError(field string, err error) error {
	if objstatus.IsPermanent(err) {
		return objstatus.Permanentf("%s: %v", field, err)
	}
	return fmt.Errorf("%s: %w", field, err)
}

// optionsReader reads what RenderOptions needs.
type optionsReader struct {
	Client client.Reader
	files  SourceFiles
}

// sourceFile reads a values file from a git Source of the App's namespace.
// A missing Source or file is permanent (or nothing, when optional).
func (r *optionsReader) sourceFile(ctx context.Context, ns string, ref tendv1.ValuesReference, key string) ([]byte, error) {
	if strings.HasPrefix(key, "/") || slices.Contains(strings.Split(key, "/"), "..") {
		return nil, objstatus.Permanentf("key %q: a Source's file is named by a path relative to the repository root, without ..", key)
	}
	var src tendv1.Source
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &src); err != nil {
		switch {
		case ref.Optional && apierrors.IsNotFound(err):
			return nil, nil
		case apierrors.IsNotFound(err):
			return nil, objstatus.Permanentf("the Source %s/%s was not found", ns, ref.Name)
		}
		return nil, fmt.Errorf("reading the Source %s/%s: %w", ns, ref.Name, err)
	}
	if src.Spec.ChartRegistry() {
		return nil, objstatus.Permanentf("the Source %s/%s is a chart repository; values files are read from git Sources and OCI artifacts", ns, ref.Name)
	}
	if r.files == nil {
		return nil, objstatus.Permanentf("values from the Source %s/%s cannot be read here", ns, ref.Name)
	}
	data, rev, err := r.files.ReadFile(ctx, &src, key)
	switch {
	case errors.Is(err, ErrSourceNotReady):
		return nil, fmt.Errorf("the Source %s/%s: %w", ns, ref.Name, err)
	case errors.Is(err, fs.ErrNotExist) && ref.Optional:
		return nil, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, objstatus.Permanentf("the Source %s/%s has no file %q at %s", ns, ref.Name, key, shortRevision(rev))
	case err != nil:
		return nil, fmt.Errorf("the Source %s/%s file %q: %w", ns, ref.Name, key, err)
	}
	return data, nil
}

func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func (r *optionsReader) secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var sec corev1.Secret
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("the Secret %s/%s was not found", ns, name)
		}
		return nil, err
	}
	return &sec, nil
}

// valuesFrom reads Helm values from a Secret or ConfigMap key.
func (r *optionsReader) valuesFrom(ctx context.Context, ns string, ref tendv1.ValuesReference) (map[string]any, error) {
	key := ref.Key
	if key == "" {
		key = "values.yaml"
	}
	var data []byte
	switch ref.Kind {
	case "Secret":
		sec, err := r.secret(ctx, ns, ref.Name)
		if err != nil {
			if ref.Optional {
				return nil, nil
			}
			return nil, err
		}
		b, ok := sec.Data[key]
		if !ok {
			if ref.Optional {
				return nil, nil
			}
			return nil, objstatus.Permanentf("the Secret %s/%s has no key %q", ns, ref.Name, key)
		}
		data = b
	case "ConfigMap":
		var cm corev1.ConfigMap
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &cm); err != nil {
			switch {
			case ref.Optional && apierrors.IsNotFound(err):
				return nil, nil
			case apierrors.IsNotFound(err):
				return nil, objstatus.Permanentf("the ConfigMap %s/%s was not found", ns, ref.Name)
			}
			return nil, fmt.Errorf("ConfigMap %s/%s: %w", ns, ref.Name, err)
		}
		s, ok := cm.Data[key]
		if !ok {
			if ref.Optional {
				return nil, nil
			}
			return nil, objstatus.Permanentf("ConfigMap %s/%s has no key %q", ns, ref.Name, key)
		}
		data = []byte(s)
	case "Source":
		if ref.Key == "" {
			key = "values.yaml"
		}
		b, err := r.sourceFile(ctx, ns, ref, key)
		if err != nil || b == nil {
			return nil, err
		}
		data = b
	default:
		return nil, objstatus.Permanentf("kind %q: want Secret, ConfigMap or Source", ref.Kind)
	}
	vals := map[string]any{}
	if ref.TargetPath != "" {
		// One value at a path, as Helm's --set (and Flux's targetPath):
		// commas in the value do not split it.
		value := strings.ReplaceAll(strings.ReplaceAll(strings.TrimRight(string(data), "\n"), "\\", "\\\\"), ",", "\\,")
		if err := strvals.ParseInto(ref.TargetPath+"="+value, vals); err != nil {
			// The error may quote the value; name the path only.
			return nil, objstatus.Permanentf("targetPath %q is not a Helm --set path (e.g. auth.password, hosts[0])", ref.TargetPath)
		}
		return vals, nil
	}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		// The error may quote the content; keep only the position.
		return nil, objstatus.Permanentf("%s %s/%s key %q is not a YAML map of values", ref.Kind, ns, ref.Name, key)
	}
	if sops, ok := vals["sops"].(map[string]any); ok && sops["mac"] != nil {
		return nil, objstatus.Permanentf("%s %s/%s key %q is SOPS-encrypted; tend decrypts values files only in the App's own Source (spec.helm.valuesFiles with spec.decryption)", ref.Kind, ns, ref.Name, key)
	}
	return vals, nil
}

// decryptionKeys reads SOPS keys from a Secret: keys ending in .agekey, and
// keys.txt (sops's own name for its age key file, as Argo CD teams mount
// it into the repo-server), hold age identities (one or more lines), .asc
// armored OpenPGP private keys.
func (r *optionsReader) decryptionKeys(ctx context.Context, ns, name string) (*render.Keys, error) {
	sec, err := r.secret(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	keys := &render.Keys{}
	names := make([]string, 0, len(sec.Data))
	for k := range sec.Data {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := sec.Data[k]
		switch {
		case strings.HasSuffix(k, ".agekey") || k == "keys.txt":
			for _, line := range strings.Split(string(v), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					keys.Age = append(keys.Age, line)
				}
			}
		case strings.HasSuffix(k, ".asc"):
			keys.PGP = append(keys.PGP, v)
		}
	}
	if len(keys.Age) == 0 && len(keys.PGP) == 0 {
		return nil, objstatus.Permanentf("the Secret %s/%s has no key ending in .agekey or keys.txt (age identities) or .asc (OpenPGP private key)", ns, name)
	}
	return keys, nil
}
