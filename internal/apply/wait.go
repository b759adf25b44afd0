package apply

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/health"
)

// waitHealthy waits until every object is Healthy in the watch cache. A
// Degraded object fails the wait at once; the timeout fails it with the
// objects still not healthy.
func (s *syncRun) waitHealthy(ctx context.Context, step string, objs []*unstructured.Unstructured) error {
	deadline := time.Now().Add(s.req.HealthTimeout)
	checker := s.req.Health
	if checker == nil {
		checker = s.e.Health
	}
	for {
		var pending []string
		for _, o := range objs {
			live, ok := s.e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
			if !ok {
				pending = append(pending, describe(o)+": not yet in the cluster")
				continue
			}
			if slices.Contains(s.req.Owners, live.GetUID()) {
				continue // it owns the App: its health is the App's
			}
			r := checker.Check(live)
			switch r.State {
			case health.Healthy:
			case health.Degraded:
				return fmt.Errorf("%s is Degraded: %s", describe(o), r.Message)
			default:
				pending = append(pending, fmt.Sprintf("%s is %s: %s", describe(o), r.State, r.Message))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(pending)
			return fmt.Errorf("not healthy after %s: %s", s.req.HealthTimeout, strings.Join(pending, "; "))
		}
		if err := s.pause(ctx); err != nil {
			return err
		}
	}
}

// waitServed waits until discovery serves every kind in objs, after the
// step that created CRDs.
func (s *syncRun) waitServed(ctx context.Context, objs []*unstructured.Unstructured) error {
	deadline := time.Now().Add(s.req.HealthTimeout)
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		for {
			_, err := s.e.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err == nil {
				break
			}
			if !meta.IsNoMatchError(err) {
				return fmt.Errorf("discover %s: %w", gvk, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the cluster does not serve %s after %s; check the CRD's group, versions and served flag", gvk, s.req.HealthTimeout)
			}
			if err := s.pause(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}
