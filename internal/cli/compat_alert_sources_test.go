package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// A Flux Alert on GitRepositories delivers tend's events of the Sources
// they map to through its Provider: each new revision of the named
// GitRepository, except the one the exclusionList filters out, with the
// Alert's eventMetadata and summary; and a fetch failure. An Alert with
// eventSeverity error on every GitRepository gets the failure only.
func TestCompatFluxAlertsOnSources(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	type delivery struct {
		path string
		body map[string]any
	}
	var mu sync.Mutex
	var got []delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("delivery is not JSON: %v", err)
		}
		mu.Lock()
		got = append(got, delivery{r.URL.Path, m})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	// find returns the deliveries to path of kind for Source source whose
	// message contains text.
	find := func(path, kind, source, text string) []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var out []map[string]any
		for _, d := range got {
			s, _ := d.body["source"].(map[string]any)
			msg, _ := d.body["message"].(string)
			if d.path == path && d.body["kind"] == kind && s["name"] == source && strings.Contains(msg, text) {
				out = append(out, d.body)
			}
		}
		return out
	}

	repo := testenv.NewGitRepo(t, nil)
	first := repo.Commit("first", map[string]string{"apps/cm.yaml": configMapYAML("shop", "1")})
	createYAML(t, dyn, fluxProviders, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: all, namespace: %s}
spec: {type: generic, address: %s/all}
`, ns, srv.URL))
	createYAML(t, dyn, fluxProviders, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: errors, namespace: %s}
spec: {type: generic, address: %s/errors}
`, ns, srv.URL))
	createYAML(t, dyn, fluxAlerts, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: fleet-revisions, namespace: %s}
spec:
  providerRef: {name: all}
  eventSources: [{kind: GitRepository, name: fleet}]
  exclusionList: ["skip-notify"]
  eventMetadata: {env: staging}
  summary: Staging cluster
`, ns))
	createYAML(t, dyn, fluxAlerts, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: fetch-errors, namespace: %s}
spec:
  providerRef: {name: errors}
  eventSeverity: error
  eventSources: [{kind: GitRepository, name: "*"}]
`, ns))
	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })
	// The Notifiers exist before the GitRepositories are fetched.
	eventually(t, "Notifiers made from both Alerts", time.Minute, func() bool {
		var list tendv1.NotifierList
		return cl.c.List(ctx, &list, client.InNamespace(ns)) == nil && len(list.Items) == 2
	})
	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1h, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	eventually(t, "the first revision delivered", time.Minute, func() bool {
		return len(find("/all", "NewRevision", "fleet", first[:12])) == 1
	})
	d := find("/all", "NewRevision", "fleet", first[:12])[0]
	if md, _ := d["metadata"].(map[string]any); md["env"] != "staging" || md["summary"] != "Staging cluster" || d["severity"] != "info" {
		t.Errorf("delivery %v: want metadata env=staging and summary, severity info", d)
	}

	// A commit whose subject the exclusionList matches is fetched, not told.
	fetch := func(rev string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, rev)
		if _, err := dyn.Resource(fluxGitRepos).Namespace(ns).Patch(ctx, "fleet", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "revision "+rev+" fetched", time.Minute, func() bool {
			return strings.HasSuffix(getStatus(dyn, fluxGitRepos, ns, "fleet", "artifact", "revision"), rev)
		})
	}
	skipped := repo.Commit("skip-notify: reformat", map[string]string{"apps/cm.yaml": configMapYAML("shop", "2")})
	fetch(skipped)
	third := repo.Commit("third", map[string]string{"apps/cm.yaml": configMapYAML("shop", "3")})
	fetch(third)
	eventually(t, "the third revision delivered", time.Minute, func() bool {
		return len(find("/all", "NewRevision", "fleet", third[:12])) == 1
	})
	// Messages of one Notifier go out in order: the skipped one would
	// have come first.
	if n := len(find("/all", "NewRevision", "fleet", skipped[:12])); n != 0 {
		t.Errorf("the revision whose subject the exclusionList matches was delivered %d times", n)
	}

	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: broken, namespace: %s}
spec: {interval: 1h, url: %s/missing.git, ref: {branch: main}}
`, ns, repo.Server.URL))
	eventually(t, "the fetch failure of broken delivered to the error Alert", time.Minute, func() bool {
		return len(find("/errors", "FetchFailed", "broken", "")) == 1
	})
	if f := find("/errors", "FetchFailed", "broken", "")[0]; f["severity"] != "error" || f["error"] == "" {
		t.Errorf("fetch failure delivery %v: want severity error and the error", f)
	}
	if n := len(find("/errors", "NewRevision", "fleet", "")); n != 0 {
		t.Errorf("the Alert with eventSeverity error got %d new revisions", n)
	}
	if n := len(find("/all", "FetchFailed", "broken", "")); n != 0 {
		t.Errorf("the Alert on fleet got broken's failure")
	}
}
