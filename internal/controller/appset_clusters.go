package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/project"
)

// This file is the clusters generator: one parameter set per Cluster of
// the AppSet's namespace, as Argo CD's cluster generator gives one per
// cluster Secret.

// Argo CD's name and server of the cluster it runs in, which a clusters
// generator without selector lists too.
const (
	appSetInClusterName   = project.InCluster
	appSetInClusterServer = "https://kubernetes.default.svc"
)

// appSetCluster is what a clusters generator reads of a Cluster.
type appSetCluster struct {
	name, server        string
	labels, annotations map[string]string
	// local is the cluster tend runs in (no Cluster object).
	local bool
}

// clusterParams returns one set per Cluster of namespace that c's selector
// selects, sorted by name, and the cluster tend runs in when there is no
// selector.
func (g appSetGenerator) clusterParams(namespace, at string, c *v1alpha1.ClustersGenerator) ([]appSetParams, error) {
	sel := labels.Everything()
	if c.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(c.Selector)
		if err != nil {
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.selector: %v", at, err)
		}
		sel = s
	}
	if g.clusters == nil {
		return nil, fmt.Errorf("%s: no reader of Clusters", at)
	}
	all, err := g.clusters(namespace)
	if err != nil {
		return nil, err
	}
	var picked []appSetCluster
	for _, cl := range all {
		if cl.name == appSetInClusterName && !cl.local {
			// The name means the cluster tend runs in (as in Project
			// destinations): a Cluster of that name replaces its set, and
			// a generated App naming it deploys there.
			cl.server = appSetInClusterServer
		}
		if sel.Matches(labels.Set(cl.labels)) {
			picked = append(picked, cl)
		}
	}
	empty := c.Selector == nil || (len(c.Selector.MatchLabels) == 0 && len(c.Selector.MatchExpressions) == 0)
	if empty && !slices.ContainsFunc(all, func(cl appSetCluster) bool { return cl.name == appSetInClusterName }) {
		picked = append(picked, appSetCluster{name: appSetInClusterName, server: appSetInClusterServer, local: true})
	}
	sort.Slice(picked, func(i, j int) bool { return picked[i].name < picked[j].name })

	out := make([]appSetParams, 0, len(picked))
	for _, cl := range picked {
		values := map[string]string{"name": cl.name, "nameNormalized": appSetNormalize(cl.name), "server": cl.server}
		metaLabels, metaAnnotations := map[string]any{}, map[string]any{}
		for k, v := range cl.labels {
			values["metadata.labels."+k] = v
			metaLabels[k] = v
		}
		for k, v := range cl.annotations {
			values["metadata.annotations."+k] = v
			metaAnnotations[k] = v
		}
		tree := map[string]any{"name": cl.name, "nameNormalized": appSetNormalize(cl.name), "server": cl.server,
			"metadata": map[string]any{"labels": metaLabels, "annotations": metaAnnotations}}
		origin := "cluster " + cl.name
		if cl.local {
			origin = "cluster " + cl.name + " (the cluster tend runs in)"
		}
		// Values are templates over the cluster's parameters (not over each
		// other), as in Argo CD.
		s := &appSetSubstituter{values: values, unknown: map[string]struct{}{}, goTemplate: g.goTemplate, tree: tree, options: g.options}
		if s.goTemplate {
			if err := appSetTemplateOptions(s.options); err != nil {
				return nil, err
			}
		}
		treeValues := map[string]any{}
		rendered := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(c.Values)) {
			rendered[k] = s.replace(c.Values[k])
		}
		if s.err != nil {
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.values for %s: %v", at, origin, s.err)
		}
		if len(s.unknown) > 0 {
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.values for %s use unknown parameter %s; a cluster has name, nameNormalized, server, metadata.labels.<key> and metadata.annotations.<key>",
				at, origin, strings.Join(slices.Sorted(maps.Keys(s.unknown)), ", "))
		}
		for k, v := range rendered {
			values["values."+k] = v
			treeValues[k] = v
		}
		tree["values"] = treeValues
		out = append(out, appSetParams{origin: origin, values: values, tree: tree})
	}
	return out, nil
}

// appSetServers remembers the API server URL of each Cluster's kubeconfig,
// so that a reconcile reads a Cluster's Secret only when the Cluster
// changed (Secrets are not cached: tend never watches all of them).
type appSetServers struct {
	mu sync.Mutex
	m  map[types.NamespacedName]appSetServer
}

// forget drops the servers of the Clusters of namespace not in live.
func (s *appSetServers) forget(namespace string, live []v1alpha1.Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.m {
		if key.Namespace == namespace && !slices.ContainsFunc(live, func(cl v1alpha1.Cluster) bool { return cl.Name == key.Name }) {
			delete(s.m, key)
		}
	}
}

type appSetServer struct {
	uid             types.UID
	resourceVersion string
	server          string
}

// listClusters returns the Clusters of namespace for a clusters generator,
// with their servers. A Cluster being deleted is left out.
func (r *AppSetReconciler) listClusters(ctx context.Context, namespace string) ([]appSetCluster, error) {
	var list v1alpha1.ClusterList
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list Clusters in namespace %s: %w", namespace, err)
	}
	r.servers.forget(namespace, list.Items)
	out := make([]appSetCluster, 0, len(list.Items))
	for i := range list.Items {
		cl := &list.Items[i]
		if !cl.DeletionTimestamp.IsZero() {
			continue
		}
		server, err := r.clusterServer(ctx, cl)
		if err != nil {
			return nil, err
		}
		out = append(out, appSetCluster{name: cl.Name, server: server, labels: cl.Labels, annotations: cl.Annotations})
	}
	return out, nil
}

// clusterServer returns the API server URL of cl's kubeconfig (or of its
// Argo CD cluster Secret), "" when the Secret is missing, unreadable or
// invalid: the Cluster's Ready condition says why, and its Apps fail.
func (r *AppSetReconciler) clusterServer(ctx context.Context, cl *v1alpha1.Cluster) (string, error) {
	key := types.NamespacedName{Namespace: cl.Namespace, Name: cl.Name}
	r.servers.mu.Lock()
	known, ok := r.servers.m[key]
	r.servers.mu.Unlock()
	if ok && known.uid == cl.UID && known.resourceVersion == cl.ResourceVersion {
		return known.server, nil
	}
	server := ""
	if ref := cl.Spec.KubeconfigSecretRef; ref.Name != "" {
		var sec corev1.Secret
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: ref.Name}, &sec)
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		case err != nil:
			return "", fmt.Errorf("read kubeconfig Secret %s/%s of Cluster %s: %w", cl.Namespace, ref.Name, cl.Name, err)
		default:
			if cfg, _, err := cluster.ConfigFromSecret(&sec, ref); err == nil {
				server = cfg.Host
			}
		}
	}
	r.servers.mu.Lock()
	if r.servers.m == nil {
		r.servers.m = map[types.NamespacedName]appSetServer{}
	}
	r.servers.m[key] = appSetServer{uid: cl.UID, resourceVersion: cl.ResourceVersion, server: server}
	r.servers.mu.Unlock()
	return server, nil
}

// appSetsForCluster maps a changed Cluster to the AppSets of its namespace
// with a clusters generator.
func (r *AppSetReconciler) appSetsForCluster(ctx context.Context, obj client.Object) []reconcile.Request {
	var sets v1alpha1.AppSetList
	if err := r.Client.List(ctx, &sets, client.InNamespace(obj.GetNamespace())); err != nil {
		r.log().Error("list AppSets for a changed Cluster", "cluster", obj.GetNamespace()+"/"+obj.GetName(), "error", err)
		return nil
	}
	var out []reconcile.Request
	for i := range sets.Items {
		if appSetReadsClusters(&sets.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: sets.Items[i].Namespace, Name: sets.Items[i].Name}})
		}
	}
	return out
}
