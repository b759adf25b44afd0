package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/health"
)

// Local is a dashboard on a workstation: its own cache over the
// kubeconfig's credentials, served on a loopback address behind a token.
type Local struct {
	Server   *Server
	Listener net.Listener
	// URL opens the dashboard (it carries the token once).
	URL   string
	cache cache.Cache
	// conn is the engine's connection diffs go through; its watches of
	// the kinds diffed stay open while the dashboard runs, so that the
	// next diff of those kinds is quick.
	conn *cluster.Conn
}

// LocalOptions configure ListenLocal.
type LocalOptions struct {
	// Addr must be a loopback address ("127.0.0.1:8090"; port 0 picks one).
	Addr string
	// Namespaces limits the dashboard to these namespaces (for credentials
	// that may not list tend's kinds cluster-wide); empty: all.
	Namespaces []string
	// Log receives the actions' audit lines.
	Log *slog.Logger
}

// dashboardKinds are what the dashboard lists; the credentials must be
// allowed to list and watch them.
var dashboardKinds = []string{"apps", "sources", "appsets", "notifiers", "clusters"}

// ListenLocal connects to the cluster of cfg and listens on o.Addr. It
// fails, naming what is missing, when the credentials may not list and
// watch tend's kinds where the dashboard reads them.
func ListenLocal(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, o LocalOptions) (*Local, error) {
	addr, log := o.Addr, o.Log
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: address %q: %w", addr, err)
	}
	if !localHost(host) {
		return nil, fmt.Errorf("dashboard: address %q is not a loopback address: `tend dashboard` acts with your own credentials, so it listens on 127.0.0.1 or localhost only", addr)
	}
	// Each page asks the API server a few times (events, the tree's
	// objects): client-go's default 5 requests a second would make a
	// page wait on the client's own limiter. kubectl allows 50.
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	copts := cache.Options{Scheme: scheme, Mapper: mapper, HTTPClient: hc}
	if len(o.Namespaces) > 0 {
		copts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			copts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(cfg, copts)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	if err := canList(ctx, kube, o.Namespaces); err != nil {
		return nil, err
	}
	checker, err := health.NewChecker(nil)
	if err != nil {
		return nil, err
	}
	conn, err := cluster.NewConn("", cfg, cluster.ConnOptions{Inventory: &apply.SecretStore{Client: kube}, Health: checker, Log: log})
	if err != nil {
		return nil, err
	}
	// Stages are shown when the credentials may read them; a Role made
	// for the kinds above before Stages existed still opens the rest.
	noStages, err := deniedReads(ctx, kube, o.Namespaces, []string{"stages"})
	if err != nil {
		return nil, err
	}
	token := randomToken()
	srv, err := New(Options{
		Cache: c, Client: cl, Kube: kube, Dynamic: dyn, Mapper: mapper, Token: token, Log: log, NoStages: strings.Join(noStages, ", "),
		Differ: &appdiff.Differ{Config: cfg, Client: cl, Engine: conn.Engine},
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dashboard: %w (pick another with --addr)", err)
	}
	return &Local{Server: srv, Listener: ln, URL: "http://" + ln.Addr().String() + "/?token=" + token, cache: c, conn: conn}, nil
}

// Serve runs the cache and the server until ctx ends. It returns once the
// cache has synced or failed to, through ready (nil when synced).
func (l *Local) Serve(ctx context.Context, ready func(error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer l.conn.Close()
	errc := make(chan error, 2)
	go func() { errc <- l.cache.Start(ctx) }()
	syncCtx, stop := context.WithTimeout(ctx, time.Minute)
	// Started first, so that Watch's informers block until they synced.
	l.cache.WaitForCacheSync(syncCtx)
	err := l.Server.Watch(syncCtx)
	stop()
	if err != nil {
		err = fmt.Errorf("dashboard: the cluster's tend objects could not be listed within a minute (%w): is tend installed (`tend install`) and the cluster reachable?", err)
	}
	if ready != nil {
		ready(err)
	}
	if err != nil {
		return err
	}
	return serve(ctx, l.Server, l.Listener, errc, 2*time.Second)
}

// serve serves h on l until ctx ends, then shuts the server down within
// grace, or until an error arrives on errc (the server's own, or one of
// the caller's: errc needs room for the server's).
func serve(ctx context.Context, h http.Handler, l net.Listener, errc chan error, grace time.Duration) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- hs.Serve(l) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = hs.Shutdown(shut)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// canList asks the API server whether the credentials may list and watch
// each of tend's kinds in namespaces (all of them when empty).
func canList(ctx context.Context, kube kubernetes.Interface, namespaces []string) error {
	denied, err := deniedReads(ctx, kube, namespaces, dashboardKinds)
	if err != nil || len(denied) == 0 {
		return err
	}
	hint := "ask for a Role that allows them"
	if len(namespaces) == 0 {
		hint = "pass --namespace for the namespaces you may read, or ask for a ClusterRole that allows them"
	}
	return fmt.Errorf("dashboard: these credentials may not %s: %s", strings.Join(denied, ", "), hint)
}

// deniedReads lists the reads (list and watch of resources of tend.dev,
// in namespaces or everywhere) the credentials may not make.
func deniedReads(ctx context.Context, kube kubernetes.Interface, namespaces, resources []string) ([]string, error) {
	scopes := namespaces
	if len(scopes) == 0 {
		scopes = []string{""}
	}
	var denied []string
	for _, ns := range scopes {
		for _, res := range resources {
			for _, verb := range []string{"list", "watch"} {
				r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: ns, Verb: verb, Group: "tend.dev", Resource: res,
					}},
				}, metav1.CreateOptions{})
				if err != nil {
					return nil, fmt.Errorf("dashboard: asking the API server what these credentials may read: %w", err)
				}
				if !r.Status.Allowed {
					where := "in all namespaces"
					if ns != "" {
						where = "in namespace " + ns
					}
					denied = append(denied, fmt.Sprintf("%s %s.tend.dev %s", verb, res, where))
				}
			}
		}
	}
	return denied, nil
}
