package promote

import (
	"fmt"
	"sort"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// State says in a few words how far a Stage's promotion got.
func State(s *tendv1.Stage) string {
	p := s.Status.Freight
	switch {
	case p == nil:
		return "nothing promoted"
	case p.PullRequest != nil && p.PullRequest.State == "open":
		return fmt.Sprintf("pull request #%d open", p.PullRequest.Number)
	case p.PullRequest != nil && p.PullRequest.State == "closed":
		return fmt.Sprintf("pull request #%d closed", p.PullRequest.Number)
	case p.Verification == tendv1.VerificationFailed:
		return "verification failed"
	case p.VerifiedAt != nil && p.HealthySince != nil:
		return "passed"
	case p.VerifiedAt != nil:
		return "passed, not Healthy now"
	case p.Verification == tendv1.VerificationRunning:
		return "verifying"
	}
	return "rolling out"
}

// SortPipeline sorts Stages by Warehouse, then upstream before
// downstream (by name among equals).
func SortPipeline(stages []tendv1.Stage) {
	depth := func(s *tendv1.Stage) int {
		byName := map[string]*tendv1.Stage{}
		for i := range stages {
			if stages[i].Namespace == s.Namespace {
				byName[stages[i].Name] = &stages[i]
			}
		}
		d := 0
		for cur := s; cur.Spec.Upstream != nil && d < len(stages); d++ {
			next, ok := byName[cur.Spec.Upstream.Stage]
			if !ok {
				d++
				break
			}
			cur = next
		}
		return d
	}
	depths := map[string]int{}
	for i := range stages {
		depths[stages[i].Namespace+"/"+stages[i].Name] = depth(&stages[i])
	}
	sort.SliceStable(stages, func(i, j int) bool {
		a, b := &stages[i], &stages[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Spec.Warehouse.Name != b.Spec.Warehouse.Name {
			return a.Spec.Warehouse.Name < b.Spec.Warehouse.Name
		}
		if da, db := depths[a.Namespace+"/"+a.Name], depths[b.Namespace+"/"+b.Name]; da != db {
			return da < db
		}
		return a.Name < b.Name
	})
}

// From says where a Stage takes its freight from: "warehouse", or its
// upstream Stage (and soak time).
func From(s *tendv1.Stage) string {
	if u := s.Spec.Upstream; u != nil {
		if u.Soak.Duration > 0 {
			return fmt.Sprintf("%s (soak %s)", u.Stage, u.Soak.Duration)
		}
		return u.Stage
	}
	return "warehouse"
}
