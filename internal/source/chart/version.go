package chart

import (
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// maxListed is how many available versions an error message lists.
const maxListed = 8

// exactVersion returns the version v names when it is a single version
// rather than a range ("1.2.3", "v1.2.3", "=1.2.3"), and false otherwise.
func exactVersion(v string) (*semver.Version, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(strings.TrimPrefix(v, "="), "v")
	sv, err := semver.StrictNewVersion(v)
	if err != nil {
		return nil, false
	}
	return sv, true
}

// pickVersion returns the highest of versions matching want: an exact
// version, a semver range, or "" for the highest stable version. Versions
// that are not semver match only an identical string. ok is false when
// none matches; err is set when want is not a valid range.
func pickVersion(versions []string, want string) (picked string, ok bool, err error) {
	want = strings.TrimSpace(want)
	for _, v := range versions {
		if want != "" && v == want {
			return v, true, nil
		}
	}
	rng := want
	if rng == "" {
		rng = ">=0.0.0"
	}
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "", false, fmt.Errorf("version %q is neither a version nor a semver range (e.g. 1.2.3, ^1.2, >=1.0.0 <2.0.0): %w", want, err)
	}
	var (
		best    *semver.Version
		bestRaw string
	)
	for _, v := range versions {
		sv, err := semver.NewVersion(v)
		if err != nil || !c.Check(sv) {
			continue
		}
		if best == nil || sv.GreaterThan(best) {
			best, bestRaw = sv, v
		}
	}
	if best == nil {
		return "", false, nil
	}
	return bestRaw, true, nil
}

// describeVersions lists the highest few of versions, newest first, for an
// error message.
func describeVersions(versions []string) string {
	if len(versions) == 0 {
		return "it has no versions"
	}
	sorted := append([]string(nil), versions...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, errA := semver.NewVersion(sorted[i])
		b, errB := semver.NewVersion(sorted[j])
		switch {
		case errA == nil && errB == nil:
			return a.GreaterThan(b)
		case errA == nil:
			return true
		case errB == nil:
			return false
		}
		return sorted[i] > sorted[j]
	})
	s := "available: " + strings.Join(sorted[:min(len(sorted), maxListed)], ", ")
	if n := len(sorted) - maxListed; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return s
}

// notFoundVersion is the error for a chart with no version matching want.
func notFoundVersion(repo, name, want string, versions []string) error {
	w := want
	if w == "" {
		w = "latest stable"
	}
	return mark(fmt.Errorf("chart %q has no version matching %q in %s (%s); check the App's chart version",
		name, w, repo, describeVersions(versions)), ErrNotFound)
}
