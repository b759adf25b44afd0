package controller

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// Faults of chart repositories and OCI registries (docs/reliability.md): an
// App whose chart cannot be fetched, or arrives damaged, applies nothing
// from it, keeps what it applied last and says why in its Ready condition;
// once the server is healthy the new version is applied.

// Chart server faults a chartFront injects.
const (
	chartHealthy   = ""
	chartError500  = "500"      // every request answered 500
	chartTruncated = "truncate" // archives cut off half way (the connection closes)
	chartCorrupted = "corrupt"  // archives with bytes changed, complete
	chartBadDigest = "digest"   // index.yaml lists wrong digests
)

// badDigest is the digest chartBadDigest writes into index.yaml.
var badDigest = strings.Repeat("0", 64)

// chartFront is a proxy in front of a chart repository or registry that
// injects one fault at a time (mode).
type chartFront struct {
	target string
	mode   atomic.Value // string
	// Host is 127.0.0.1:PORT.
	Host string
}

func newChartFront(t *testing.T, target string) *chartFront {
	t.Helper()
	f := &chartFront{target: strings.TrimSuffix(target, "/")}
	f.mode.Store(chartHealthy)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.Host = strings.TrimPrefix(srv.URL, "http://")
	return f
}

func (f *chartFront) set(mode string) { f.mode.Store(mode) }

var indexDigest = regexp.MustCompile(`(?m)^(\s*digest:\s*)(sha256:)?[0-9a-f]{64}\s*$`)

func (f *chartFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := f.mode.Load().(string)
	if mode == chartError500 {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, f.target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// A chart archive: from a chart repository, or a registry's blob.
	archive := r.Method == http.MethodGet && resp.StatusCode == http.StatusOK &&
		(strings.HasSuffix(r.URL.Path, ".tgz") || strings.Contains(r.URL.Path, "/blobs/sha256:"))
	declared := len(body)
	switch {
	case archive && mode == chartTruncated:
		body = body[:len(body)/2]
	case archive && mode == chartCorrupted:
		body = append([]byte{}, body...)
		for i := len(body) / 3; i < len(body)/3+16 && i < len(body); i++ {
			body[i] ^= 0xff
		}
	case mode == chartBadDigest && r.URL.Path == "/index.yaml":
		body = indexDigest.ReplaceAll(body, []byte("${1}"+badDigest))
		declared = len(body)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(declared))
	w.Header().Del("Etag") // no 304s: every request sees the fault
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body) // short of declared when truncated: the connection is closed
	}
}

// chartFaultApp creates App "web" on Source "charts" with version range
// ~1.0.0, waits until 1.0.0 is applied and returns a function that checks
// that the App and its ConfigMap are still at 1.0.0.
func chartFaultApp(t *testing.T, e *ctlEnv, src *tendv1.Source) (unchanged func()) {
	t.Helper()
	src.Name = "charts"
	src.Spec.Interval = metav1.Duration{Duration: time.Second}
	e.create(t, src, newApp("web", "charts", "", e.Namespace, func(a *tendv1.App) {
		a.Spec.Chart = &tendv1.ChartSpec{Name: "web", Version: "~1.0.0"}
		a.Spec.Sync.Interval = metav1.Duration{Duration: time.Second}
	}))
	var cmRV string
	eventually(t, "chart 1.0.0 applied", 60*time.Second, func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		cmRV = ""
		if err == nil && cm.Data["version"] == "1.0.0" {
			cmRV = cm.ResourceVersion
		}
		return cmRV != ""
	})
	good := e.waitApp(t, "web", "Synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	return func() {
		t.Helper()
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		if err != nil || cm.Data["version"] != "1.0.0" || cm.ResourceVersion != cmRV {
			t.Errorf("ConfigMap web-chart changed from a bad chart: %v (resourceVersion %s, was %s) %v", cm.Data, cm.ResourceVersion, cmRV, err)
		}
		if a := e.app(t, "web"); a.Status.Revision != good.Status.Revision {
			t.Errorf("App revision = %s, want %s kept", a.Status.Revision, good.Status.Revision)
		}
	}
}

// appRefuses waits until the App's Ready condition is False with a
// message holding each of want, and checks that nothing changed.
func appRefuses(t *testing.T, e *ctlEnv, unchanged func(), fault string, want ...string) {
	t.Helper()
	a := e.waitApp(t, "web", fault+" reported", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse {
			return false
		}
		for _, w := range want {
			if !strings.Contains(c.Message, w) {
				return false
			}
		}
		return true
	})
	if c := condition(a, tendv1.ConditionReady); c.Reason != ReasonRenderFailed {
		t.Errorf("%s: App Ready reason = %s, want %s (%s)", fault, c.Reason, ReasonRenderFailed, c.Message)
	}
	unchanged()
}

// TestChartRepositoryFaultsApplyNothing: a chart repository answering 500,
// cutting archives short, serving corrupted archives or listing wrong
// digests: the new version is refused with a message naming the fault, the
// version applied before stays; once the repository is healthy the new
// version is applied.
func TestChartRepositoryFaultsApplyNothing(t *testing.T) {
	e := startControllerWith(t, func(o *Options) { o.ChartIndexTTL = time.Second })
	repo := charttest.NewRepo(t, "", "")
	repo.Add(t, charttest.Package(t, chartFiles("1.0.0")))
	front := newChartFront(t, repo.URL)
	unchanged := chartFaultApp(t, e, &tendv1.Source{Spec: tendv1.SourceSpec{Helm: &tendv1.HelmRepositorySource{URL: "http://" + front.Host}}})

	front.set(chartError500)
	repo.Add(t, charttest.Package(t, chartFiles("1.0.1")))
	appRefuses(t, e, unchanged, "HTTP 500", "http://"+front.Host+"/index.yaml", "HTTP 500")

	front.set(chartTruncated)
	appRefuses(t, e, unchanged, "truncated archive", "web-1.0.1.tgz", "unexpected EOF")

	front.set(chartCorrupted)
	appRefuses(t, e, unchanged, "corrupted archive", "web-1.0.1.tgz", "does not match", "the archive or the index is corrupt")

	front.set(chartBadDigest)
	appRefuses(t, e, unchanged, "wrong digest", "does not match sha256:"+badDigest)

	front.set(chartHealthy)
	eventually(t, "1.0.1 applied once the repository is healthy", 60*time.Second, func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		return err == nil && cm.Data["version"] == "1.0.1"
	})
	e.waitApp(t, "web", "Ready again", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue
	})
}

// TestOCIRegistryFaultsApplyNothing: an OCI registry answering 500, cutting
// blobs short or serving blobs whose bytes do not match their digest: the
// Source or the App says so, nothing from the bad blob is applied, and the
// new version is applied once the registry is healthy.
func TestOCIRegistryFaultsApplyNothing(t *testing.T) {
	e := startControllerWith(t, func(o *Options) { o.ChartIndexTTL = time.Second })
	reg := charttest.NewRegistry(t, "", "")
	reg.Push(t, charttest.Package(t, chartFiles("1.0.0")))
	front := newChartFront(t, "http://"+reg.Host)
	unchanged := chartFaultApp(t, e, &tendv1.Source{Spec: tendv1.SourceSpec{OCI: &tendv1.OCIRepositorySource{URL: "oci://" + front.Host + "/charts", Insecure: true}}})

	front.set(chartError500)
	reg.Push(t, charttest.Package(t, chartFiles("1.0.1")))
	appRefuses(t, e, unchanged, "HTTP 500", front.Host, "500")
	src := waitSource(t, e, "charts", "Ready False for FetchFailed", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonFetchFailed
	})
	if c := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady); !strings.Contains(c.Message, front.Host) {
		t.Errorf("Source Ready message %q does not name the registry %s", c.Message, front.Host)
	}
	if meta.IsStatusConditionTrue(src.Status.Conditions, tendv1.ConditionStalled) {
		t.Errorf("Source Stalled by a registry's 500, which retrying may fix: %+v", src.Status.Conditions)
	}

	front.set(chartTruncated)
	appRefuses(t, e, unchanged, "truncated blob", "download chart", "1.0.1")

	front.set(chartCorrupted)
	appRefuses(t, e, unchanged, "corrupted blob", "download chart", "1.0.1", "digest")

	front.set(chartHealthy)
	eventually(t, "1.0.1 applied once the registry is healthy", 60*time.Second, func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		return err == nil && cm.Data["version"] == "1.0.1"
	})
	waitSource(t, e, "charts", "Ready again", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
}
