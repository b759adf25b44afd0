// Package freight finds the newest versions a Warehouse subscribes to:
// image tags in OCI registries (go-containerregistry), chart versions in
// chart repositories (the chart fetcher the App renders with) and commits
// of git Sources, and names each combination of them.
package freight

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// InvalidError is a subscription that cannot work as written: only a
// change of the Warehouse fixes it.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return &InvalidError{fmt.Errorf(format, args...)}
}

// NoMatchError says no tag or version matches the subscription yet: a
// later push may.
type NoMatchError struct{ Err error }

func (e *NoMatchError) Error() string { return e.Err.Error() }
func (e *NoMatchError) Unwrap() error { return e.Err }

// RateLimitedError says the registry asked tend to slow down (HTTP 429).
type RateLimitedError struct{ Repository string }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("the registry of %s limits requests (HTTP 429); checking again later", e.Repository)
}

// Credentials are a registry's username and password; zero for none.
type Credentials struct{ Username, Password string }

// Images finds the tag an image subscription picks. It keeps, per digest,
// when the image was built (NewestBuild reads each tag's config once), so
// a check of an unchanged repository costs a tag list and a HEAD per tag
// it considers. The zero value is ready; it is safe for concurrent use.
type Images struct {
	// Transport, when set, carries the requests (tests trust their TLS
	// registries with it).
	Transport http.RoundTripper

	mu      sync.Mutex
	created map[string]time.Time // by repository@digest
}

// Find returns the image sub picks now: its tag and the digest the tag
// names.
func (im *Images) Find(ctx context.Context, sub *tendv1.ImageSubscription, cred Credentials) (tendv1.FreightImage, error) {
	sel, err := compileSelector(sub)
	if err != nil {
		return tendv1.FreightImage{}, err
	}
	var opts []name.Option
	if sub.Insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(sub.Repository, opts...)
	if err != nil {
		return tendv1.FreightImage{}, invalid("repository %q is not an image repository (registry.example.com/team/web): %v", sub.Repository, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(authenticator(cred))}
	if im.Transport != nil {
		ropts = append(ropts, remote.WithTransport(im.Transport))
	}
	out := tendv1.FreightImage{Repository: sub.Repository}
	var tags []string
	if sub.Strategy == tendv1.StrategyDigest {
		tags = []string{sub.Constraint}
	} else {
		all, err := remote.List(repo, ropts...)
		if err != nil {
			return out, registryError(sub.Repository, "list the tags of", err)
		}
		tags = sel.filter(all)
	}
	if sub.Strategy == tendv1.StrategyNewestBuild {
		out.Tag, out.Digest, err = im.newestBuild(ctx, repo, tags, ropts)
		if err != nil {
			return out, err
		}
	} else {
		if out.Tag, err = sel.pick(tags); err != nil {
			return out, err
		}
		desc, err := remote.Head(repo.Tag(out.Tag), ropts...)
		if err != nil {
			if isNotFound(err) && sub.Strategy == tendv1.StrategyDigest {
				return out, &NoMatchError{fmt.Errorf("%s has no tag %q yet", sub.Repository, out.Tag)}
			}
			return out, registryError(sub.Repository, "read the digest of tag "+out.Tag+" of", err)
		}
		out.Digest = desc.Digest.String()
	}
	return out, nil
}

// newestBuild picks, of tags, the one whose image config says it was
// created last (ties: the higher tag).
func (im *Images) newestBuild(ctx context.Context, repo name.Repository, tags []string, ropts []remote.Option) (string, string, error) {
	if len(tags) == 0 {
		return "", "", &NoMatchError{fmt.Errorf("%s has no tag the subscription allows", repo)}
	}
	var (
		bestTag, bestDigest string
		best                time.Time
	)
	for _, tag := range tags {
		desc, err := remote.Head(repo.Tag(tag), ropts...)
		if err != nil {
			if isNotFound(err) {
				continue // deleted since the list
			}
			return "", "", registryError(repo.String(), "read the digest of tag "+tag+" of", err)
		}
		created, err := im.createdAt(repo, tag, desc.Digest.String(), ropts)
		if err != nil {
			return "", "", err
		}
		if bestTag == "" || created.After(best) || (created.Equal(best) && tag > bestTag) {
			bestTag, bestDigest, best = tag, desc.Digest.String(), created
		}
	}
	if bestTag == "" {
		return "", "", &NoMatchError{fmt.Errorf("%s has no tag the subscription allows", repo)}
	}
	return bestTag, bestDigest, nil
}

// createdAt is when the image digest names was built, read from its config
// (of an index: its first image's) once per digest.
func (im *Images) createdAt(repo name.Repository, tag, digest string, ropts []remote.Option) (time.Time, error) {
	key := repo.String() + "@" + digest
	im.mu.Lock()
	t, ok := im.created[key]
	im.mu.Unlock()
	if ok {
		return t, nil
	}
	img, err := remote.Image(repo.Digest(digest), ropts...)
	if err != nil {
		return time.Time{}, registryError(repo.String(), "read the image of tag "+tag+" of", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return time.Time{}, registryError(repo.String(), "read the config of tag "+tag+" of", err)
	}
	t = cfg.Created.Time
	im.mu.Lock()
	if im.created == nil {
		im.created = map[string]time.Time{}
	}
	im.created[key] = t
	im.mu.Unlock()
	return t, nil
}

// RegistryHost is the registry of an image repository, as a Secret's
// .dockerconfigjson names it: registry.example.com:5000 for
// registry.example.com:5000/team/web, index.docker.io for nginx.
func RegistryHost(repository string) string {
	repo, err := name.NewRepository(repository)
	if err != nil {
		host, _, _ := strings.Cut(repository, "/")
		return host
	}
	return repo.RegistryStr()
}

func authenticator(cred Credentials) authn.Authenticator {
	if cred.Username == "" && cred.Password == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: cred.Username, Password: cred.Password}
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// registryError sorts a registry's error: 429 is RateLimitedError, 401
// and 403 say to check the credentials, anything else is returned to be
// retried.
func registryError(repo, what string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusTooManyRequests:
			return &RateLimitedError{Repository: repo}
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s %s: the registry refused tend's credentials (HTTP %d); check the subscription's secretRef", what, repo, te.StatusCode)
		case http.StatusNotFound:
			return &NoMatchError{fmt.Errorf("%s %s: the registry has no such repository", what, repo)}
		}
	}
	return fmt.Errorf("%s %s: %w", what, repo, err)
}

// selector is an image subscription's tag filter and order.
type selector struct {
	sub        *tendv1.ImageSubscription
	allow      *regexp.Regexp
	constraint *semver.Constraints
}

func compileSelector(sub *tendv1.ImageSubscription) (*selector, error) {
	s := &selector{sub: sub}
	if sub.AllowTags != "" {
		re, err := regexp.Compile(sub.AllowTags)
		if err != nil {
			return nil, invalid("allowTags %q is not a regular expression: %v", sub.AllowTags, err)
		}
		s.allow = re
	}
	if sub.Extract != "" && s.allow == nil {
		return nil, invalid("extract %q needs allowTags with the groups it names", sub.Extract)
	}
	switch sub.Strategy {
	case "", tendv1.StrategySemVer:
		rng := sub.Constraint
		if rng == "" {
			rng = ">=0.0.0"
		}
		c, err := semver.NewConstraint(rng)
		if err != nil {
			return nil, invalid("constraint %q is not a semver range (^1.2, ~1.2.0, >=1.0 <2): %v", sub.Constraint, err)
		}
		s.constraint = c
	case tendv1.StrategyDigest:
		if sub.Constraint == "" {
			return nil, invalid("strategy Digest follows the tag constraint names (e.g. latest); set constraint")
		}
	case tendv1.StrategyLexical, tendv1.StrategyNumerical, tendv1.StrategyNewestBuild:
	default:
		return nil, invalid("strategy %q: want SemVer, Lexical, Numerical, NewestBuild or Digest", sub.Strategy)
	}
	return s, nil
}

// filter keeps the tags allowTags matches and ignoreTags does not name.
func (s *selector) filter(tags []string) []string {
	var out []string
	for _, t := range tags {
		if slices.Contains(s.sub.IgnoreTags, t) || (s.allow != nil && !s.allow.MatchString(t)) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// key is what Lexical and Numerical sort tag by: extract's expansion of
// allowTags' groups, else the tag.
func (s *selector) key(tag string) string {
	if s.sub.Extract == "" {
		return tag
	}
	m := s.allow.FindStringSubmatchIndex(tag)
	return string(s.allow.ExpandString(nil, s.sub.Extract, tag, m))
}

// pick returns the highest of tags in the subscription's order.
func (s *selector) pick(tags []string) (string, error) {
	switch s.sub.Strategy {
	case tendv1.StrategyDigest:
		return s.sub.Constraint, nil
	case "", tendv1.StrategySemVer:
		var (
			best *semver.Version
			tag  string
		)
		for _, t := range tags {
			// MAJOR.MINOR.PATCH, with a v prefix or not: "10" or
			// "2024" is not a version.
			v, err := semver.StrictNewVersion(strings.TrimPrefix(t, "v"))
			if err != nil || !s.constraint.Check(v) {
				continue
			}
			if best == nil || v.GreaterThan(best) {
				best, tag = v, t
			}
		}
		if best == nil {
			return "", &NoMatchError{fmt.Errorf("%s has no tag in range %q (of %d tags allowed)", s.sub.Repository, orAny(s.sub.Constraint), len(tags))}
		}
		return tag, nil
	case tendv1.StrategyNumerical:
		var (
			best *big.Float
			tag  string
		)
		for _, t := range tags {
			f, ok := new(big.Float).SetString(s.key(t))
			if !ok {
				continue
			}
			if best == nil || f.Cmp(best) > 0 {
				best, tag = f, t
			}
		}
		if best == nil {
			return "", &NoMatchError{fmt.Errorf("%s has no tag that reads as a number%s", s.sub.Repository, viaExtract(s.sub.Extract))}
		}
		return tag, nil
	default: // Lexical
		tag, key := "", ""
		for _, t := range tags {
			if k := s.key(t); tag == "" || k > key {
				tag, key = t, k
			}
		}
		if tag == "" {
			return "", &NoMatchError{fmt.Errorf("%s has no tag the subscription allows", s.sub.Repository)}
		}
		return tag, nil
	}
}

func orAny(c string) string {
	if c == "" {
		return "any stable version"
	}
	return c
}

func viaExtract(e string) string {
	if e == "" {
		return ""
	}
	return " (through extract " + strconv.Quote(e) + ")"
}

// ShortDigest is digest's first 12 hex digits, for messages.
func ShortDigest(digest string) string {
	_, hex, _ := strings.Cut(digest, ":")
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}
