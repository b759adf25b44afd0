package compat

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
)

// AdoptFromRef is the value of tendv1.AnnotationAdoptFrom naming obj:
// "<Kind>.<group>/<namespace>/<name>".
func AdoptFromRef(gvk schema.GroupVersionKind, namespace, name string) string {
	return gvk.Kind + "." + gvk.Group + "/" + namespace + "/" + name
}

// AdoptedFrom reads the Argo CD Application or Flux Kustomization or
// HelmRelease that ref (tendv1.AnnotationAdoptFrom's value on app) names
// and returns what it recorded as applied, by API version, as the App's
// first inventory would hold it: Argo CD's status.resources, Flux's
// status.inventory, or the objects of the newest Helm release. found is
// false when the object, or its kind's CRD, is not in the cluster, or c
// may not read it. c must
// read unstructured objects and Secrets from the apiserver.
func AdoptedFrom(ctx context.Context, c client.Reader, ref string, app *tendv1.App) (refs map[apply.ObjectRef]string, found bool, err error) {
	k, key, err := adoptFromKind(ref)
	if err != nil {
		return nil, false, err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(k.gvk)
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || apierrors.IsForbidden(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading %s %s (annotation %s): %w", k.gvk.Kind, key, tendv1.AnnotationAdoptFrom, err)
	}
	refs, err = k.adopted(ctx, c, obj, app)
	return refs, true, err
}

// AdoptFromError says why a tendv1.AnnotationAdoptFrom value cannot be
// read: only a change to the annotation helps.
type AdoptFromError struct{ Ref, Why string }

func (e *AdoptFromError) Error() string {
	return fmt.Sprintf("annotation %s %q: %s", tendv1.AnnotationAdoptFrom, e.Ref, e.Why)
}

// adoptFromKind parses ref into the kind it names and the object's key.
func adoptFromKind(ref string) (*kind, client.ObjectKey, error) {
	parts := strings.Split(ref, "/")
	bad := func(why string) (*kind, client.ObjectKey, error) {
		return nil, client.ObjectKey{}, &AdoptFromError{Ref: ref, Why: why}
	}
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return bad(`want "<Kind>.<group>/<namespace>/<name>", e.g. Application.argoproj.io/argocd/web`)
	}
	kindName, group, _ := strings.Cut(parts[0], ".")
	ks, _ := kindsOf([]string{Argo, Flux})
	for _, k := range ks {
		if k.adopted != nil && k.gvk.Kind == kindName && k.gvk.Group == group {
			return k, client.ObjectKey{Namespace: parts[1], Name: parts[2]}, nil
		}
	}
	return bad("tend adopts the objects of an Argo CD Application or a Flux Kustomization or HelmRelease")
}

// Seed fills the empty inventory inv with refs, each marked adopted
// (apply.AdoptedDesired): objects tend did not apply but takes over, and
// prunes once they leave git.
func Seed(inv *apply.Inventory, refs map[apply.ObjectRef]string) {
	for obj, version := range refs {
		inv.Entries[obj] = apply.Entry{Version: version, Desired: apply.AdoptedDesired}
	}
}
