package render

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// clusterScoped lists the built-in kinds that are not namespaced, by
// group and kind (the version does not change a kind's scope).
var clusterScoped = map[schema.GroupKind]bool{
	{Group: "", Kind: "Namespace"}:                                                    true,
	{Group: "", Kind: "Node"}:                                                         true,
	{Group: "", Kind: "PersistentVolume"}:                                             true,
	{Group: "", Kind: "ComponentStatus"}:                                              true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                   true,
	{Group: "storage.k8s.io", Kind: "CSIDriver"}:                                      true,
	{Group: "storage.k8s.io", Kind: "CSINode"}:                                        true,
	{Group: "storage.k8s.io", Kind: "VolumeAttachment"}:                               true,
	{Group: "storage.k8s.io", Kind: "VolumeAttributesClass"}:                          true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                               true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                                true,
	{Group: "networking.k8s.io", Kind: "IPAddress"}:                                   true,
	{Group: "networking.k8s.io", Kind: "ServiceCIDR"}:                                 true,
	{Group: "node.k8s.io", Kind: "RuntimeClass"}:                                      true,
	{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:                 true,
	{Group: "certificates.k8s.io", Kind: "ClusterTrustBundle"}:                        true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "FlowSchema"}:                       true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "PriorityLevelConfiguration"}:       true,
	{Group: "resource.k8s.io", Kind: "DeviceClass"}:                                   true,
	{Group: "resource.k8s.io", Kind: "ResourceSlice"}:                                 true,
}

// scope answers whether a kind is namespaced for one render.
type scope func(gvk schema.GroupVersionKind) (namespaced, known bool)

// scopeOf returns the scope for a render of objs: CRDs among objs first,
// then r.Scope, then the built-in list.
func (r *Renderer) scopeOf(objs []*unstructured.Unstructured) scope {
	crds := map[schema.GroupKind]bool{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Group != "apiextensions.k8s.io" || gvk.Kind != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		s, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		if kind != "" {
			crds[schema.GroupKind{Group: group, Kind: kind}] = s != "Cluster"
		}
	}
	return func(gvk schema.GroupVersionKind) (bool, bool) {
		if ns, ok := crds[gvk.GroupKind()]; ok {
			return ns, true
		}
		if r != nil && r.Scope != nil {
			if ns, known := r.Scope(gvk); known {
				return ns, true
			}
		}
		if clusterScoped[gvk.GroupKind()] {
			return false, true
		}
		return true, false
	}
}

// setDefaultNamespace sets ns on namespaced objects that have none. Kinds
// whose scope is unknown are treated as namespaced.
func setDefaultNamespace(objs []*unstructured.Unstructured, ns string, sc scope) {
	if ns == "" {
		return
	}
	for _, o := range objs {
		if o.GetNamespace() != "" || o.GetKind() == "" {
			continue
		}
		if namespaced, _ := sc(o.GroupVersionKind()); namespaced {
			o.SetNamespace(ns)
		}
	}
}

// maxErrors bounds how many problems one validation reports.
const maxErrors = 10

// validate checks objs before anything is applied: every object has
// apiVersion, kind and metadata.name, cluster-scoped objects have no
// namespace, and no object appears twice. Each problem names the object and,
// when origin knows it, the file it came from.
func validate(objs []*unstructured.Unstructured, sc scope, origin func(*unstructured.Unstructured) string) error {
	type key struct {
		group, kind, namespace, name string
	}
	seen := make(map[key]*unstructured.Unstructured, len(objs))
	var errs []error
	more := 0
	add := func(err error) {
		if len(errs) < maxErrors {
			errs = append(errs, err)
		} else {
			more++
		}
	}
	for i, o := range objs {
		where := ""
		if p := origin(o); p != "" {
			where = " in " + p
		}
		gvk := o.GroupVersionKind()
		switch {
		case o.GetAPIVersion() == "" || gvk.Kind == "":
			add(fmt.Errorf("object %d (%s)%s has no apiVersion or kind; every manifest needs both", i+1, describe(o), where))
			continue
		case o.GetName() == "":
			msg := "add metadata.name"
			if o.GetGenerateName() != "" {
				msg = "metadata.generateName is not supported (tend applies with server-side apply, which needs a name); set metadata.name"
			}
			add(fmt.Errorf("%s%s has no metadata.name: %s", describe(o), where, msg))
			continue
		}
		if namespaced, known := sc(gvk); known && !namespaced && o.GetNamespace() != "" {
			add(fmt.Errorf("%s%s is cluster-scoped but sets metadata.namespace %q; remove the namespace", describe(o), where, o.GetNamespace()))
			continue
		}
		k := key{gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName()}
		if prev, dup := seen[k]; dup {
			first := origin(prev)
			switch {
			case first != "" && where != "":
				add(fmt.Errorf("%s is defined twice, in %s and%s; remove one", describe(o), first, where))
			case where != "":
				add(fmt.Errorf("%s is defined twice (again%s); remove one", describe(o), where))
			default:
				add(fmt.Errorf("%s is defined twice; remove one", describe(o)))
			}
			continue
		}
		seen[k] = o
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("and %d more problems", more))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid manifests: %w", errors.Join(errs...))
}

// describe names an object as "Kind namespace/name" (group-qualified for
// non-core groups), tolerating missing fields.
func describe(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	kind := gvk.Kind
	if kind == "" {
		kind = "<no kind>"
	}
	if gvk.Group != "" {
		kind += "." + gvk.Group
	}
	name := o.GetName()
	if name == "" {
		name = "<no name>"
	}
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return strings.TrimSpace(kind + " " + name)
}
