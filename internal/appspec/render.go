package appspec

import (
	"context"
	"encoding/json"
	"fmt"
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

// RenderOptions builds the render options of an App from its spec and what
// it references (values from Secrets and ConfigMaps, chart repository
// credentials, SOPS keys), as the controller renders it; `tend render` and
// `tend diff` use it too. Secrets it reads end up only in the options, never
// in status or logs. Errors the user must fix satisfy objstatus.IsPermanent.
func RenderOptions(ctx context.Context, c client.Reader, app *tendv1.App, src *tendv1.Source) (render.Options, error) {
	r := &optionsReader{Client: c}
	opts := render.Options{
		Path:      app.Spec.Path,
		Namespace: app.Spec.Destination.Namespace,
		Recursive: app.Spec.Recursive,
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
	chartSource := src.Spec.Helm != nil || src.Spec.OCI != nil
	if chartSource && app.Spec.Chart == nil {
		return opts, objstatus.Permanentf("Source %s is a chart repository: set spec.chart.name", src.Name)
	}
	if !chartSource && app.Spec.Chart != nil {
		return opts, objstatus.Permanentf("spec.chart is set but Source %s is a git repository; use spec.path to name a chart directory", src.Name)
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
type optionsReader struct{ Client client.Reader }

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
	default:
		return nil, objstatus.Permanentf("kind %q: want Secret or ConfigMap", ref.Kind)
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
	return vals, nil
}

// decryptionKeys reads SOPS keys from a Secret: keys ending in .agekey hold
// age identities (one or more lines), .asc armored OpenPGP private keys.
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
		case strings.HasSuffix(k, ".agekey"):
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
		return nil, objstatus.Permanentf("the Secret %s/%s has no key ending in .agekey (age identities) or .asc (OpenPGP private key)", ns, name)
	}
	return keys, nil
}
