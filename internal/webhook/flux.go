package webhook

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	notifyv1 "github.com/fluxcd/notification-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tend-gitops/tend/internal/refwatch"
)

// FluxRequestedAt is the annotation Flux's Receivers (and `flux
// reconcile`) set to ask for a reconcile; tend's compat reconcilers pass
// it on to the Sources and Apps the Flux objects map to.
const FluxRequestedAt = "reconcile.fluxcd.io/requestedAt"

// FluxReceivers serves Flux's Receiver webhooks as they are, at the paths
// Flux gives them (/hook/<sha256 of token, name and namespace>, on the
// port notification-controller uses), so that the forge's webhooks keep
// working once Flux is gone: a delivery is verified as the Receiver's type
// says, then the Receiver's resources are annotated with
// reconcile.fluxcd.io/requestedAt, which tend (--compat flux) acts on.
type FluxReceivers struct {
	// Client lists Receivers and annotates their resources.
	Client client.Client
	// Secrets serves the Receivers' token Secrets from one watch per
	// Secret: a flood of requests sends the apiserver nothing for them,
	// and a rotated token applies at once.
	Secrets *refwatch.Watcher
	// Namespaces limits the Receivers served; empty means every namespace.
	Namespaces []string
	Log        *slog.Logger
	// Now, when set, replaces time.Now (tests).
	Now func() time.Time

	mu      sync.Mutex
	watched map[refwatch.Owner]struct{} // Receivers whose Secret is watched
}

var receiverGVK = notifyv1.GroupVersion.WithKind(notifyv1.ReceiverKind)

// fluxKindVersions are the kinds a Receiver may name that tend maps, with
// the API version Flux serves them at.
var fluxKindVersions = map[string]string{
	"GitRepository":  "source.toolkit.fluxcd.io/v1",
	"OCIRepository":  "source.toolkit.fluxcd.io/v1",
	"HelmRepository": "source.toolkit.fluxcd.io/v1",
	"Kustomization":  "kustomize.toolkit.fluxcd.io/v1",
	"HelmRelease":    "helm.toolkit.fluxcd.io/v2",
}

// FluxResponse is the JSON answer of a Flux receiver path.
type FluxResponse struct {
	// Resources are the objects annotated, as Kind/namespace/name.
	Resources []string `json:"resources"`
	Message   string   `json:"message,omitempty"`
}

func (f *FluxReceivers) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	digest, ok := strings.CutPrefix(req.URL.Path, "/hook/")
	if !ok || digest == "" {
		fluxReply(w, http.StatusNotFound, FluxResponse{Message: "unknown path: Flux receivers are served at /hook/<digest> (status.webhookPath)"})
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fluxReply(w, http.StatusMethodNotAllowed, FluxResponse{Message: "only POST is allowed"})
		return
	}
	status, resp := f.serve(req.Context(), digest, w, req)
	f.log().Info("flux receiver", "status", status, "resources", resp.Resources, "message", resp.Message, "remote", req.RemoteAddr)
	fluxReply(w, status, resp)
}

func (f *FluxReceivers) serve(ctx context.Context, digest string, w http.ResponseWriter, req *http.Request) (int, FluxResponse) {
	body, err := readBody(w, req)
	if err != nil {
		return http.StatusBadRequest, FluxResponse{Message: "reading body: " + err.Error()}
	}
	rcv, token, err := f.find(ctx, digest)
	switch {
	case err != nil:
		return http.StatusInternalServerError, FluxResponse{Message: err.Error()}
	case rcv == nil:
		return http.StatusNotFound, FluxResponse{Message: "no Receiver has this path; check the webhook URL against the Receiver's status.webhookPath"}
	case rcv.Spec.Suspend:
		return http.StatusServiceUnavailable, FluxResponse{Message: fmt.Sprintf("Receiver %s/%s is suspended", rcv.Namespace, rcv.Name)}
	}
	what := fmt.Sprintf("Receiver %s/%s (%s)", rcv.Namespace, rcv.Name, rcv.Spec.Type)
	event, err := verifyFlux(rcv.Spec.Type, req.Header, body, token)
	if err != nil {
		return http.StatusUnauthorized, FluxResponse{Message: what + ": " + err.Error()}
	}
	if event == "ping" {
		return http.StatusOK, FluxResponse{Message: what + ": pong"}
	}
	if len(rcv.Spec.Events) > 0 && event != "" && !slices.ContainsFunc(rcv.Spec.Events, func(e string) bool { return strings.EqualFold(e, event) }) {
		return http.StatusOK, FluxResponse{Message: fmt.Sprintf("%s: event %q is not in spec.events; nothing to do", what, event)}
	}
	var done []string
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	stamp := now().UTC().Format(time.RFC3339Nano)
	if err := receiverFilters(rcv); err != nil {
		return http.StatusBadRequest, FluxResponse{Message: what + ": " + err.Error()}
	}
	reqVar := requestVar(body)
	filtered := 0
	for i, r := range rcv.Spec.Resources {
		objs, err := f.resources(ctx, rcv, r)
		if err != nil {
			return http.StatusBadRequest, FluxResponse{Resources: done, Message: fmt.Sprintf("%s: spec.resources[%d]: %v", what, i, err)}
		}
		for _, o := range objs {
			ok, err := accepts([]string{rcv.Spec.ResourceFilter, r.Filter}, o, reqVar)
			if err != nil {
				return http.StatusBadRequest, FluxResponse{Resources: done, Message: fmt.Sprintf("%s: filter of %s %s/%s: %v", what, o.GetKind(), o.GetNamespace(), o.GetName(), err)}
			}
			if !ok {
				filtered++
				continue
			}
			patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, FluxRequestedAt, stamp))
			if err := f.Client.Patch(ctx, o, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return http.StatusInternalServerError, FluxResponse{Resources: done, Message: fmt.Sprintf("%s: annotate %s %s/%s: %v", what, o.GetKind(), o.GetNamespace(), o.GetName(), err)}
			}
			done = append(done, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
	}
	msg := fmt.Sprintf("%s: %d resources asked to reconcile", what, len(done))
	if filtered > 0 {
		msg += fmt.Sprintf(", %d left out by the CEL filters", filtered)
	}
	return http.StatusOK, FluxResponse{Resources: done, Message: msg}
}

// find returns the Receiver whose path is digest, with its token.
func (f *FluxReceivers) find(ctx context.Context, digest string) (*notifyv1.Receiver, []byte, error) {
	namespaces := f.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	seen := map[refwatch.Owner]struct{}{}
	for _, ns := range namespaces {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(receiverGVK.GroupVersion().WithKind(notifyv1.ReceiverKind + "List"))
		if err := f.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			if meta.IsNoMatchError(err) {
				return nil, nil, nil
			}
			return nil, nil, fmt.Errorf("listing Flux Receivers: %w", err)
		}
		for i := range list.Items {
			var rcv notifyv1.Receiver
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &rcv); err != nil || rcv.Spec.SecretRef == nil {
				continue
			}
			seen[receiverOwner(&rcv)] = struct{}{}
			token, path := f.path(ctx, &rcv)
			if len(token) == 0 {
				continue // no token: no path (Flux refuses it too)
			}
			if subtle.ConstantTimeCompare([]byte(path), []byte(digest)) == 1 {
				f.track(seen, false)
				return &rcv, token, nil
			}
		}
	}
	f.track(seen, true)
	return nil, nil, nil
}

// receiverOwner is what holds a Receiver's token Secret watched.
func receiverOwner(rcv *notifyv1.Receiver) refwatch.Owner {
	return refwatch.Owner{Kind: "FluxReceiver", Namespace: rcv.Namespace, Name: rcv.Name}
}

// track records the Receivers seen in one pass over them; after a full
// pass (every Receiver listed), the Secrets of Receivers gone are no
// longer watched.
func (f *FluxReceivers) track(seen map[refwatch.Owner]struct{}, full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watched == nil {
		f.watched = map[refwatch.Owner]struct{}{}
	}
	if full {
		for o := range f.watched {
			if _, ok := seen[o]; !ok {
				f.Secrets.Forget(o)
				delete(f.watched, o)
			}
		}
	}
	for o := range seen {
		f.watched[o] = struct{}{}
	}
}

// path returns rcv's token and webhook path (hex sha256 of token, name
// and namespace, as Flux computes it); its Secret is read from its watch,
// started at the first read.
func (f *FluxReceivers) path(ctx context.Context, rcv *notifyv1.Receiver) ([]byte, string) {
	owner := receiverOwner(rcv)
	key := types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Spec.SecretRef.Name}
	var sec corev1.Secret
	err := f.Secrets.Get(ctx, owner, key, &sec)
	// The Receiver references this Secret alone now (its secretRef may
	// have changed): the watch of any other stops.
	f.Secrets.Keep(owner, []refwatch.Ref{{Kind: refwatch.Secret, Namespace: key.Namespace, Name: key.Name}})
	if err != nil {
		return nil, "" // its path cannot be known; other Receivers may match
	}
	token := sec.Data["token"]
	return token, receiverDigest(token, rcv.Name, rcv.Namespace)
}

// resources returns the objects one entry of spec.resources names: one by
// name, or those matching matchLabels for the name "*".
func (f *FluxReceivers) resources(ctx context.Context, rcv *notifyv1.Receiver, r notifyv1.ReceiverResource) ([]*unstructured.Unstructured, error) {
	apiVersion := r.APIVersion
	if apiVersion == "" {
		apiVersion = fluxKindVersions[r.Kind]
	}
	if _, ok := fluxKindVersions[r.Kind]; !ok || apiVersion == "" {
		return nil, fmt.Errorf("kind %q: tend acts on GitRepository, OCIRepository, HelmRepository, Kustomization and HelmRelease", r.Kind)
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	ns := r.Namespace
	if ns == "" {
		ns = rcv.Namespace
	}
	if len(f.Namespaces) > 0 && !slices.Contains(f.Namespaces, ns) {
		return nil, fmt.Errorf("namespace %s is not one this controller watches", ns)
	}
	if r.Name != "*" {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gv.WithKind(r.Kind))
		if err := f.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: r.Name}, u); err != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", r.Kind, ns, r.Name, err)
		}
		return []*unstructured.Unstructured{u}, nil
	}
	if len(r.MatchLabels) == 0 {
		return nil, errors.New(`name "*" needs matchLabels`)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gv.WithKind(r.Kind + "List"))
	if err := f.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(r.MatchLabels)}); err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", r.Kind, ns, err)
	}
	out := make([]*unstructured.Unstructured, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// verifyFlux checks a delivery as Flux's Receiver of type typ does, and
// returns the forge's event name when it sends one.
func verifyFlux(typ string, h http.Header, body, token []byte) (string, error) {
	switch typ {
	case notifyv1.GenericReceiver:
		return "", nil
	case notifyv1.GenericHMACReceiver:
		sig := h.Get("X-Signature")
		for _, algo := range []string{"sha256=", "sha1=", "sha512="} {
			if strings.HasPrefix(sig, algo) && algo != "sha256=" {
				return "", fmt.Errorf("X-Signature %s...: tend checks sha256 signatures; configure the sender for HMAC-SHA256", strings.TrimSuffix(algo, "="))
			}
		}
		return "", verifyHMAC(h, body, token, "X-Signature", "sha256=")
	case notifyv1.GitHubReceiver:
		return h.Get("X-GitHub-Event"), verify(ForgeGitHub, h, body, token)
	case notifyv1.GitLabReceiver:
		return h.Get("X-Gitlab-Event"), verify(ForgeGitLab, h, body, token)
	case notifyv1.BitbucketReceiver:
		return h.Get("X-Event-Key"), verify(ForgeBitbucket, h, body, token)
	}
	return "", fmt.Errorf("receiver type %q is not served by tend (github, gitlab, bitbucket, generic and generic-hmac are)", typ)
}

func (f *FluxReceivers) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

func fluxReply(w http.ResponseWriter, status int, resp FluxResponse) {
	if resp.Resources == nil {
		resp.Resources = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}
