// Package dashboard serves tend's web dashboard: a JSON API over Apps,
// Sources, Notifiers, Clusters and AppSets (read from an informer cache,
// filtered and paged on the server), each App's resource tree, history and
// events, hook runs, what a sync would change (the same diff as the CLI's,
// internal/appdiff), the actions people take (sync, refresh, suspend,
// resume — the same requests as the CLI's, internal/appctl), live updates over
// server-sent events, and the page itself, embedded in the binary (no CDN,
// no build step).
//
// `tend dashboard` runs it on a workstation with the user's own
// credentials, on 127.0.0.1 behind a token printed once (so other users of
// the machine cannot borrow those credentials). Every response carries a
// strict Content-Security-Policy; requests for another Host are refused
// (DNS rebinding); state-changing requests need a CSRF token and a
// same-origin Origin.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
)

//go:embed ui
var uiFS embed.FS

// Options configure a Server.
type Options struct {
	// Cache lists tend's objects and tells about their changes; it must
	// serve Apps, Sources, Notifiers, Clusters and AppSets, and Stages
	// unless NoStages.
	Cache cache.Cache
	// NoStages, when set, says which reads of Stages the credentials may
	// not make: the Stages page says so, and Stages are not watched.
	NoStages string
	// Client writes the actions' patches.
	Client client.Client
	// Kube reads inventories (Secrets) and events.
	Kube kubernetes.Interface
	// Dynamic and Mapper read the live objects of App trees.
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	// Differ compares an App with the cluster as `tend diff APP` does
	// (the engine's server-side apply dry run, Secret values masked).
	// Nil: the diff view says diffs are not available.
	Differ *appdiff.Differ
	// Token, when set, is what a browser must present once (?token=) to
	// get a session cookie; every other request needs that cookie.
	Token string
	// Log receives one line per action, naming who asked.
	Log *slog.Logger
	// User names who acts in the audit log and events ("local user" for
	// `tend dashboard`).
	User string
}

// Server is the dashboard's HTTP handler.
type Server struct {
	o    Options
	csrf string
	mux  *http.ServeMux
	hub  *hub
	// session is the cookie value a token exchange hands out.
	session string
	// team is set for the controller's dashboard: requests come through
	// auth.Require, with the user in their context.
	team bool
	// diffs bounds the diffs computed at once (maxDiffs).
	diffs chan struct{}
	// streamFor overrides defaultStreamTTL (tests).
	streamFor time.Duration
}

// maxDiffs is how many diffs a dashboard computes at once; more get 429.
const maxDiffs = 2

// defaultStreamTTL is how long a live-update stream of the team dashboard
// lasts before the browser reconnects through the sign-in.
const defaultStreamTTL = 5 * time.Minute

func (s *Server) streamTTL() time.Duration {
	if s.streamFor > 0 {
		return s.streamFor
	}
	return defaultStreamTTL
}

// sessionCookie is the session cookie's name for a dashboard on host: a
// browser sends a host's cookies to each of its ports, so two dashboards
// (say, two contexts) would otherwise log each other out.
func sessionCookie(host string) string {
	_, port, _ := net.SplitHostPort(host)
	return "tend_session_" + port
}

// New returns a Server; Watch must be called for live updates.
func New(o Options) (*Server, error) {
	if o.Cache == nil || o.Client == nil || o.Kube == nil {
		return nil, errors.New("dashboard: Cache, Client and Kube are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.User == "" {
		o.User = "local user"
	}
	s := &Server{o: o, csrf: randomToken(), session: randomToken(), hub: newHub(), diffs: make(chan struct{}, maxDiffs)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/apps", s.listApps)
	mux.HandleFunc("GET /api/v1/apps/{namespace}/{name}", s.getApp)
	mux.HandleFunc("GET /api/v1/apps/{namespace}/{name}/tree", s.appTree)
	mux.HandleFunc("GET /api/v1/apps/{namespace}/{name}/diff", s.appDiff)
	mux.HandleFunc("GET /api/v1/apps/{namespace}/{name}/hooks", s.appHooks)
	mux.HandleFunc("POST /api/v1/apps/{namespace}/{name}/{action}", s.appAction)
	mux.HandleFunc("GET /api/v1/sources", s.listSources)
	mux.HandleFunc("GET /api/v1/notifiers", s.listNotifiers)
	mux.HandleFunc("GET /api/v1/stages", s.listStages)
	mux.HandleFunc("POST /api/v1/stages/{namespace}/{name}/{action}", s.stageAction)
	mux.HandleFunc("GET /api/v1/clusters", s.listClusters)
	mux.HandleFunc("GET /api/v1/appsets", s.listAppSets)
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("GET /api/v1/me", s.me)
	mux.HandleFunc("GET /{$}", s.index)
	mux.Handle("GET /assets/", s.assets())
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/assets/favicon.svg", http.StatusMovedPermanently)
	})
	s.mux = mux
	return s, nil
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Watch feeds live updates from the cache's informers; it returns once
// the informers of tend's kinds are synced (or ctx ends).
func (s *Server) Watch(ctx context.Context) error {
	kinds := []client.Object{&tendv1.App{}, &tendv1.Source{}, &tendv1.Notifier{}, &tendv1.Cluster{}, &tendv1.AppSet{}}
	if s.o.NoStages == "" {
		kinds = append(kinds, &tendv1.Stage{})
	}
	for _, obj := range kinds {
		inf, err := s.o.Cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("dashboard: informer of %T: %w", obj, err)
		}
		kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1alpha1.")
		send := func(o any) {
			if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if co, ok := o.(client.Object); ok {
				s.hub.publish(change{Kind: kind, Namespace: co.GetNamespace(), Name: co.GetName()})
			}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    send,
			UpdateFunc: func(_, o any) { send(o) },
			DeleteFunc: send,
		}); err != nil {
			return err
		}
	}
	return nil
}

// securityHeaders are on every response: a strict Content-Security-Policy
// (the page's own scripts and styles only), no framing, no sniffing, no
// caching, no referrer.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// ServeHTTP serves `tend dashboard`: it checks the request's host,
// session and CSRF token, sets the security headers and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if s.team {
		s.refuse(w, r, http.StatusInternalServerError, "this dashboard is served behind its sign-in only")
		return
	}
	if !localHost(r.Host) {
		http.Error(w, "dashboard: this dashboard answers on 127.0.0.1 or localhost only (Host "+r.Host+" refused)", http.StatusForbidden)
		return
	}
	if s.o.Token != "" {
		if t := r.URL.Query().Get("token"); t != "" && r.Method == http.MethodGet && r.URL.Path == "/" {
			if subtle.ConstantTimeCompare([]byte(t), []byte(s.o.Token)) != 1 {
				s.refuse(w, r, http.StatusUnauthorized, "this link's token is wrong: open the URL `tend dashboard` printed")
				return
			}
			http.SetCookie(w, &http.Cookie{Name: sessionCookie(r.Host), Value: s.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		c, err := r.Cookie(sessionCookie(r.Host))
		if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.session)) != 1 {
			s.refuse(w, r, http.StatusUnauthorized, "no session: open the URL `tend dashboard` printed (it carries a token)")
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			s.refuse(w, r, http.StatusForbidden, "cross-origin request refused")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Tend-CSRF")), []byte(s.csrf)) != 1 {
			s.refuse(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// assets serves the page's embedded CSS, script and icon.
func (s *Server) assets() http.Handler {
	ui, err := fs.Sub(uiFS, "ui")
	if err != nil {
		panic(err) // ui is embedded
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(ui))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		files.ServeHTTP(w, r)
	})
}

// authenticated serves requests that auth.Require let through (it checked
// the session, the origin and the CSRF token, and put the user in the
// context); the handlers check the user's role.
func (s *Server) authenticated() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		if _, ok := auth.UserFrom(r.Context()); !ok {
			s.refuse(w, r, http.StatusUnauthorized, "not signed in")
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// roleIn is what the request's user may do in namespace ("" for
// cluster-scoped objects). `tend dashboard` has no users: the kubeconfig's
// credentials decide, so it allows everything here.
func roleIn(r *http.Request, namespace string) auth.Role {
	u, ok := auth.UserFrom(r.Context())
	if !ok {
		return auth.Admin
	}
	return u.Role(namespace)
}

// canView says whether the request's user may see namespace's objects.
func canView(r *http.Request, namespace string) bool {
	return roleIn(r, namespace) >= auth.Viewer
}

// forbidden answers that the user lacks need in namespace, saying who
// they are and what to ask for.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, need auth.Role, namespace string) {
	name, groups := "you", "none"
	if u, ok := auth.UserFrom(r.Context()); ok {
		name = u.Name
		if len(u.Groups) > 0 {
			groups = strings.Join(u.Groups, ", ")
		}
	}
	writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("%s may not do this in namespace %s: it needs the %s role there; ask an admin for a grant to one of your groups (%s) in the dashboard policy", name, namespace, need, groups)})
}

// me serves GET /api/v1/me: who is signed in and how the page signs out.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"name": s.o.User, "local": true}
	if u, ok := auth.UserFrom(r.Context()); ok {
		groups := u.Groups
		if groups == nil {
			groups = []string{}
		}
		out = map[string]any{"name": u.Name, "email": u.Email, "groups": groups, "admin": u.Admin, "local": false}
	}
	writeJSON(w, http.StatusOK, out)
}

// userName names who asked, for the audit.
func (s *Server) userName(r *http.Request) string {
	if u, ok := auth.UserFrom(r.Context()); ok {
		if u.Email != "" && u.Email != u.Name {
			return u.Name + " <" + u.Email + ">"
		}
		return u.Name
	}
	return s.o.User
}

// localHost says whether a Host header names the loopback interface.
func localHost(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// refuse answers an API request with a JSON error, a page request with a
// plain page saying what to do.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><title>tend</title><h1>%d %s</h1><p>%s</p>", code, http.StatusText(code), htmlEscape(msg))
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

// index serves the page with the CSRF token in a meta tag.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := uiFS.ReadFile("ui/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	csrf := s.csrf
	if u, ok := auth.UserFrom(r.Context()); ok {
		csrf = u.CSRFToken()
	}
	page := strings.Replace(string(b), "{{csrf}}", csrf, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(page))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// change is one live update: an object of kind changed.
type change struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// hub fans changes out to the connected browsers. A slow browser loses
// changes rather than slowing the others: it reloads what it shows anyway.
type hub struct {
	mu   sync.Mutex
	subs map[chan change]struct{}
}

func newHub() *hub { return &hub{subs: map[chan change]struct{}{}} }

func (h *hub) subscribe() chan change {
	ch := make(chan change, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *hub) unsubscribe(ch chan change) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *hub) publish(c change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- c:
		default:
		}
	}
}

// events streams changes as server-sent events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	ch := s.hub.subscribe()
	defer s.hub.unsubscribe(ch)
	fmt.Fprint(w, ": connected\n\n")
	fl.Flush()
	keepalive := time.NewTicker(25 * time.Second)
	defer keepalive.Stop()
	// Behind a sign-in, a stream ends now and then: the browser reconnects
	// through the sign-in again, so an expired or signed-out session, or a
	// grant taken back, stops its updates within streamTTL.
	var renew <-chan time.Time
	if s.team {
		t := time.NewTimer(s.streamTTL())
		defer t.Stop()
		renew = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-renew:
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case c := <-ch:
			if !canView(r, c.Namespace) {
				continue
			}
			b, _ := json.Marshal(c)
			fmt.Fprintf(w, "event: change\ndata: %s\n\n", b)
			fl.Flush()
		}
	}
}
