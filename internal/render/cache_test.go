package render

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// monorepo writes n plain YAML apps, apps/app-000 ... , of two files each.
func monorepo(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{"README.md": "apps\n"}
	for i := range n {
		app := fmt.Sprintf("apps/app-%03d", i)
		files[app+"/cm.yaml"] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {v: \"1\"}\n", i)
		files[app+"/sa.yaml"] = fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa-%d}\n", i)
	}
	writeFiles(t, root, files)
	return root
}

func appOptions(i int) Options {
	return Options{Path: fmt.Sprintf("apps/app-%03d", i), Namespace: fmt.Sprintf("ns-%d", i)}
}

func TestCacheChangeDetection(t *testing.T) {
	const n = 200
	root := monorepo(t, n)
	ctx := context.Background()
	r := &Renderer{}
	var c Cache

	// Revision 1: every App renders once.
	prev := make([]*Result, n)
	for i := range n {
		res, err := c.RenderChange(ctx, r, root, "rev1", appOptions(i), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		prev[i] = res
	}
	if got, want := c.Stats(), (CacheStats{Renders: n}); got != want {
		t.Fatalf("after the first sync: %+v, want %+v", got, want)
	}

	// Revision 2 changes one file of app 7 and the README.
	writeFiles(t, root, map[string]string{"apps/app-007/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-7}\ndata: {v: \"2\"}\n"})
	changed := []string{"apps/app-007/cm.yaml", "README.md"}
	for i := range n {
		res, err := c.RenderChange(ctx, r, root, "rev2", appOptions(i), prev[i], changed)
		if err != nil {
			t.Fatal(err)
		}
		if i != 7 && res != prev[i] {
			t.Errorf("app %d: a new Result for an unaffected App", i)
		}
		prev[i] = res
	}
	if got, want := c.Stats(), (CacheStats{Renders: n + 1, Reused: n - 1}); got != want {
		t.Fatalf("after a one-file commit: %+v, want %+v", got, want)
	}
	if got, want := nestedString(t, findObj(t, prev[7].Objects(), "ConfigMap", "cm-7"), "data", "v"), "2"; got != want {
		t.Errorf("app 7 after the change: v = %q, want %q", got, want)
	}

	// Revision 3 adds a file to app 11's directory: its listing changed.
	writeFiles(t, root, map[string]string{"apps/app-011/extra.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: extra}\n"})
	for i := range n {
		res, err := c.RenderChange(ctx, r, root, "rev3", appOptions(i), prev[i], []string{"apps/app-011/extra.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		prev[i] = res
	}
	if got, want := c.Stats(), (CacheStats{Renders: n + 2, Reused: 2*n - 2}); got != want {
		t.Fatalf("after adding a file: %+v, want %+v", got, want)
	}
	findObj(t, prev[11].Objects(), "Secret", "extra")

	// Asking again for the same revision and spec is a hit, whatever the
	// previous Result.
	if _, err := c.Render(ctx, r, root, "rev3", appOptions(11)); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats().Hits, int64(1); got != want {
		t.Errorf("hits: got %d, want %d", got, want)
	}

	// An unknown change (nil) or a different spec renders.
	if _, err := c.RenderChange(ctx, r, root, "rev4", appOptions(3), prev[3], nil); err != nil {
		t.Fatal(err)
	}
	opts := appOptions(4)
	opts.Namespace = "elsewhere"
	if _, err := c.RenderChange(ctx, r, root, "rev4", opts, prev[4], []string{"README.md"}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats().Renders, int64(n+4); got != want {
		t.Errorf("renders: got %d, want %d", got, want)
	}
}

func TestCacheKeepsErrorsOut(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"app/bad.yaml": "kind: X\n"})
	var c Cache
	for range 2 {
		if _, err := c.Render(context.Background(), &Renderer{}, root, "rev", Options{Path: "app"}); err == nil {
			t.Fatal("want an error")
		}
	}
	if got, want := c.Stats().Renders, int64(2); got != want {
		t.Errorf("renders: got %d, want %d (failures are not cached)", got, want)
	}
	if got, want := c.Len(), 0; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
}

func TestCacheSharesConcurrentRenders(t *testing.T) {
	root := monorepo(t, 1)
	// Make the render take a while: many files in the App.
	for i := range 300 {
		writeFiles(t, root, map[string]string{fmt.Sprintf("apps/app-000/f-%03d.yaml", i): fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: f-%d}\n", i)})
	}
	var c Cache
	var wg sync.WaitGroup
	results := make([]*Result, 16)
	for i := range results {
		wg.Go(func() {
			res, err := c.Render(context.Background(), &Renderer{}, root, "rev", appOptions(0))
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	if got, want := c.Stats().Renders, int64(1); got != want {
		t.Errorf("renders: got %d, want %d", got, want)
	}
	for i, res := range results {
		if res != results[0] {
			t.Errorf("caller %d got a different Result", i)
		}
	}
}

func TestCacheBound(t *testing.T) {
	root := monorepo(t, 5)
	c := Cache{Size: 3}
	for i := range 5 {
		if _, err := c.Render(context.Background(), &Renderer{}, root, "rev", appOptions(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.Len(), 3; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	// The oldest was evicted, the newest kept.
	if _, err := c.Render(context.Background(), &Renderer{}, root, "rev", appOptions(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Render(context.Background(), &Renderer{}, root, "rev", appOptions(0)); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats(), (CacheStats{Renders: 6, Hits: 1}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
}

func TestSpecHash(t *testing.T) {
	base := Options{Path: "apps/a", Namespace: "a", Keys: &Keys{Age: []string{"AGE-SECRET-KEY-1AAA"}},
		Helm: &HelmOptions{ReleaseName: "r", Values: map[string]any{"b": 1, "a": map[string]any{"y": 2, "x": 1}},
			Chart: &ChartRef{RepoURL: "https://charts.example.com", Name: "c", Password: "hunter2"}}}
	same := base
	same.Helm = &HelmOptions{ReleaseName: "r", Values: map[string]any{"a": map[string]any{"x": 1, "y": 2}, "b": 1},
		Chart: &ChartRef{RepoURL: "https://charts.example.com", Name: "c", Password: "hunter2"}}
	if got, want := SpecHash(same), SpecHash(base); got != want {
		t.Errorf("equal Options hash differently: %s != %s", got, want)
	}
	if base.Helm.Chart.Password != "hunter2" || base.Keys.Age[0] != "AGE-SECRET-KEY-1AAA" {
		t.Errorf("SpecHash changed its argument")
	}
	variants := map[string]func(o *Options){
		"path":      func(o *Options) { o.Path = "apps/b" },
		"namespace": func(o *Options) { o.Namespace = "b" },
		"recursive": func(o *Options) { o.Recursive = true },
		"age key":   func(o *Options) { o.Keys = &Keys{Age: []string{"AGE-SECRET-KEY-1BBB"}} },
		"pgp key":   func(o *Options) { o.Keys = &Keys{Age: o.Keys.Age, PGP: [][]byte{[]byte("k")}} },
		"password": func(o *Options) {
			h := *o.Helm
			c := *h.Chart
			c.Password = "other"
			h.Chart = &c
			o.Helm = &h
		},
		"values": func(o *Options) {
			h := *o.Helm
			h.Values = map[string]any{"b": 2}
			o.Helm = &h
		},
	}
	for name, change := range variants {
		o := base
		change(&o)
		if SpecHash(o) == SpecHash(base) {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}

func TestCacheDoesNotTouchTheArtifact(t *testing.T) {
	root := monorepo(t, 3)
	before := treeState(t, root)
	var c Cache
	for i := range 3 {
		if _, err := c.Render(context.Background(), &Renderer{}, root, "rev", appOptions(i)); err != nil {
			t.Fatal(err)
		}
	}
	if after := treeState(t, root); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the cache changed the artifact")
	}
}

// A Renderer's Discover is asked only by Helm renders, and a kept Helm
// Result is rendered again when the cluster's API versions change: an idle
// controller whose Apps render no chart asks the cluster nothing.
func TestCacheDiscoversClusterOnlyForHelm(t *testing.T) {
	root := monorepo(t, 1)
	writeFiles(t, root, map[string]string{
		"chart/Chart.yaml":          "apiVersion: v2\nname: chart\nversion: 1.0.0\n",
		"chart/templates/caps.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata: {widgets: {{ .Capabilities.APIVersions.Has \"example.com/v1\" | quote }}}\n",
	})
	ctx := context.Background()
	var c Cache
	apis := []string{"v1", "apps/v1"}
	var asked int
	renderer := func() *Renderer {
		return &Renderer{Discover: func() (*Cluster, error) {
			asked++
			return &Cluster{KubeVersion: "v1.37.1", APIVersions: slices.Clone(apis)}, nil
		}}
	}

	// Plain YAML: rendered, then kept, and the cluster never asked.
	for range 2 {
		if _, err := c.Render(ctx, renderer(), root, "rev", appOptions(0)); err != nil {
			t.Fatal(err)
		}
	}
	if asked != 0 {
		t.Errorf("plain YAML renders asked the cluster %d times, want 0", asked)
	}

	chartOpts := Options{Path: "chart", Namespace: "ns", Helm: &HelmOptions{ReleaseName: "r"}}
	widgets := func() string {
		t.Helper()
		res, err := c.Render(ctx, renderer(), root, "rev", chartOpts)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Objects() {
			if o.GetName() == "caps" {
				v, _, _ := unstructured.NestedString(o.Object, "data", "widgets")
				return v
			}
		}
		t.Fatal("the chart rendered no ConfigMap caps")
		return ""
	}
	if got := widgets(); got != "false" || asked != 1 {
		t.Fatalf("first Helm render: widgets %q after %d discoveries, want \"false\" after 1", got, asked)
	}
	before := c.Stats()
	if got := widgets(); got != "false" {
		t.Fatalf("unchanged cluster: widgets %q, want \"false\"", got)
	}
	if got := c.Stats(); got.Renders != before.Renders || got.Hits != before.Hits+1 {
		t.Errorf("unchanged cluster: %+v after %+v, want one more hit and no render", got, before)
	}
	apis = append(apis, "example.com/v1")
	if got := widgets(); got != "true" {
		t.Errorf("after example.com/v1 appeared: widgets %q, want \"true\" (rendered again)", got)
	}
	if got := c.Stats(); got.Renders != before.Renders+1 {
		t.Errorf("after the cluster changed: %d renders, want %d", got.Renders, before.Renders+1)
	}
}
