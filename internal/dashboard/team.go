package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/tend-gitops/tend/internal/dashboard/auth"
)

// Keys of the dashboard's Secret (TeamOptions.Name in
// TeamOptions.Namespace).
const (
	// SecretSessionKey seals session cookies. The controller writes 32
	// random bytes when it is missing; replacing it signs everybody out.
	SecretSessionKey = "session-key"
	// SecretAdminTokenHash is the SHA-256 of the local admin token, which
	// `tend dashboard token` writes (the token itself is kept nowhere).
	SecretAdminTokenHash = "admin-token-sha256"
	// SecretOIDCClientSecret is the dashboard's client secret at the OIDC
	// issuer, when the issuer gave it one.
	SecretOIDCClientSecret = "oidc-client-secret"
)

// DefaultTeamName names the dashboard's Secret and policy ConfigMap.
const DefaultTeamName = "tend-dashboard-auth"

// TeamOptions configure the dashboard the controller serves to a team:
// everybody signs in (single sign-on or the admin token) and may do what
// the policy's grants give their groups.
type TeamOptions struct {
	// Addr is where it listens (":8090").
	Addr string
	// Namespace and Name locate the Secret (session key, admin token
	// hash, OIDC client secret) and the ConfigMap holding the policy
	// (auth.PolicyKey). Name defaults to DefaultTeamName.
	Namespace, Name string
	// URL is the dashboard's public URL (https://tend.example.com): the
	// OIDC redirect URL is URL + /auth/callback, and cookies are Secure
	// when it is https. Required with an issuer.
	URL string
	// Issuer, ClientID, Scopes and GroupsClaim configure single sign-on
	// (see auth.Config); an empty Issuer leaves only the admin token.
	Issuer, ClientID string
	Scopes           []string
	GroupsClaim      string
	// SessionTTL is how long a session lasts (default 12h).
	SessionTTL time.Duration
	// HTTPClient talks to the issuer.
	HTTPClient *http.Client
	// Log gets sign-ins, refusals, actions and configuration problems.
	Log *slog.Logger
}

// Team is the dashboard `tend controller --dashboard-addr` serves. Its
// sign-in configuration follows the Secret and the policy ConfigMap as
// they change (a new admin token, a new grant): no restart needed.
type Team struct {
	o    TeamOptions
	srv  *Server
	kube kubernetes.Interface

	state  atomic.Pointer[teamState]
	reload chan struct{}
	// secrets and policies list the Secret and the ConfigMap (only those
	// two objects are watched).
	secrets, policies toolscache.Indexer
}

// teamState is how requests are served: through auth, or (auth nil) with
// a page that says why nobody can sign in.
type teamState struct {
	auth    *auth.Authenticator
	handler http.Handler
	problem string
	// configKey identifies what auth was built from, but for the grants,
	// which change without a rebuild.
	configKey [32]byte
	// grants are the policy's, kept when a later edit of it is refused.
	grants []auth.Grant
	// creds identifies the session key and admin token auth accepts: a
	// failed rebuild keeps auth only while they are unchanged.
	creds [32]byte
}

// NewTeam returns the dashboard for the server options o (without Token)
// and the sign-in options t.
func NewTeam(o Options, t TeamOptions) (*Team, error) {
	if t.Namespace == "" {
		return nil, errors.New("dashboard: the namespace of the dashboard's Secret is required")
	}
	if t.Name == "" {
		t.Name = DefaultTeamName
	}
	if t.Log == nil {
		t.Log = slog.New(slog.DiscardHandler)
	}
	if t.Issuer != "" {
		if t.ClientID == "" {
			return nil, errors.New("dashboard: --dashboard-oidc-issuer needs --dashboard-oidc-client-id, the dashboard's client at the issuer")
		}
		if t.URL == "" {
			return nil, errors.New("dashboard: single sign-on needs --dashboard-url, the dashboard's public URL (the issuer sends users back to it)")
		}
	}
	if t.URL != "" {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("dashboard: --dashboard-url %q: want the dashboard's address as browsers reach it, such as https://tend.example.com (no path)", t.URL)
		}
		t.URL = u.Scheme + "://" + u.Host
	}
	o.Token = ""
	if o.Log == nil {
		o.Log = t.Log
	}
	srv, err := New(o)
	if err != nil {
		return nil, err
	}
	srv.team = true
	return &Team{o: t, srv: srv, kube: o.Kube, reload: make(chan struct{}, 1)}, nil
}

// Server is the dashboard behind the sign-in.
func (t *Team) Server() *Server { return t.srv }

// NeedLeaderElection is false: every replica serves the dashboard.
func (t *Team) NeedLeaderElection() bool { return false }

// Start watches the Secret and the policy, then serves on Addr until ctx
// ends. It is a manager.Runnable.
func (t *Team) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", t.o.Addr)
	if err != nil {
		return fmt.Errorf("dashboard on %s: %w", t.o.Addr, err)
	}
	return t.Serve(ctx, l)
}

// Serve is Start on a listener of the caller's.
func (t *Team) Serve(ctx context.Context, l net.Listener) error {
	defer l.Close()
	if err := t.srv.Watch(ctx); err != nil {
		return err
	}
	f := informers.NewSharedInformerFactoryWithOptions(t.kube, 0, informers.WithNamespace(t.o.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", t.o.Name).String()
		}))
	secrets, policies := f.Core().V1().Secrets().Informer(), f.Core().V1().ConfigMaps().Informer()
	changed := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { t.poke() },
		UpdateFunc: func(any, any) { t.poke() },
		DeleteFunc: func(any) { t.poke() },
	}
	for _, inf := range []toolscache.SharedIndexInformer{secrets, policies} {
		if _, err := inf.AddEventHandler(changed); err != nil {
			return err
		}
	}
	t.secrets, t.policies = secrets.GetIndexer(), policies.GetIndexer()
	f.Start(ctx.Done())
	defer f.Shutdown()
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("dashboard: could not read %v %s/%s", typ, t.o.Namespace, t.o.Name)
		}
	}
	t.poke()
	go t.reloadLoop(ctx)

	t.o.Log.Info("dashboard listening", "addr", l.Addr().String(), "url", t.o.URL, "sso", t.o.Issuer != "")
	return serve(ctx, t, l, make(chan error, 1), 5*time.Second)
}

func (t *Team) poke() {
	select {
	case t.reload <- struct{}{}:
	default:
	}
}

// reloadLoop rebuilds the sign-in whenever the Secret or the policy
// changed, and retries an issuer that could not be reached with a backoff
// (the admin token works meanwhile).
func (t *Team) reloadLoop(ctx context.Context) {
	retry := time.NewTimer(0)
	<-retry.C
	backoff := 5 * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.reload:
		case <-retry.C:
		}
		if err := t.apply(ctx); err != nil {
			t.o.Log.Warn("dashboard sign-in configuration", "error", err.Error(), "retryIn", backoff.String())
			retry.Reset(backoff)
			backoff = min(2*backoff, 5*time.Minute)
			continue
		}
		backoff = 5 * time.Second
	}
}

// apply builds the sign-in from the Secret and the policy. An error asks
// for a retry: the issuer could not be reached, or the session key could
// not be written.
func (t *Team) apply(ctx context.Context) error {
	secret, err := t.secret()
	if err != nil {
		return err
	}
	if len(secret.Data[SecretSessionKey]) == 0 {
		// The write brings the Secret back through the informer.
		return t.writeSessionKey(ctx, secret)
	}
	grants, policyErr := t.grants()
	old := t.state.Load()
	if policyErr != nil {
		t.policyRefused(ctx, policyErr)
		grants = nil
		if old != nil {
			grants = old.grants
		}
	}
	cfg := auth.Config{
		Issuer: t.o.Issuer, ClientID: t.o.ClientID, ClientSecret: string(secret.Data[SecretOIDCClientSecret]),
		Scopes: t.o.Scopes, GroupsClaim: t.o.GroupsClaim, Grants: grants,
		SessionKey: secret.Data[SecretSessionKey], SessionTTL: t.o.SessionTTL,
		AdminTokenHash: secret.Data[SecretAdminTokenHash],
		Secure:         strings.HasPrefix(t.o.URL, "https://"),
		HTTPClient:     t.o.HTTPClient, Log: t.o.Log.With("component", "dashboard-auth"),
	}
	if t.o.Issuer != "" {
		cfg.RedirectURL = t.o.URL + "/auth/callback"
	}
	key := configKey(cfg)
	if old != nil && old.auth != nil && old.configKey == key {
		// Only the grants changed: they apply to the next request.
		old.auth.SetGrants(grants)
		t.state.Store(&teamState{auth: old.auth, handler: old.handler, configKey: key, grants: grants, creds: old.creds})
		return nil
	}
	a, err := auth.New(ctx, cfg)
	var issuerDown error
	if err != nil && cfg.Issuer != "" && len(cfg.AdminTokenHash) > 0 {
		// Keep the admin token working while the issuer is away.
		issuerDown = err
		cfg.Issuer, cfg.RedirectURL = "", ""
		a, err = auth.New(ctx, cfg)
	}
	creds := sha256.Sum256(append(append([]byte{}, cfg.SessionKey...), cfg.AdminTokenHash...))
	if err != nil {
		// A working sign-in stays until a rebuild succeeds (the issuer is
		// back), unless what it accepts was taken back.
		if old == nil || old.auth == nil || old.creds != creds {
			t.state.Store(&teamState{problem: err.Error()})
		}
		if t.o.Issuer != "" {
			return err
		}
		t.o.Log.Warn("nobody can sign in to the dashboard yet", "reason", err.Error())
		return nil
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	// The page's own CSS, script and icon are public: the sign-in pages
	// use the CSS.
	mux.Handle("GET /assets/", t.srv.assets())
	mux.Handle("/", a.Require(t.srv.authenticated()))
	st := &teamState{auth: a, handler: mux, configKey: key, grants: grants, creds: creds}
	if issuerDown != nil {
		st.configKey = [32]byte{} // rebuild on the next try
	}
	t.state.Store(st)
	t.o.Log.Info("dashboard sign-in ready", "sso", cfg.Issuer != "", "adminToken", len(cfg.AdminTokenHash) > 0, "grants", len(grants))
	return issuerDown
}

// configKey hashes what an Authenticator is built from, but the grants.
func configKey(c auth.Config) [32]byte {
	b, _ := json.Marshal([]any{c.Issuer, c.ClientID, c.ClientSecret, c.Scopes, c.GroupsClaim, c.SessionKey, c.SessionTTL, c.AdminTokenHash, c.Secure, c.RedirectURL})
	return sha256.Sum256(b)
}

// secret is the dashboard's Secret as last seen, or an empty one when
// there is none yet.
func (t *Team) secret() (*corev1.Secret, error) {
	obj, ok, err := t.secrets.GetByKey(t.o.Namespace + "/" + t.o.Name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &corev1.Secret{}, nil
	}
	return obj.(*corev1.Secret), nil
}

// grants are the policy ConfigMap's grants; none when there is no
// ConfigMap (only the admin token signs in then).
func (t *Team) grants() ([]auth.Grant, error) {
	obj, ok, err := t.policies.GetByKey(t.o.Namespace + "/" + t.o.Name)
	if err != nil || !ok {
		return nil, err
	}
	cm := obj.(*corev1.ConfigMap)
	g, err := auth.ParseGrants(cm.Data)
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return g, nil
}

// policyRefused says, in the log and in one event on the ConfigMap, that
// its policy was refused and the grants before it stay.
func (t *Team) policyRefused(ctx context.Context, err error) {
	t.o.Log.Error("dashboard policy refused, the grants before it stay", "error", err.Error())
	obj, ok, _ := t.policies.GetByKey(t.o.Namespace + "/" + t.o.Name)
	if !ok {
		return
	}
	cm := obj.(*corev1.ConfigMap)
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%s", cm.Name, cm.ResourceVersion), Namespace: cm.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name, UID: cm.UID, ResourceVersion: cm.ResourceVersion},
		Reason:         "PolicyRefused",
		Message:        err.Error() + "; the grants before this edit stay until it is fixed",
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "tend-dashboard"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	// Named after the ConfigMap's version: one event per refused edit,
	// however many replicas or retries see it.
	if _, err := t.kube.CoreV1().Events(cm.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.o.Log.Warn("dashboard: policy event not recorded", "error", err.Error())
	}
}

// writeSessionKey adds a random session key to the Secret, creating it
// when missing. Replicas racing to do it: the resourceVersion makes one
// win, the others see its key.
func (t *Team) writeSessionKey(ctx context.Context, s *corev1.Secret) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	var err error
	if s.ResourceVersion == "" {
		_, err = t.kube.CoreV1().Secrets(t.o.Namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: t.o.Name, Namespace: t.o.Namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "tend"}},
			Data:       map[string][]byte{SecretSessionKey: key},
		}, metav1.CreateOptions{FieldManager: "tend"})
	} else {
		patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"data":{%q:%q}}`, s.ResourceVersion, SecretSessionKey, base64.StdEncoding.EncodeToString(key))
		_, err = t.kube.CoreV1().Secrets(t.o.Namespace).Patch(ctx, t.o.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "tend"})
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		return nil // another replica's key arrives through the informer
	}
	if err != nil {
		return fmt.Errorf("writing the session key into Secret %s/%s: %w", t.o.Namespace, t.o.Name, err)
	}
	t.o.Log.Info("dashboard session key created", "secret", t.o.Namespace+"/"+t.o.Name)
	return nil
}

// ServeHTTP serves the dashboard behind the sign-in, or a page saying why
// nobody can sign in yet.
func (t *Team) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := t.state.Load()
	if st == nil || st.auth == nil {
		problem := "the dashboard is starting"
		if st != nil {
			problem = st.problem
		}
		securityHeaders(w)
		t.srv.refuse(w, r, http.StatusServiceUnavailable, fmt.Sprintf("Nobody can sign in yet: %s. An admin runs `tend dashboard token -n %s` for a first sign-in token, or configures single sign-on (docs/dashboard.md).", problem, t.o.Namespace))
		return
	}
	st.handler.ServeHTTP(w, r)
}

// AdminTokenPatch writes a new admin token's hash into the dashboard's
// Secret (namespace/name), creating the Secret when missing; the running
// dashboards pick it up at once. The token itself is returned to be shown
// once and is kept nowhere.
func AdminTokenPatch(ctx context.Context, kube kubernetes.Interface, namespace, name string) (string, error) {
	token, hash := auth.NewAdminToken()
	secrets := kube.CoreV1().Secrets(namespace)
	patch := fmt.Sprintf(`{"data":{%q:%q}}`, SecretAdminTokenHash, base64.StdEncoding.EncodeToString(hash))
	var err error
	// A controller may create the Secret (with its session key) between
	// the patch and the create: then patch again.
	for range 3 {
		_, err = secrets.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "tend"})
		if !apierrors.IsNotFound(err) {
			break
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "tend"}},
			Data:       map[string][]byte{SecretAdminTokenHash: hash},
		}, metav1.CreateOptions{FieldManager: "tend"})
		if !apierrors.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("writing the admin token's hash into Secret %s/%s: %w", namespace, name, err)
	}
	return token, nil
}
