package render

import (
	"errors"
	"fmt"
	"path"
	"sort"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// DiscoverCluster describes the cluster at cfg for Helm rendering: its
// version and every served "group/version" and "group/version/Kind" (as
// Helm's own install does), with cfg for lookup. Groups whose discovery
// fails (an unavailable aggregated API) are left out rather than failing.
func DiscoverCluster(cfg *rest.Config) (*Cluster, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client for %s: %w", cfg.Host, err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("server version of %s: %w", cfg.Host, err)
	}
	groups, resources, err := dc.ServerGroupsAndResources()
	if err != nil {
		var partial *discovery.ErrGroupDiscoveryFailed
		if !errors.As(err, &partial) {
			return nil, fmt.Errorf("API discovery on %s: %w", cfg.Host, err)
		}
	}
	seen := map[string]struct{}{}
	var versions []string
	add := func(s string) {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			versions = append(versions, s)
		}
	}
	for _, g := range groups {
		for _, gv := range g.Versions {
			add(gv.GroupVersion)
		}
	}
	for _, rl := range resources {
		for _, r := range rl.APIResources {
			add(path.Join(rl.GroupVersion, r.Kind))
		}
	}
	// Discovery answers in no fixed order; the versions are part of the
	// render cache key, so they must be.
	sort.Strings(versions)
	return &Cluster{KubeVersion: v.GitVersion, APIVersions: versions, Config: cfg}, nil
}
