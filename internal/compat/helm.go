package compat

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
)

// helmReleaseObjects are the objects of the release helm-controller (or
// the Helm CLI) installed for a HelmRelease: the manifest of its newest
// release Secret (sh.helm.release.v1.<release>.v<n>, in the HelmRelease's
// namespace, where helm-controller stores it). A release there makes the
// App's first sync an upgrade: pre-upgrade hooks run, not pre-install.
func helmReleaseObjects(ctx context.Context, c client.Reader, obj *unstructured.Unstructured, app *tendv1.App) (map[apply.ObjectRef]string, error) {
	release := app.Name
	if app.Spec.Helm != nil && app.Spec.Helm.ReleaseName != "" {
		release = app.Spec.Helm.ReleaseName
	}
	var list corev1.SecretList
	if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingLabels{"owner": "helm", "name": release}); err != nil {
		return nil, fmt.Errorf("listing the Helm release Secrets of %s: %w", release, err)
	}
	var newest *corev1.Secret
	version := 0
	for i := range list.Items {
		v, err := strconv.Atoi(list.Items[i].Labels["version"])
		if err == nil && v > version && list.Items[i].Type == "helm.sh/release.v1" {
			newest, version = &list.Items[i], v
		}
	}
	if newest == nil {
		return nil, nil
	}
	manifest, relNS, err := decodeHelmRelease(newest.Data["release"])
	if err != nil {
		return nil, fmt.Errorf("helm release Secret %s/%s: %w", newest.Namespace, newest.Name, err)
	}
	if app.Spec.Destination.Namespace != "" {
		relNS = app.Spec.Destination.Namespace
	}
	var mapper meta.RESTMapper
	if m, ok := c.(interface{ RESTMapper() meta.RESTMapper }); ok {
		mapper = m.RESTMapper()
	}
	out := map[apply.ObjectRef]string{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(manifest)), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("helm release Secret %s/%s: its manifest: %w", newest.Namespace, newest.Name, err)
		}
		if u.Object == nil || u.GetKind() == "" || u.GetName() == "" {
			continue
		}
		gvk := u.GroupVersionKind()
		ns := u.GetNamespace()
		if ns == "" {
			ns = relNS
			if mapper != nil {
				if m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil && m.Scope.Name() == meta.RESTScopeNameRoot {
					ns = ""
				}
			}
		}
		out[apply.ObjectRef{Group: gvk.Group, Kind: gvk.Kind, Namespace: ns, Name: u.GetName()}] = gvk.Version
	}
	return out, nil
}

// decodeHelmRelease reads the manifest and namespace of a release as Helm
// stores it in a Secret: base64 of gzipped JSON.
func decodeHelmRelease(data []byte) (manifest, namespace string, err error) {
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return "", "", err
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return "", "", err
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return "", "", err
		}
	}
	var rel struct {
		Manifest  string `json:"manifest"`
		Namespace string `json:"namespace"`
	}
	if err := json.Unmarshal(raw, &rel); err != nil {
		return "", "", err
	}
	return rel.Manifest, rel.Namespace, nil
}
