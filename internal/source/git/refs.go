package git

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// remoteRef is a ref the remote advertises: its full name and the commit it
// points to (peeled, for an annotated tag). name is empty for a commit
// fetched alone.
type remoteRef struct {
	name string
	sha  string
}

// lsRemote runs one `git ls-remote` against the session's URL and returns
// ref name -> object, peeled tags under "name^{}", and symbolic refs under
// "ref: NAME" (e.g. "ref: HEAD" -> "refs/heads/main").
func (s *session) lsRemote(ctx context.Context, flags []string, patterns ...string) (map[string]string, error) {
	args := append(append([]string{"ls-remote"}, flags...), "--", s.opts.URL)
	out, err := s.git(ctx, "", append(args, patterns...)...)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		obj, name, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if target, isSym := strings.CutPrefix(obj, "ref: "); isSym {
			refs["ref: "+name] = target
			continue
		}
		refs[name] = obj
	}
	return refs, nil
}

// peeled returns the commit a ref points to: the peeled object for an
// annotated tag, the ref's own object otherwise.
func peeled(refs map[string]string, name string) string {
	if sha, ok := refs[name+"^{}"]; ok {
		return sha
	}
	return refs[name]
}

// resolve asks the remote which ref and commit the options select, with one
// ls-remote (none for a commit fetched alone).
func (s *session) resolve(ctx context.Context) (remoteRef, error) {
	r, u := s.opts.Ref, s.opts.URL
	notFound := func(format string, args ...any) error {
		return &Error{kind: ErrRefNotFound, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.Branch != "":
		name := "refs/heads/" + r.Branch
		refs, err := s.lsRemote(ctx, nil, name)
		if err != nil {
			return remoteRef{}, err
		}
		sha, ok := refs[name]
		if !ok {
			return remoteRef{}, notFound("branch %q not found in %s; check spec.ref.branch", r.Branch, u)
		}
		return remoteRef{name: name, sha: sha}, nil

	case r.Commit != "":
		return remoteRef{sha: r.Commit}, nil

	case r.Tag != "":
		name := "refs/tags/" + r.Tag
		refs, err := s.lsRemote(ctx, nil, name, name+"^{}")
		if err != nil {
			return remoteRef{}, err
		}
		if _, ok := refs[name]; !ok {
			return remoteRef{}, notFound("tag %q not found in %s; check spec.ref.tag", r.Tag, u)
		}
		return remoteRef{name: name, sha: peeled(refs, name)}, nil

	case r.SemVer != "":
		refs, err := s.lsRemote(ctx, []string{"--tags"})
		if err != nil {
			return remoteRef{}, err
		}
		tags := tagNames(refs)
		tag, err := LatestSemVer(r.SemVer, tags)
		switch {
		case errors.Is(err, ErrRefNotFound):
			return remoteRef{}, notFound("no tag in %s matches semver range %q (%s); check spec.ref.semver", u, r.SemVer, describeTags(tags))
		case err != nil:
			return remoteRef{}, &Error{kind: ErrInvalid, msg: fmt.Sprintf("%v (ref of %s); check spec.ref.semver", err, u)}
		}
		name := "refs/tags/" + tag
		return remoteRef{name: name, sha: peeled(refs, name)}, nil
	}

	refs, err := s.lsRemote(ctx, []string{"--symref"}, "HEAD")
	if err != nil {
		return remoteRef{}, err
	}
	sha, ok := refs["HEAD"]
	if !ok {
		return remoteRef{}, notFound("%s has no default branch (HEAD); set spec.ref.branch", u)
	}
	if target, ok := refs["ref: HEAD"]; ok {
		return remoteRef{name: target, sha: sha}, nil
	}
	return remoteRef{name: "HEAD", sha: sha}, nil
}

// tagNames returns the sorted tag names (without refs/tags/) in an
// ls-remote listing.
func tagNames(refs map[string]string) []string {
	var tags []string
	for name := range refs {
		if tag, ok := strings.CutPrefix(name, "refs/tags/"); ok && !strings.HasSuffix(tag, "^{}") {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	return tags
}

// ListRemoteTags lists the tags of the repository at opts.URL (names
// without refs/tags/, sorted) with one `git ls-remote`, without fetching
// anything. opts.Ref is ignored.
func (f *Fetcher) ListRemoteTags(ctx context.Context, opts Options) ([]string, error) {
	opts.Ref = Ref{}
	if err := validate(opts); err != nil {
		return nil, err
	}
	s, ctx, cancel, err := f.newSession(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer s.close()
	refs, err := s.lsRemote(ctx, []string{"--tags"})
	if err != nil {
		return nil, s.explain(ctx, err)
	}
	return tagNames(refs), nil
}

// LatestSemVer returns the tag with the highest semantic version that
// satisfies constraint (Masterminds/semver syntax, e.g. ">=1.2.0 <2",
// "~1.4", "^2"). Tags may have a "v" prefix; tags that are not versions are
// ignored. Pre-releases match only a constraint that names a pre-release.
// The error matches ErrInvalid for a bad constraint and ErrRefNotFound when
// no tag matches.
func LatestSemVer(constraint string, tags []string) (string, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return "", &Error{kind: ErrInvalid, msg: fmt.Sprintf("semver range %q is not valid: %v", constraint, err)}
	}
	var (
		best  string
		bestV *semver.Version
	)
	for _, tag := range tags {
		v, err := semver.NewVersion(tag)
		if err != nil || !c.Check(v) {
			continue
		}
		// On equal versions ("v1.2.0" and "1.2.0") the longer, more
		// explicit tag wins, then the lexically smaller, so the choice does
		// not depend on order.
		if bestV == nil || v.GreaterThan(bestV) || (v.Equal(bestV) && (len(tag) > len(best) || len(tag) == len(best) && tag < best)) {
			best, bestV = tag, v
		}
	}
	if bestV == nil {
		return "", &Error{kind: ErrRefNotFound, msg: fmt.Sprintf("no tag matches semver range %q (%s)", constraint, describeTags(tags))}
	}
	return best, nil
}

// describeTags says which versions there are among tags, for a "no match"
// error.
func describeTags(tags []string) string {
	var versions []*semver.Version
	for _, tag := range tags {
		if v, err := semver.NewVersion(tag); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return fmt.Sprintf("%d tags, none a semantic version", len(tags))
	}
	slices.SortFunc(versions, func(a, b *semver.Version) int { return b.Compare(a) })
	var top []string
	for _, v := range versions[:min(3, len(versions))] {
		top = append(top, v.Original())
	}
	return fmt.Sprintf("%d version tags, highest %s", len(versions), strings.Join(top, ", "))
}
