package cluster

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// discoveryCounter counts the discovery requests a connection sends.
type discoveryCounter struct {
	mu   sync.Mutex
	reqs []string
}

// isDiscovery: GET /version, /api, /apis, /api/v1 or /apis/GROUP/VERSION
// (not a watch or list of a resource).
func isDiscovery(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	switch {
	case p == "version" || p == "api" || p == "apis":
		return true
	case parts[0] == "api":
		return len(parts) <= 2
	case parts[0] == "apis":
		return len(parts) <= 3
	}
	return false
}

func (d *discoveryCounter) wrap(_ string, rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if isDiscovery(r) {
			d.mu.Lock()
			d.reqs = append(d.reqs, r.URL.Path)
			d.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (d *discoveryCounter) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.reqs)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHelmClusterRediscoversWhenAPIsChange: Helm's capabilities are
// discovered once and served from memory while the cluster's APIs stay the
// same; a CRD installed after the first call is in the answer of a later
// one, without waiting minutes, and deleting it takes it out again.
func TestHelmClusterRediscoversWhenAPIsChange(t *testing.T) {
	env := testenv.New(t)
	var disc discoveryCounter
	conn, err := NewConn("", env.Config, ConnOptions{WrapTransport: disc.wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)

	group := env.Namespace + ".example.com"
	gv := group + "/v1"
	hc, err := conn.HelmCluster()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(hc.APIVersions, gv) {
		t.Fatalf("%s served before its CRD exists", gv)
	}
	if hc.KubeVersion == "" {
		t.Errorf("no Kubernetes version in %+v", hc)
	}
	n := disc.count()
	if n == 0 {
		t.Fatal("the first call sent no discovery request")
	}
	// Asked again with nothing changed, it answers from memory. (Another
	// package's tests may change a CRD meanwhile: then it rediscovers.)
	conn.mu.Lock()
	watching := conn.apis != nil
	unchanged := watching && conn.apis.count() == conn.helmSeen
	conn.mu.Unlock()
	if !watching {
		t.Fatal("the first call did not start watching CRDs and APIServices")
	}
	if again, err := conn.HelmCluster(); err != nil {
		t.Fatal(err)
	} else if unchanged && (again != hc || disc.count() != n) {
		t.Fatalf("with no API changed, a second call sent %d discovery requests", disc.count()-n)
	}

	ext, err := apiextclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crd := testenv.WidgetCRD(group)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
		}
	})
	served := func() bool {
		hc, err := conn.HelmCluster()
		return err == nil && slices.Contains(hc.APIVersions, gv) && slices.Contains(hc.APIVersions, gv+"/Widget")
	}
	testenv.Eventually(t, gv+" in Helm's capabilities once its CRD is installed", time.Minute, served)

	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted = true
	testenv.Eventually(t, gv+" gone from Helm's capabilities once its CRD is deleted", time.Minute, func() bool { return !served() })

	conn.Close()
	conn.mu.Lock()
	stopped := conn.apis == nil
	conn.mu.Unlock()
	if !stopped {
		t.Error("Close left the API watches running")
	}
}

// TestHelmClusterPollsWhereAPIsCannotBeWatched: a user who may not list
// CRDs and APIServices (discovery is open to every authenticated user)
// still gets Helm's capabilities; the connection falls back to discovering
// them periodically instead of watching.
func TestHelmClusterPollsWhereAPIsCannotBeWatched(t *testing.T) {
	env := testenv.New(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "tend-test-no-crd-access"}
	conn, err := NewConn("", cfg, ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	hc, err := conn.HelmCluster()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(hc.APIVersions, "apps/v1") {
		t.Errorf("apps/v1 not among %d API versions", len(hc.APIVersions))
	}
	conn.mu.Lock()
	denied, watching := conn.apisDenied, conn.apis != nil
	conn.mu.Unlock()
	if !denied || watching {
		t.Errorf("denied = %v, watching = %v; want a fallback to polling", denied, watching)
	}
}
