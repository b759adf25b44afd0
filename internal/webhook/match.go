package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
)

// trigger annotates every Source following one of ev's refs of ev's
// repository.
func (r *Receiver) trigger(ctx context.Context, ev event) (int, Response) {
	repos := map[string]bool{}
	for _, u := range ev.urls {
		if n := normalizeURL(u); n != "" {
			repos[n] = true
		}
	}
	if len(repos) == 0 {
		return http.StatusBadRequest, Response{Message: "payload names no repository URL"}
	}
	var list tendv1.SourceList
	if err := r.Client.List(ctx, &list); err != nil {
		r.log().Error("list sources", "err", err)
		return http.StatusServiceUnavailable, Response{Message: "cannot list Sources; try again later"}
	}
	var matches []types.NamespacedName
	sameRepo := 0
	for i := range list.Items {
		src := &list.Items[i]
		if src.Spec.Git == nil || src.Spec.Suspend || !repos[normalizeURL(src.Spec.Git.URL)] {
			continue
		}
		sameRepo++
		if slices.ContainsFunc(ev.refs, func(ref string) bool { return follows(src.Spec.Git.Ref, ref, ev.defaultBranch) }) {
			matches = append(matches, types.NamespacedName{Namespace: src.Namespace, Name: src.Name})
		}
	}
	if len(matches) == 0 {
		msg := fmt.Sprintf("ignored: no Source follows %s", ev.urls[0])
		if sameRepo > 0 {
			msg = fmt.Sprintf("ignored: %d Source(s) follow %s but none follows %s", sameRepo, ev.urls[0], strings.Join(ev.refs, ", "))
		}
		return http.StatusOK, Response{Message: msg}
	}
	slices.SortFunc(matches, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })

	var resp Response
	var failed int
	now := time.Now().UTC().Format(time.RFC3339Nano)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{controller.AnnotationRequestedAt: now}}})
	for _, m := range matches {
		if !r.rate().allow(m.String()) {
			resp.RateLimited = append(resp.RateLimited, m.String())
			continue
		}
		src := &tendv1.Source{}
		src.Namespace, src.Name = m.Namespace, m.Name
		if err := r.Client.Patch(ctx, src, client.RawPatch(types.MergePatchType, patch)); err != nil {
			if !apierrors.IsNotFound(err) {
				r.log().Error("annotate source", "source", m.String(), "err", err)
				failed++
			}
			continue
		}
		resp.Sources = append(resp.Sources, m.String())
	}
	switch {
	case len(resp.Sources) > 0:
		resp.Message = fmt.Sprintf("asked %d Source(s) to fetch", len(resp.Sources))
		if failed > 0 {
			resp.Message += fmt.Sprintf("; %d could not be annotated", failed)
		}
		return http.StatusAccepted, resp
	case len(resp.RateLimited) > 0:
		resp.Message = "rate limit exceeded: the Sources fetch at their next interval anyway"
		return http.StatusTooManyRequests, resp
	case failed > 0:
		resp.Message = "cannot annotate the matching Sources; try again later"
		return http.StatusServiceUnavailable, resp
	}
	resp.Message = "ignored: the matching Sources were deleted"
	return http.StatusOK, resp
}

// follows says whether a Source with ref should fetch after a push of
// pushed (refs/heads/<branch> or refs/tags/<tag>). A Source without a ref
// follows the repository's default branch, "main" when the payload does not
// say; a Source pinned to a commit alone follows nothing.
func follows(ref tendv1.GitRef, pushed, defaultBranch string) bool {
	if tag, ok := strings.CutPrefix(pushed, "refs/tags/"); ok {
		return ref.SemVer != "" || (ref.Tag != "" && ref.Tag == tag)
	}
	branch, ok := strings.CutPrefix(pushed, "refs/heads/")
	if !ok || ref.Tag != "" || ref.SemVer != "" {
		return false
	}
	want := ref.Branch
	if want == "" {
		if ref.Commit != "" {
			return false
		}
		want = defaultBranch
		if want == "" {
			want = "main"
		}
	}
	return branch == want
}

// normalizeURL maps the ways to write one repository's address to one
// string, host[:port]/path, so that https://host/o/r.git, http://host/o/r,
// ssh://git@host/o/r.git and git@host:o/r compare equal. User names go, so
// do default ports and SSH ports (the SSH port never equals the web port);
// the result is lower case because forges treat owner and repository
// names case-insensitively. It returns "" for what is not a URL.
func normalizeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	var host, path string
	if !strings.Contains(raw, "://") {
		// scp-like: [user@]host:path
		at := strings.LastIndex(raw, "@")
		h, p, ok := strings.Cut(raw[at+1:], ":")
		if !ok || strings.Contains(h, "/") {
			return ""
		}
		host, path = h, p
	} else {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return ""
		}
		host, path = u.Hostname(), u.Path
		port := u.Port()
		switch {
		case port == "":
		case u.Scheme == "ssh" || u.Scheme == "git+ssh":
		case u.Scheme == "http" && port == "80", u.Scheme == "https" && port == "443":
		default:
			host = net.JoinHostPort(host, port)
		}
	}
	path = strings.Trim(path, "/")
	path = strings.TrimSuffix(path, ".git")
	path = strings.TrimSuffix(path, "/")
	if host == "" || path == "" {
		return ""
	}
	return strings.ToLower(host + "/" + path)
}
