package project

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// clusterEnv is a namespace of the local control plane with tend's CRDs,
// its Client able to read tend's kinds.
func clusterEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	env.Client = c
	return env
}

// create stores objs in ns, in order.
func create(t *testing.T, c client.Client, ns string, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetNamespace(ns)
		o.SetResourceVersion("")
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// inNamespace is newApp in namespace ns.
func inNamespace(ns string, mods ...func(*tendv1.App)) *tendv1.App {
	a := newApp(mods...)
	a.Namespace = ns
	return a
}

// refusedBy checks that err is the Project's refusal naming field.
func refusedBy(t *testing.T, err error, project, field string) {
	t.Helper()
	var d *Denied
	if !errors.As(err, &d) || d.Project != project || !strings.Contains(err.Error(), field) {
		t.Errorf("err = %v; want a refusal by the Project %s naming %s", err, project, field)
	}
}

// The Sources an App reads Helm values files from are read from the
// apiserver, in the App's namespace, and checked like its own.
func TestCheckAppValuesFromSources(t *testing.T) {
	env, other := clusterEnv(t), testenv.New(t)
	const allowed, refused = "https://git.example.org/values.git", "https://elsewhere.example/values.git"
	create(t, env.Client, env.Namespace,
		gitSource("values-bad", refused),
		gitSource("values-ok", allowed),
		helmSource("values-helm", "https://charts.elsewhere.example/"),
	)
	// A Source of the same name in another namespace is not the one the
	// App reads.
	create(t, env.Client, other.Namespace, gitSource("only-elsewhere", refused))
	rules := mustCompile(t, tendv1.ProjectSpec{SourceRepos: []string{"https://git.example.org/*"}})
	src := gitSource("repo", "https://git.example.org/app.git")
	for _, tc := range []struct {
		name     string
		from     []tendv1.ValuesReference
		want     []string
		dontWant []string
	}{
		{
			name: "disallowed values Source",
			from: []tendv1.ValuesReference{{Kind: "Source", Name: "values-bad"}},
			want: []string{fmt.Sprintf("spec.helm.valuesFrom[0]: the Source values-bad names the repository %q", refused)},
		},
		{
			name: "allowed values Source",
			from: []tendv1.ValuesReference{{Kind: "Source", Name: "values-ok"}},
		},
		{
			name: "index of the refused entry",
			from: []tendv1.ValuesReference{
				{Kind: "ConfigMap", Name: "values-bad"},
				{Kind: "Source", Name: "values-ok"},
				{Kind: "Source", Name: "missing"},
				{Kind: "Secret", Name: "values-bad"},
				{Kind: "Source", Name: "values-helm"},
				{Kind: "Source", Name: "values-bad"},
			},
			want: []string{
				`spec.helm.valuesFrom[4]: the Source values-helm names the repository "https://charts.elsewhere.example/"`,
				"spec.helm.valuesFrom[5]: the Source values-bad",
			},
			dontWant: []string{"valuesFrom[0]", "valuesFrom[1]", "valuesFrom[2]", "valuesFrom[3]"},
		},
		{
			name: "ConfigMap and Secret are not Sources",
			from: []tendv1.ValuesReference{{Kind: "ConfigMap", Name: "values-bad"}, {Kind: "Secret", Name: "values-bad"}},
		},
		{
			name: "missing Source left to the render",
			from: []tendv1.ValuesReference{{Kind: "Source", Name: "missing"}},
		},
		{
			name: "read in the App's namespace",
			from: []tendv1.ValuesReference{{Kind: "Source", Name: "only-elsewhere"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := inNamespace(env.Namespace, func(a *tendv1.App) { a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: tc.from} })
			checkDenied(t, rules.CheckApp(context.Background(), env.Client, app, src), tc.want, tc.dontWant)
		})
	}

	t.Run("read error is returned, not a refusal", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		app := inNamespace(env.Namespace, func(a *tendv1.App) {
			a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{{Kind: "Source", Name: "values-bad"}}}
		})
		err := rules.CheckApp(ctx, env.Client, app, src)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDenied) {
			t.Fatalf("err = %v, want the read's error, not a refusal", err)
		}
	})
}

// Load reads an App's Project from the apiserver: the one spec.project
// names, else the one its Namespace's label names, in the App's namespace.
func TestLoad(t *testing.T) {
	env, other := clusterEnv(t), testenv.New(t)
	ctx := context.Background()
	ns := env.Namespace
	stored := newProject(tendv1.ProjectSpec{SourceRepos: []string{"https://git.example.org/*"}})
	badProject := newProject(tendv1.ProjectSpec{SourceRepos: []string{"{a"}})
	badProject.Name = "bad"
	create(t, env.Client, ns, stored, badProject)
	elsewhere := newProject(tendv1.ProjectSpec{SourceRepos: []string{"*"}})
	elsewhere.Name = "elsewhere"
	create(t, env.Client, other.Namespace, elsewhere)
	c := env.Client
	withProject := func(p string) *tendv1.App { return inNamespace(ns, func(a *tendv1.App) { a.Spec.Project = p }) }
	label := func(value string) {
		t.Helper()
		var n corev1.Namespace
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
			t.Fatal(err)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[tendv1.LabelProject] = value
		if value == "" {
			delete(n.Labels, tendv1.LabelProject)
		}
		if err := c.Update(ctx, &n); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("no project", func(t *testing.T) {
		r, err := Load(ctx, c, withProject(""))
		if r != nil || err != nil {
			t.Fatalf("Load = %v, %v; want nil, nil", r, err)
		}
		// nil Rules allow everything.
		if err := r.CheckApp(ctx, c, withProject(""), gitSource("repo", "https://anything.example/x.git")); err != nil {
			t.Errorf("nil Rules CheckApp: %v", err)
		}
	})
	t.Run("from the Namespace's label", func(t *testing.T) {
		label("team")
		defer label("")
		r, err := Load(ctx, c, withProject(""))
		if err != nil || r == nil {
			t.Fatalf("Load of an App without spec.project in a labelled namespace = %v, %v; want the Project team", r, err)
		}
		refusedBy(t, r.CheckApp(ctx, c, withProject(""), gitSource("repo", "https://other.example/a.git")), ns+"/team", "spec.sourceRepos")
		label("nope")
		if _, err := Load(ctx, c, withProject("")); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "the Namespace's label tend.dev/project") {
			t.Errorf("Load with the label naming a missing Project = %v; want ErrNotFound naming the label", err)
		}
	})
	t.Run("found", func(t *testing.T) {
		r, err := Load(ctx, c, withProject("team"))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		var p tendv1.Project
		if err := c.Get(ctx, client.ObjectKeyFromObject(stored), &p); err != nil {
			t.Fatal(err)
		}
		if r.Version() == "" || r.Version() != p.ResourceVersion {
			t.Errorf("Version = %q, want the stored resourceVersion %q", r.Version(), p.ResourceVersion)
		}
		if err := r.CheckApp(ctx, c, withProject("team"), gitSource("repo", "https://git.example.org/a.git")); err != nil {
			t.Errorf("CheckApp of an allowed repo: %v", err)
		}
		refusedBy(t, r.CheckApp(ctx, c, withProject("team"), gitSource("repo", "https://other.example/a.git")), ns+"/team", "spec.sourceRepos")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Load(ctx, c, withProject("nope"))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "the Project "+ns+"/nope (spec.project) does not exist") {
			t.Errorf("error %q does not name the Project and spec.project", err)
		}
		if errors.Is(err, ErrDenied) || objstatus.IsPermanent(err) {
			t.Errorf("not found %q is a refusal or permanent", err)
		}
	})
	t.Run("read in the App's namespace", func(t *testing.T) {
		if _, err := Load(ctx, c, withProject("elsewhere")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound for a Project in another namespace", err)
		}
	})
	t.Run("bad pattern", func(t *testing.T) {
		_, err := Load(ctx, c, withProject("bad"))
		if err == nil || !objstatus.IsPermanent(err) || !strings.Contains(err.Error(), "spec.sourceRepos[0]") {
			t.Fatalf("err = %v, want a permanent error naming spec.sourceRepos[0]", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Load(cctx, c, withProject("team"))
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotFound) || objstatus.IsPermanent(err) {
			t.Fatalf("err = %v, want the read's error, transient", err)
		}
	})
}
