// Package webhook owns tend's push receiver: an http.Handler that takes push
// notifications from GitHub, GitLab, Gitea/Forgejo, Bitbucket Cloud and any
// other sender that signs a small JSON document, verifies them against a
// shared secret, and asks every Source following the pushed branch or tag to
// fetch now by setting its tend.dev/requested-at annotation.
//
// Polling stays the safety net: a lost or rejected webhook only delays a
// sync until the Source's next interval. So the receiver is strict (never an
// unsigned request, a small body limit, a per-Source rate limit) and cheap
// to be wrong in the other direction: a false match costs one git ls-remote.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MaxBodyBytes is the largest request body the receiver reads; larger
// requests get 413. Push payloads of all supported forges are far smaller.
const MaxBodyBytes = 1 << 20

// DefaultRatePerMinute is the per-Source trigger rate when
// Receiver.RatePerMinute is zero.
const DefaultRatePerMinute = 30

// Forges the receiver serves, as path segments under /hooks/ and as keys of
// the webhook Secret.
const (
	ForgeGitHub    = "github"
	ForgeGitLab    = "gitlab"
	ForgeGitea     = "gitea"
	ForgeBitbucket = "bitbucket"
	ForgeGeneric   = "generic"
)

// Receiver serves POST /hooks/{github,gitlab,gitea,bitbucket,generic};
// mount it at "/hooks/" or serve it alone. It only patches annotations, so
// every replica can serve it, leader or not. Client, SecretNamespace and
// SecretName are required; the rest have defaults. Use it by pointer.
type Receiver struct {
	// Client lists and patches Sources. It needs tend's scheme; a
	// manager's cached client is fine.
	Client client.Client
	// SecretReader reads the webhook Secret. The default is Client; pass
	// a manager's APIReader so that a cached Client does not start a
	// cluster-wide Secret informer.
	SecretReader client.Reader
	// SecretNamespace is where the webhook Secret lives, e.g. tend-system.
	SecretNamespace string
	// SecretName names the Secret holding one secret per forge under the
	// keys github, gitlab, gitea, bitbucket and generic. A forge without a
	// key is refused (401): unsigned requests are never accepted.
	SecretName string
	// Log receives one record per request; nil discards. It never sees
	// secrets, signatures or bodies.
	Log *slog.Logger
	// RatePerMinute is how many triggers one Source accepts per minute,
	// with bursts of the same size; the default is DefaultRatePerMinute.
	RatePerMinute int

	limiterOnce sync.Once
	limiter     *limiter
}

var _ http.Handler = (*Receiver)(nil)

// Response is the JSON body of every answer.
type Response struct {
	// Sources are the Sources asked to fetch, as namespace/name.
	Sources []string `json:"sources"`
	// RateLimited are matching Sources skipped by the rate limit.
	RateLimited []string `json:"rateLimited,omitempty"`
	// Message says what happened, for the forge's delivery log.
	Message string `json:"message,omitempty"`
}

// ServeHTTP verifies one delivery and triggers the Sources it concerns.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	forge, ok := strings.CutPrefix(req.URL.Path, "/hooks/")
	if !ok || !knownForge(forge) {
		reply(w, http.StatusNotFound, Response{Message: "unknown hook: use /hooks/github, /hooks/gitlab, /hooks/gitea, /hooks/bitbucket or /hooks/generic"})
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, Response{Message: "only POST is allowed"})
		return
	}
	log := r.log().With("forge", forge, "remote", req.RemoteAddr)
	status, resp := r.serve(req.Context(), forge, w, req)
	log.Info("webhook", "status", status, "sources", resp.Sources, "rateLimited", resp.RateLimited, "message", resp.Message)
	if status == http.StatusTooManyRequests {
		secs := int((r.rate().retryAfter(resp.RateLimited) + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
	}
	reply(w, status, resp)
}

func (r *Receiver) serve(ctx context.Context, forge string, w http.ResponseWriter, req *http.Request) (int, Response) {
	body, err := readBody(w, req)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, Response{Message: fmt.Sprintf("body larger than %d bytes", MaxBodyBytes)}
		}
		return http.StatusBadRequest, Response{Message: "reading body: " + err.Error()}
	}
	secret, status, msg := r.secret(ctx, forge)
	if status != 0 {
		return status, Response{Message: msg}
	}
	if err := verify(forge, req.Header, body, secret); err != nil {
		return http.StatusUnauthorized, Response{Message: err.Error()}
	}
	ev, err := parse(forge, req.Header, body)
	if err != nil {
		return http.StatusBadRequest, Response{Message: err.Error()}
	}
	if ev.ping {
		return http.StatusOK, Response{Message: "pong"}
	}
	if ev.ignore != "" {
		return http.StatusOK, Response{Message: "ignored: " + ev.ignore}
	}
	return r.trigger(ctx, ev)
}

// secret returns the forge's secret, or a status and message when there is
// none to check against.
func (r *Receiver) secret(ctx context.Context, forge string) ([]byte, int, string) {
	reader := r.SecretReader
	if reader == nil {
		reader = r.Client
	}
	ref := types.NamespacedName{Namespace: r.SecretNamespace, Name: r.SecretName}
	var s corev1.Secret
	err := reader.Get(ctx, ref, &s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, http.StatusUnauthorized, fmt.Sprintf("no webhook secret configured: create Secret %s with key %q", ref, forge)
	case err != nil:
		r.log().Error("read webhook secret", "secret", ref.String(), "err", err)
		return nil, http.StatusServiceUnavailable, "cannot read the webhook secret; try again later"
	}
	v := s.Data[forge]
	if len(v) == 0 {
		return nil, http.StatusUnauthorized, fmt.Sprintf("no webhook secret configured for %s: add key %q to Secret %s", forge, forge, ref)
	}
	return v, 0, ""
}

func (r *Receiver) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func knownForge(f string) bool {
	switch f {
	case ForgeGitHub, ForgeGitLab, ForgeGitea, ForgeBitbucket, ForgeGeneric:
		return true
	}
	return false
}

func readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	rd := http.MaxBytesReader(w, req.Body, MaxBodyBytes)
	defer rd.Close()
	return io.ReadAll(rd)
}

func reply(w http.ResponseWriter, status int, resp Response) {
	if resp.Sources == nil {
		resp.Sources = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}
