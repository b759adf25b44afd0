package freight

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// Each strategy picks its tag of the same list; what cannot be a filter
// or order is an InvalidError, no tag in range a NoMatchError.
func TestSelectorPicks(t *testing.T) {
	tags := []string{"1.0.0", "v1.2.0", "1.10.0-rc.1", "1.9.3", "2.0.0", "latest", "main-abc-100", "main-def-99", "7", "10"}
	for _, tc := range []struct {
		name string
		sub  tendv1.ImageSubscription
		want string
	}{
		{"semver any stable", tendv1.ImageSubscription{}, "2.0.0"},
		{"semver range", tendv1.ImageSubscription{Constraint: "^1.0"}, "1.9.3"},
		{"semver range with pre-releases", tendv1.ImageSubscription{Constraint: ">=1.10.0-0 <2"}, "1.10.0-rc.1"},
		{"semver v prefix", tendv1.ImageSubscription{Constraint: "~1.2"}, "v1.2.0"},
		{"lexical", tendv1.ImageSubscription{Strategy: tendv1.StrategyLexical}, "v1.2.0"},
		{"lexical allowed and ignored", tendv1.ImageSubscription{Strategy: tendv1.StrategyLexical, AllowTags: "^main-", IgnoreTags: []string{"main-def-99"}}, "main-abc-100"},
		{"lexical extract", tendv1.ImageSubscription{Strategy: tendv1.StrategyLexical, AllowTags: `^main-[a-f]+-(?P<ts>\d+)$`, Extract: "$ts"}, "main-def-99"},
		{"numerical extract", tendv1.ImageSubscription{Strategy: tendv1.StrategyNumerical, AllowTags: `^main-[a-f]+-(?P<ts>\d+)$`, Extract: "$ts"}, "main-abc-100"},
		{"numerical", tendv1.ImageSubscription{Strategy: tendv1.StrategyNumerical, AllowTags: `^\d+$`}, "10"},
		{"digest", tendv1.ImageSubscription{Strategy: tendv1.StrategyDigest, Constraint: "latest"}, "latest"},
	} {
		sel, err := compileSelector(&tc.sub)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := sel.pick(sel.filter(tags))
		if err != nil || got != tc.want {
			t.Errorf("%s: picked %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
	for _, sub := range []tendv1.ImageSubscription{
		{AllowTags: "("},
		{Constraint: "not a range"},
		{Strategy: tendv1.StrategyDigest},
		{Strategy: "Newest"},
		{Strategy: tendv1.StrategyLexical, Extract: "$ts"},
	} {
		var inv *InvalidError
		if _, err := compileSelector(&sub); !errors.As(err, &inv) {
			t.Errorf("%+v: %v, want an InvalidError", sub, err)
		}
	}
	sel, _ := compileSelector(&tendv1.ImageSubscription{Repository: "r", Constraint: "^3"})
	var none *NoMatchError
	if _, err := sel.pick(tags); !errors.As(err, &none) {
		t.Errorf("no tag in ^3: %v, want a NoMatchError", err)
	}
}

// Find against a registry: the tag and the digest it names; NewestBuild
// reads build times from the images' configs; Digest follows one tag;
// the registry's refusal of wrong credentials names secretRef.
func TestFindInARegistry(t *testing.T) {
	reg := charttest.NewRegistry(t, "bot", "s3cret")
	repo := reg.Host + "/team/web"
	cred := Credentials{Username: "bot", Password: "s3cret"}
	push := func(tag string, created time.Time) v1.Hash {
		t.Helper()
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.Created = v1.Time{Time: created}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewTag(repo + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(authenticator(cred))); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	now := time.Now().UTC().Truncate(time.Second)
	push("1.0.0", now.Add(-3*time.Hour))
	d11 := push("1.1.0", now.Add(-2*time.Hour))
	dOld := push("build-b", now.Add(-5*time.Hour))
	dNew := push("build-a", now.Add(-time.Hour))
	ctx := context.Background()
	im := &Images{}

	got, err := im.Find(ctx, &tendv1.ImageSubscription{Repository: repo, Constraint: "^1"}, cred)
	if err != nil || got.Tag != "1.1.0" || got.Digest != d11.String() {
		t.Errorf("SemVer ^1: %+v (%v), want 1.1.0 at %s", got, err, d11)
	}
	got, err = im.Find(ctx, &tendv1.ImageSubscription{Repository: repo, Strategy: tendv1.StrategyNewestBuild, AllowTags: "^build-"}, cred)
	if err != nil || got.Tag != "build-a" || got.Digest != dNew.String() {
		t.Errorf("NewestBuild: %+v (%v), want build-a at %s (build-b, %s, is older)", got, err, dNew, dOld)
	}
	dNewer := push("build-b", now)
	got, err = im.Find(ctx, &tendv1.ImageSubscription{Repository: repo, Strategy: tendv1.StrategyNewestBuild, AllowTags: "^build-"}, cred)
	if err != nil || got.Tag != "build-b" || got.Digest != dNewer.String() {
		t.Errorf("NewestBuild after build-b was pushed again: %+v (%v), want build-b at %s", got, err, dNewer)
	}
	got, err = im.Find(ctx, &tendv1.ImageSubscription{Repository: repo, Strategy: tendv1.StrategyDigest, Constraint: "build-b"}, cred)
	if err != nil || got.Digest != dNewer.String() {
		t.Errorf("Digest of build-b: %+v (%v), want %s", got, err, dNewer)
	}
	_, err = im.Find(ctx, &tendv1.ImageSubscription{Repository: repo}, Credentials{Username: "bot", Password: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "refused tend's credentials") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong credentials: %v", err)
	}
}

// insecure talks plain HTTP to a registry whose name would be reached
// over HTTPS (a registry on the LAN under a hostname): here every
// connection goes to a plain HTTP registry on loopback, so a check works
// with insecure only.
func TestFindInsecureRegistry(t *testing.T) {
	reg := charttest.NewRegistry(t, "", "")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(reg.Host + "/team/web:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, reg.Host)
	}
	im := &Images{Transport: tr}
	sub := &tendv1.ImageSubscription{Repository: "registry.lan:5000/team/web", Insecure: true}
	if got, err := im.Find(context.Background(), sub, Credentials{}); err != nil || got.Tag != "1.0.0" {
		t.Fatalf("insecure: %+v, %v", got, err)
	}
	sub.Insecure = false
	if _, err := im.Find(context.Background(), sub, Credentials{}); err == nil {
		t.Fatal("without insecure, HTTPS to a plain HTTP registry worked")
	}
}

// The registry a .dockerconfigjson entry must name for a repository:
// Docker Hub's for a name without a registry.
func TestRegistryHost(t *testing.T) {
	for repo, want := range map[string]string{
		"nginx":                         "index.docker.io",
		"team/web":                      "index.docker.io",
		"ghcr.io/org/app":               "ghcr.io",
		"registry.example.com:5000/web": "registry.example.com:5000",
	} {
		if got := RegistryHost(repo); got != want {
			t.Errorf("RegistryHost(%q) = %q, want %q", repo, got, want)
		}
	}
}
