package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// inProcessController is `tend controller` run in the test's process.
type inProcessController struct {
	t    *testing.T
	log  *platform.LogBuffer
	done chan int
	once sync.Once
	halt func()
}

// runController starts `tend controller` in-process against kubeconfig,
// watching and electing its leader in ns, with its metrics, probes and
// push receiver off and a data directory of its own; flags add to or
// override those (the last of a repeated flag wins). It logs to log and
// stops when t ends, printing the log's tail if t failed.
func runController(t *testing.T, kubeconfig, ns string, log *platform.LogBuffer, flags ...string) *inProcessController {
	t.Helper()
	args := append([]string{"controller", "--kubeconfig", kubeconfig, "--watch-namespace", ns, "--leader-election-namespace", ns,
		"--metrics-addr", "0", "--probe-addr", "0", "--webhook-addr", "0", "--data-dir", t.TempDir()}, flags...)
	ctx, cancel := context.WithCancel(context.Background())
	c := &inProcessController{t: t, log: log, done: make(chan int, 1)}
	go func() { c.done <- (&Main{Stdout: io.Discard, Stderr: log}).Run(ctx, args) }()
	c.halt = func() { cancel(); <-c.done }
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("the controller's log:\n%s", log.Tail(80))
		}
	})
	return c
}

// stop stops the controller and waits until it has returned; its log is
// complete then.
func (c *inProcessController) stop() { c.once.Do(c.halt) }

// running fails the test if the controller has exited.
func (c *inProcessController) running() {
	c.t.Helper()
	select {
	case code := <-c.done:
		c.done <- code
		c.t.Fatalf("the controller exited with %d", code)
	default:
	}
}

// addr waits until the controller logs that its server called what
// ("dashboard", "webhook receiver") listens, and returns the address it
// bound: ask for port 0 and no other process can take the port in between.
func (c *inProcessController) addr(what string) string {
	c.t.Helper()
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(what) + ` listening".* addr=(\S+)`)
	var addr string
	eventually(c.t, "the controller's "+what+" listening", 2*time.Minute, func() bool {
		c.running()
		m := re.FindStringSubmatch(c.log.String())
		if m == nil {
			return false
		}
		addr = m[1]
		return true
	})
	return addr
}

// dashboardClient is a browser-like client of a dashboard at base: it
// keeps the session cookie.
type dashboardClient struct {
	t    *testing.T
	base string
	web  *http.Client
}

func newDashboardClient(t *testing.T, base string) *dashboardClient {
	jar, _ := cookiejar.New(nil)
	return &dashboardClient{t: t, base: base, web: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// get returns the status and body of GET path; a failed request is
// status 0 with the error as body.
func (d *dashboardClient) get(path string) (int, string) {
	resp, err := d.web.Get(d.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signIn signs in with token as the sign-in page does (a form post from
// the dashboard's own origin), retrying until the dashboard lands on its
// App list.
func (d *dashboardClient) signIn(token string) {
	d.t.Helper()
	eventually(d.t, "sign-in with the admin token", 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPost, d.base+"/auth/token", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", d.base)
		resp, err := d.web.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/"
	})
}
