package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseProm(t *testing.T) {
	text := `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",dry_run="",group="",resource="configmaps",verb="APPLY"} 7
apiserver_request_total{code="200",dry_run="All",group="",resource="configmaps",verb="PATCH"} 2
apiserver_request_total{code="200",dry_run="",group="",resource="pods",verb="LIST"} 3
go_memstats_heap_inuse_bytes 1.2345e+07
weird{msg="a \"quoted\" \\ value, with comma"} 1
`
	sc, err := parseProm(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sc.sum("apiserver_request_total", nil), 12.0; got != want {
		t.Errorf("sum = %v, want %v", got, want)
	}
	dry := sc.sum("apiserver_request_total", func(l map[string]string) bool { return l["dry_run"] != "" })
	if dry != 2 {
		t.Errorf("dry runs = %v, want 2", dry)
	}
	if got := sc.by("apiserver_request_total", "verb", nil); got["APPLY"] != 7 || got["LIST"] != 3 {
		t.Errorf("by verb = %v", got)
	}
	if got := sc.sum("go_memstats_heap_inuse_bytes", nil); got != 12345000 {
		t.Errorf("heap = %v", got)
	}
	if len(sc) != 5 || sc[4].labels["msg"] != `a "quoted" \ value, with comma` {
		t.Errorf("escaped label: %q", sc[len(sc)-1].labels)
	}
	if sc.has("tend_renders_total") {
		t.Error("has reports a missing metric")
	}
}

func TestRequestKey(t *testing.T) {
	for _, c := range []struct{ method, target, contentType, want string }{
		{"GET", "/api/v1/namespaces/ns/configmaps/a", "", "GET configmaps"},
		{"GET", "/api/v1/namespaces/ns/configmaps", "", "LIST configmaps"},
		{"GET", "/apis/apps/v1/deployments?watch=true", "", "WATCH deployments.apps"},
		{"PATCH", "/apis/apps/v1/namespaces/ns/deployments/web?fieldManager=tend", "application/apply-patch+yaml", "APPLY deployments.apps"},
		{"PATCH", "/apis/apps/v1/namespaces/ns/deployments/web?dryRun=All", "application/apply-patch+yaml", "APPLY_DRYRUN deployments.apps"},
		{"PUT", "/apis/tend.dev/v1alpha1/namespaces/ns/apps/web/status", "", "UPDATE apps.tend.dev/status"},
		{"POST", "/api/v1/namespaces/ns/secrets", "", "CREATE secrets"},
		{"DELETE", "/api/v1/namespaces/ns", "", "DELETE namespaces"},
		{"PUT", "/api/v1/namespaces/ns/finalize", "", "UPDATE namespaces/finalize"},
		{"GET", "/apis/tend.dev/v1alpha1", "", "GET discovery"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		r.Header.Set("Content-Type", c.contentType)
		if got := requestKey(r); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.method, c.target, got, c.want)
		}
	}
}
