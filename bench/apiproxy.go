package main

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// apiProxy sits between the controller and the apiserver on loopback and
// counts every request the controller sends, by verb and resource. tend's
// own tend_api_requests_total sees only its apply connection; the
// apiserver's apiserver_request_total sees every client of a shared
// apiserver. The proxy sees exactly the controller: its manager client
// (Apps, status, AppSets), inventory Secrets, events, leader election and
// applies alike.
type apiProxy struct {
	srv *httptest.Server

	mu     sync.Mutex
	counts map[string]float64 // "VERB resource[/subresource]"
	// paths counts the requests a steady state must not send by "VERB
	// /url/path", so that a report names the objects read or written.
	paths map[string]float64
}

func newAPIProxy(cfg *rest.Config) (*apiProxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	p := &apiProxy{counts: map[string]float64{}, paths: map[string]float64{}}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	// TLS with HTTP/2, as the apiserver serves: the controller multiplexes
	// its requests over one connection. Over HTTP/1.1 it would open and
	// close connections by the hundred under load (client-go keeps 25 idle
	// per host), which costs CPU a real cluster does not.
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := requestKey(r)
		p.mu.Lock()
		p.counts[key]++
		if verb, resource, _ := strings.Cut(key, " "); verb != "WATCH" && resource != "leases.coordination.k8s.io" {
			p.paths[verb+" "+r.URL.Path]++
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	p.srv.EnableHTTP2 = true
	p.srv.StartTLS()
	return p, nil
}

// Close ends the controller's open connections (watches) and stops.
func (p *apiProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// writeKubeconfig writes a kubeconfig that reaches the apiserver through
// the proxy (which adds the admin credentials).
func (p *apiProxy) writeKubeconfig(path string) error {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	return os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench-proxy
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: bench-proxy
  user: {}
contexts:
- name: bench-proxy
  context: {cluster: bench-proxy, user: bench-proxy}
current-context: bench-proxy
`, p.srv.URL, base64.StdEncoding.EncodeToString(ca))), 0o600)
}

// snapshot copies the counters.
func (p *apiProxy) snapshot() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]float64, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// pathSnapshot copies the counters by "VERB /url/path" (watches and
// leases apart).
func (p *apiProxy) pathSnapshot() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]float64, len(p.paths))
	for k, v := range p.paths {
		out[k] = v
	}
	return out
}

// byVerb folds "VERB resource" counters into verbs.
func byVerb(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		verb, _, _ := strings.Cut(k, " ")
		out[verb] += v
	}
	return out
}

// writesByResource keeps the write requests of "VERB resource" counters.
func writesByResource(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if verb, _, _ := strings.Cut(k, " "); writeVerbs[verb] || strings.HasSuffix(verb, "_DRYRUN") {
			out[k] += v
		}
	}
	return out
}

// steadyRequests splits "VERB resource" counters into what a steady
// state must not send (every request but watches and lease renewals),
// watches (each WATCH is a watch stream opened or re-opened: the apiserver
// ends watches after 5 to 10 minutes) and leader election's Lease requests.
func steadyRequests(m map[string]float64) (requests map[string]float64, watches, leases float64) {
	requests = map[string]float64{}
	for k, v := range m {
		verb, resource, _ := strings.Cut(k, " ")
		switch {
		case verb == "WATCH":
			watches += v
		case resource == "leases.coordination.k8s.io":
			leases += v
		default:
			requests[k] += v
		}
	}
	return requests, watches, leases
}

// requestKey names a request the way apiserver_request_total does: GET of
// a collection is LIST, ?watch=true is WATCH, POST is CREATE, PUT UPDATE,
// a server-side apply PATCH is APPLY; dry runs get a _DRYRUN suffix.
func requestKey(r *http.Request) string {
	resource, name, sub, ok := parseAPIPath(r.URL.Path)
	if !ok {
		return "GET discovery"
	}
	q := r.URL.Query()
	var verb string
	switch r.Method {
	case http.MethodGet:
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			verb = "WATCH"
		case name == "":
			verb = "LIST"
		default:
			verb = "GET"
		}
	case http.MethodPost:
		verb = "CREATE"
	case http.MethodPut:
		verb = "UPDATE"
	case http.MethodPatch:
		verb = "PATCH"
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/apply-patch") {
			verb = "APPLY"
		}
	case http.MethodDelete:
		verb = "DELETE"
		if name == "" {
			verb = "DELETECOLLECTION"
		}
	default:
		verb = r.Method
	}
	if q.Has("dryRun") {
		verb += "_DRYRUN"
	}
	if sub != "" {
		resource += "/" + sub
	}
	return verb + " " + resource
}

// parseAPIPath splits /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] and
// /apis/GROUP/VERSION/... into resource (group-qualified), name and
// subresource; ok is false for discovery and other non-resource paths.
func parseAPIPath(path string) (resource, name, sub string, ok bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	group := ""
	switch {
	case len(seg) >= 3 && seg[0] == "api":
		seg = seg[2:]
	case len(seg) >= 4 && seg[0] == "apis":
		group, seg = seg[1], seg[3:]
	default:
		return "", "", "", false
	}
	if len(seg) > 0 && seg[0] == "watch" { // deprecated /watch/ paths
		seg = seg[1:]
	}
	if len(seg) >= 3 && seg[0] == "namespaces" && !(len(seg) == 3 && (seg[2] == "status" || seg[2] == "finalize")) {
		seg = seg[2:]
	}
	if len(seg) == 0 {
		return "", "", "", false
	}
	resource = seg[0]
	if group != "" {
		resource += "." + group
	}
	if len(seg) > 1 {
		name = seg[1]
	}
	if len(seg) > 2 {
		sub = seg[2]
	}
	return resource, name, sub, true
}
