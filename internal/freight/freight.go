package freight

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart"
)

// ChartFetcher resolves a chart version range against a chart repository
// or OCI registry (chart.Fetcher, which keeps indexes and archives).
type ChartFetcher interface {
	FetchChart(ctx context.Context, repoURL, name, version string, auth *url.Userinfo) ([]byte, string, error)
}

// FindChart returns the version of the chart sub picks now.
func FindChart(ctx context.Context, f ChartFetcher, sub *tendv1.ChartSubscription, cred Credentials) (tendv1.FreightChart, error) {
	out := tendv1.FreightChart{RepoURL: sub.RepoURL, Name: sub.Name}
	var auth *url.Userinfo
	if cred.Username != "" || cred.Password != "" {
		auth = url.UserPassword(cred.Username, cred.Password)
	}
	repoURL := strings.TrimSuffix(sub.RepoURL, "/")
	if strings.HasPrefix(repoURL, "oci://") {
		repoURL = chart.OCIURL(repoURL, sub.Insecure)
	}
	_, version, err := f.FetchChart(ctx, repoURL, sub.Name, sub.Constraint, auth)
	switch {
	case errors.Is(err, chart.ErrNotFound):
		return out, &NoMatchError{err}
	case errors.Is(err, chart.ErrScheme) && !sub.Insecure:
		return out, invalid("%s speaks plain HTTP: set the subscription's insecure: true to reach it unencrypted, or serve it over HTTPS", sub.RepoURL)
	case errors.Is(err, chart.ErrScheme):
		return out, &InvalidError{err}
	case err != nil:
		return out, err
	}
	out.Version = version
	return out, nil
}

// Name names freight after its versions: the same versions, the same
// name (12 hex digits of a SHA-256 over them, their order included).
func Name(f *tendv1.Freight) string {
	b, _ := json.Marshal([]any{f.Images, f.Charts, f.Commits})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// Same says whether a and b hold the same versions.
func Same(a, b *tendv1.Freight) bool { return Name(a) == Name(b) }

// Describe is a short line naming freight's versions, for conditions and
// events: "web:1.2.0, chart web 1.3.0, platform@1a2b3c4d5e6f".
func Describe(f *tendv1.Freight) string {
	var parts []string
	for _, im := range f.Images {
		repo := im.Repository
		if i := strings.LastIndex(repo, "/"); i >= 0 {
			repo = repo[i+1:]
		}
		parts = append(parts, fmt.Sprintf("%s:%s", repo, im.Tag))
	}
	for _, c := range f.Charts {
		parts = append(parts, fmt.Sprintf("chart %s %s", c.Name, c.Version))
	}
	for _, c := range f.Commits {
		rev := c.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, c.Source+"@"+rev)
	}
	return strings.Join(parts, ", ")
}
