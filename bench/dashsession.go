package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/tend-gitops/tend/internal/dashboard"
)

// dashSessionResult is what one browser session on the controller's
// dashboard did while the controller worked (scale with -dashboard).
type dashSessionResult struct {
	// Lists counts the App list reloads the live updates asked for, and
	// Changes the live-update events received.
	Lists   int `json:"listReloads"`
	Changes int `json:"changeEvents"`
	// ListP50Ms and ListP95Ms are the reloads' latencies.
	ListP50Ms float64 `json:"listP50Ms"`
	ListP95Ms float64 `json:"listP95Ms"`
	// Errors are failed requests (at most a few kept).
	Errors []string `json:"errors,omitempty"`
}

// dashSession is one signed-in browser on the App list of the
// controller's dashboard: it keeps the live-update stream open and, as
// the page's script does, reloads the first page of 50 Apps 300 ms after
// an App or Source changed, one reload at a time.
type dashSession struct {
	base string
	web  *http.Client
	ns   string

	mu  sync.Mutex
	res dashSessionResult
	lat []float64

	stop func()
	done chan struct{}
}

// openDashSession writes an admin token into the dashboard's Secret in ns,
// signs in at base with it and starts the session.
func openDashSession(ctx context.Context, kube kubernetes.Interface, base, ns string) (*dashSession, error) {
	token, err := dashboard.AdminTokenPatch(ctx, kube, ns, dashboard.DefaultTeamName)
	if err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	s := &dashSession{base: base, ns: ns, web: &http.Client{Jar: jar, Timeout: 30 * time.Second}, done: make(chan struct{})}
	// The dashboard reads the token's hash from its informer: retry.
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := s.signIn(token)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("signing in to the controller's dashboard at %s: %v", base, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	s.stop = cancel
	go s.run(sctx)
	return s, nil
}

func (s *dashSession) signIn(token string) (bool, error) {
	req, err := http.NewRequest(http.MethodPost, s.base+"/auth/token", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.base)
	resp, err := s.web.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		return false, fmt.Errorf("sign-in answered %s at %s", resp.Status, resp.Request.URL.Path)
	}
	return true, nil
}

// run follows the live-update stream, reconnecting when the dashboard
// ends it (every few minutes behind the sign-in), until ctx ends.
func (s *dashSession) run(ctx context.Context) {
	defer close(s.done)
	changed := make(chan struct{}, 1)
	go s.reloader(ctx, changed)
	for ctx.Err() == nil {
		if err := s.follow(ctx, changed); err != nil && ctx.Err() == nil {
			s.fail(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *dashSession) follow(ctx context.Context, changed chan<- struct{}) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/v1/events", nil)
	if err != nil {
		return err
	}
	stream := &http.Client{Jar: s.web.Jar} // no timeout: the stream stays open
	resp, err := stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("live updates: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var c struct{ Kind string }
		if json.Unmarshal([]byte(data), &c) != nil {
			continue
		}
		s.mu.Lock()
		s.res.Changes++
		s.mu.Unlock()
		if c.Kind == "App" || c.Kind == "Source" {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
	return nil // the dashboard ended the stream: reconnect
}

// reloader reloads the list 300 ms after a change, one reload at a time.
func (s *dashSession) reloader(ctx context.Context, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		t0 := time.Now()
		resp, err := s.web.Get(s.base + "/api/v1/apps?namespace=" + s.ns + "&pageSize=50")
		if err != nil {
			s.fail(err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			s.fail(fmt.Errorf("the App list: %s", resp.Status))
			continue
		}
		s.mu.Lock()
		s.res.Lists++
		s.lat = append(s.lat, float64(time.Since(t0).Microseconds())/1000)
		s.mu.Unlock()
	}
}

func (s *dashSession) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.res.Errors) < 5 {
		s.res.Errors = append(s.res.Errors, err.Error())
	}
}

// close ends the session and returns what it did.
func (s *dashSession) close() *dashSessionResult {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.res
	if len(s.lat) > 0 {
		sort.Float64s(s.lat)
		res.ListP50Ms, res.ListP95Ms = percentile(s.lat, 50), percentile(s.lat, 95)
	}
	return &res
}
