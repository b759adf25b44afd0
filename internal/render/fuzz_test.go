package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v3"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

// Fuzz targets for what this package reads from a repository: manifests
// (YAML and JSON), kustomizations, SOPS files and Helm values files. Each
// runs over an in-memory artifact (memFiles), without network or cluster.
// `make fuzz-smoke` runs each for a few seconds; docs/development.md says
// how to run them longer. Inputs that once failed live in
// testdata/fuzz/<target> and run as regression tests with go test.

// memFiles is an artifact served from memory.
func memFiles(m fstest.MapFS, keys *Keys) *files {
	return &files{root: "/artifact", fsys: m, keys: keys, read: map[string]struct{}{}, origin: map[*unstructured.Unstructured]string{}}
}

// canonicalJSON is objs as the API server would receive them.
func canonicalJSON(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	list := make([]map[string]any, len(objs))
	for i, o := range objs {
		list[i] = o.Object
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatalf("decoded objects cannot be encoded as JSON, the API server's format: %v", err)
	}
	return b
}

// FuzzDecodeManifests decodes a manifest file as YAML or JSON. Errors name
// the file; what decodes are objects with an apiVersion and a kind, and
// they decode to the same objects again after encoding them as JSON and as
// YAML (decode is a fixed point of encode and decode).
func FuzzDecodeManifests(f *testing.F) {
	f.Add(false, []byte(plainRepo["app/b-multi.yaml"]))
	f.Add(false, []byte(plainRepo["app/c-list.yml"]))
	f.Add(true, []byte(plainRepo["app/a-deploy.json"]))
	f.Add(true, []byte(plainRepo["app/d-array.json"]))
	f.Add(false, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: {n: \"1\"}}\ndata:\n  k: &x v\n  l: *x\n  t: 2024-01-01T00:00:00Z\n  big: 18446744073709551615\n"))
	f.Add(false, []byte("kind: ConfigMap\n"))
	f.Add(true, []byte(`{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}]} {"apiVersion": "v1", "kind": "ConfigMap", "data": {"n": 1.5e300}}`))
	f.Fuzz(func(t *testing.T, asJSON bool, b []byte) {
		p := "app/fuzz.yaml"
		if asJSON {
			p = "app/fuzz.json"
		}
		objs, err := decodeManifests(p, b)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the file %s: %v", p, err)
			}
			return
		}
		for i, o := range objs {
			av, kind := o.GetAPIVersion(), o.GetKind()
			if av == "" || kind == "" {
				t.Fatalf("object %d has apiVersion %q and kind %q", i, av, kind)
			}
			if strings.HasPrefix(av, "kustomize.config.k8s.io/") {
				t.Fatalf("object %d is kustomize's configuration %s", i, av)
			}
		}
		want := canonicalJSON(t, objs)
		again, err := decodeManifests("again.json", want)
		if err != nil {
			t.Fatalf("the objects encoded as JSON do not decode: %v\n%s", err, want)
		}
		if got := canonicalJSON(t, again); !bytes.Equal(got, want) {
			t.Fatalf("JSON round trip changed the objects:\n got %s\nwant %s", got, want)
		}
		var y bytes.Buffer
		for _, o := range objs {
			b, err := sigsyaml.Marshal(o.Object)
			if err != nil {
				t.Fatalf("encode as YAML: %v", err)
			}
			y.WriteString("---\n")
			y.Write(b)
		}
		again, err = decodeManifests("again.yaml", y.Bytes())
		if err != nil {
			t.Fatalf("the objects encoded as YAML do not decode: %v\n%s", err, y.Bytes())
		}
		if got := canonicalJSON(t, again); !bytes.Equal(got, want) {
			t.Fatalf("YAML round trip changed the objects:\n got %s\nwant %s\nYAML:\n%s", got, want, y.Bytes())
		}
	})
}

// kustomizeArtifact is the artifact FuzzKustomization builds app/ of: the
// fuzzed kustomization can use every kind of file a kustomization names.
var kustomizeArtifact = map[string]string{
	"app/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        envFrom: [{configMapRef: {name: settings}}]
`,
	"app/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
	"app/patch.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
	"app/settings.env": "LOG_LEVEL=debug\nMODE=prod\n",
	"app/config.json":  `{"feature": true}`,
	"app/base/kustomization.yaml": `resources: [cm.yaml]
commonLabels: {tier: base}
`,
	"app/base/cm.yaml":                       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base}\ndata: {k: v}\n",
	"app/component/kustomization.yaml":       "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamePrefix: c-\n",
	"shared/kustomization.yaml":              "resources: [sa.yaml]\n",
	"shared/sa.yaml":                         "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: shared}\n",
	"app/crd.yaml":                           "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n",
	"app/widget.yaml":                        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
	"app/charts/.keep":                       "",
	"app/values.yaml":                        "replicas: 2\n",
	"app/transformers/labels.yaml":           "apiVersion: builtin\nkind: LabelTransformer\nmetadata: {name: l}\nlabels: {team: a}\nfieldSpecs: [{path: metadata/labels, create: true}]\n",
	"app/replacements/replacement.yaml":      "source: {kind: ConfigMap, name: base, fieldPath: data.k}\ntargets: [{select: {kind: Service}, fieldPaths: [metadata.annotations.k], options: {create: true}}]\n",
	"app/generators/generator.yaml":          "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: gen}\nliterals: [a=b]\n",
	"app/openapi/schema.json":                `{"definitions": {}}`,
	"app/configurations/name-reference.yaml": "nameReference:\n- kind: ConfigMap\n  fieldSpecs: [{path: spec/configMap, kind: Widget}]\n",
}

// FuzzKustomization builds a kustomization (app/kustomization.yaml, the
// fuzzed input) over a fixed artifact. Errors are returned, not panics, and
// name the build; a build that succeeds gives the same objects when run
// again (tend renders once per revision and relies on it), and records
// the kustomization among the files read.
func FuzzKustomization(f *testing.F) {
	f.Add([]byte("resources: [deployment.yaml, service.yaml]\n"))
	f.Add([]byte(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
namePrefix: p-
resources: [deployment.yaml, service.yaml, base, ../shared, crd.yaml, widget.yaml]
components: [component]
images: [{name: nginx, newTag: "1.28"}]
patches: [{path: patch.yaml}, {patch: '[{"op": "replace", "path": "/spec/replicas", "value": 5}]', target: {kind: Deployment}}]
configMapGenerator: [{name: settings, envs: [settings.env], files: [config.json]}]
secretGenerator: [{name: creds, literals: [password=hunter2]}]
labels: [{pairs: {app.kubernetes.io/part-of: shop}, includeSelectors: false}]
replicas: [{name: web, count: 2}]
configurations: [configurations/name-reference.yaml]
transformers: [transformers/labels.yaml]
generators: [generators/generator.yaml]
replacements: [{path: replacements/replacement.yaml}]
`))
	f.Add([]byte("resources: [https://github.com/example/repo//base?ref=v1]\n"))
	f.Add([]byte("resources: [../../etc]\n"))
	f.Add([]byte("helmCharts: [{name: web, repo: https://charts.example.com, version: 1.0.0}]\n"))
	f.Add([]byte("openapi: {path: openapi/schema.json}\nresources: [widget.yaml]\n"))
	f.Add([]byte("generators:\n- |-\n  apiVersion: viaduct.ai/v1\n  kind: ksops\n  metadata: {name: k}\n  files: [settings.env]\n"))
	m := fstest.MapFS{}
	for p, s := range kustomizeArtifact {
		m[p] = &fstest.MapFile{Data: []byte(s)}
	}
	r := &Renderer{}
	opts := Options{Path: "app", Namespace: "fuzz"}
	f.Fuzz(func(t *testing.T, kustomization []byte) {
		m := fstest.MapFS{"app/kustomization.yaml": &fstest.MapFile{Data: kustomization}}
		for p, v := range kustomizeArtifact {
			m[p] = &fstest.MapFile{Data: []byte(v)}
		}
		res, err := r.render(context.Background(), memFiles(m, nil), opts)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "app") {
				t.Fatalf("error names neither the path nor the file: %v", err)
			}
			return
		}
		if !strings.Contains(strings.Join(res.Files, " "), "app/kustomization.yaml") {
			t.Fatalf("files read %v lack app/kustomization.yaml", res.Files)
		}
		again, err := r.render(context.Background(), memFiles(m, nil), opts)
		if err != nil {
			t.Fatalf("second build failed: %v", err)
		}
		if got, want := canonicalJSON(t, again.Objects()), canonicalJSON(t, res.Objects()); !bytes.Equal(got, want) {
			t.Fatalf("two builds of one kustomization differ:\n%s\n%s", got, want)
		}
	})
}

// fuzzSOPSKeys are the keys FuzzSOPS decrypts with: the examples' public
// demo age key and a test OpenPGP key (testdata/fuzz-pgp-key.asc), both
// made for tests only.
func fuzzSOPSKeys(f *testing.F) *Keys {
	ageKey, err := os.ReadFile("../../examples/flux-style-sops/demo.agekey")
	if err != nil {
		f.Fatal(err)
	}
	pgpKey, err := os.ReadFile("testdata/fuzz-pgp-key.asc")
	if err != nil {
		f.Fatal(err)
	}
	return &Keys{Age: []string{string(ageKey)}, PGP: [][]byte{pgpKey}}
}

// sopsFuzzExts are the file names FuzzSOPS reads its input as; the
// extension picks the format.
var sopsFuzzExts = []string{"secret.yaml", "secret.json", "secret.env", "secret.ini", "secret.bin", "secret.yml"}

// FuzzSOPS reads a file that may be SOPS-encrypted, with keys that decrypt
// the seeds. Errors name the file and never hold key material or the
// plaintext of the seeds' encrypted values (unless the input itself holds
// it in the clear); decrypted YAML and JSON are valid YAML and JSON, and a
// second read gives the same bytes.
func FuzzSOPS(f *testing.F) {
	keys := fuzzSOPSKeys(f)
	for _, p := range []string{
		"../../examples/flux-style-sops/apps/plausible/secrets.sops.env",
		"../../examples/flux-style-sops/apps/ghost/secret.sops.yaml",
		"../../examples/flux-style-sops/clusters/production/discord-webhook.sops.yaml",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		ext := 0
		if strings.HasSuffix(p, ".env") {
			ext = 2
		}
		f.Add(uint8(ext), b)
	}
	f.Add(uint8(0), []byte(secretManifest))
	f.Add(uint8(1), []byte(`{"sops": {"mac": "x", "lastmodified": "2024-01-01T00:00:00Z"}, "a": "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]"}`))
	// Secret material no error may show: the keys, and the plaintext of
	// every seed's encrypted values.
	secrets := []string{"AGE-SECRET-KEY-", "PGP PRIVATE KEY"}
	for _, k := range keys.Age {
		for _, l := range strings.Split(k, "\n") {
			if strings.HasPrefix(l, "AGE-SECRET-KEY-") {
				secrets = append(secrets, l[len("AGE-SECRET-KEY-"):])
			}
		}
	}
	for _, k := range keys.PGP {
		for _, l := range strings.Split(string(k), "\n") {
			if len(l) > 40 && !strings.HasPrefix(l, "-----") {
				secrets = append(secrets, l)
			}
		}
	}
	secrets = append(secrets, seedPlaintexts(f, keys)...)
	f.Fuzz(func(t *testing.T, ext uint8, b []byte) {
		p := "app/" + sopsFuzzExts[int(ext)%len(sopsFuzzExts)]
		fs := memFiles(fstest.MapFS{p: &fstest.MapFile{Data: b}}, keys)
		out, err := fs.ReadFile(p)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, p) {
				t.Fatalf("error does not name %s: %v", p, err)
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) && !bytes.Contains(b, []byte(s)) {
					t.Fatalf("error shows secret material %q: %v", s, err)
				}
			}
			return
		}
		format := detectSOPS(p, b)
		if format == notSOPS {
			if !bytes.Equal(out, b) {
				t.Fatalf("a file that is not SOPS-encrypted was changed on read")
			}
			return
		}
		switch format {
		case sopsYAML:
			dec := yaml.NewDecoder(bytes.NewReader(out))
			for {
				var v any
				if err := dec.Decode(&v); err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("decrypted YAML is not YAML: %v\n%s", err, out)
					}
					break
				}
			}
		case sopsJSON:
			if !json.Valid(out) {
				t.Fatalf("decrypted JSON is not JSON:\n%s", out)
			}
		}
		again, err := memFiles(fstest.MapFS{p: &fstest.MapFile{Data: b}}, keys).ReadFile(p)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second decryption differs: %v", err)
		}
	})
}

// seedPlaintexts decrypts the checked-in FuzzSOPS corpus and returns the
// string values of at least 12 bytes found in the plaintexts.
func seedPlaintexts(f *testing.F, keys *Keys) []string {
	var out []string
	dir := "testdata/fuzz/FuzzSOPS"
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		// go test fuzz v1, then uint8(n) and []byte("...") lines.
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 3 {
			continue
		}
		var ext uint8
		if _, err := fmt.Sscanf(lines[1], "uint8(%d)", &ext); err != nil {
			continue // a corpus entry go test wrote; the seeds say uint8(n)
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(lines[2]), "[]byte(")
		if !ok {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
		if err != nil {
			continue
		}
		data := []byte(s)
		p := "app/" + sopsFuzzExts[int(ext)%len(sopsFuzzExts)]
		plain, err := memFiles(fstest.MapFS{p: &fstest.MapFile{Data: data}}, keys).ReadFile(p)
		if err != nil || detectSOPS(p, data) == notSOPS {
			continue
		}
		for _, s := range strings.FieldsFunc(string(plain), func(r rune) bool { return strings.ContainsRune("\n\r\t \"'=:,{}[]", r) }) {
			if len(s) >= 12 && !bytes.Contains(data, []byte(s)) {
				out = append(out, s)
			}
		}
	}
	return out
}

// FuzzHelmValues merges two values files as spec.helm.valuesFiles does,
// then inline values. Errors name the file that is not valid YAML; a
// merge keeps what only the first file sets, takes the second file's
// value where it is not a map on both sides, and the inline values win.
func FuzzHelmValues(f *testing.F) {
	for _, p := range []string{
		"../../examples/helm-platform/charts/mswa-web/values.yaml",
		"../../examples/argocd-platform/values/web/production.yaml",
		"../../examples/flux-platform/infrastructure/base/podinfo/values.yaml",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte("replicaCount: 3\nimage: {tag: v2}\nresources: null\n"))
	}
	f.Add([]byte("a: {b: 1, c: [1, 2]}\n"), []byte("a: {b: {d: 2}}\n---\nignored: true\n"))
	f.Add([]byte("? [a]\n: b\n"), []byte("1: one\ntrue: yes\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		m := fstest.MapFS{
			"app/values-a.yaml": &fstest.MapFile{Data: a},
			"app/env/b.yaml":    &fstest.MapFile{Data: b},
		}
		inline := map[string]any{"fuzzInline": map[string]any{"set": true}}
		h := &HelmOptions{ValuesFiles: []string{"values-a.yaml", "env/b.yaml"}, Values: inline}
		got, err := userValues(memFiles(m, nil), "app", h)
		va, errA := chartloader.LoadValues(bytes.NewReader(a))
		vb, errB := chartloader.LoadValues(bytes.NewReader(b))
		if err != nil {
			switch {
			case errA != nil:
				if !strings.Contains(err.Error(), "values-a.yaml") {
					t.Fatalf("error does not name values-a.yaml: %v", err)
				}
			case errB != nil:
				if !strings.Contains(err.Error(), "env/b.yaml") {
					t.Fatalf("error does not name env/b.yaml: %v", err)
				}
			default:
				t.Fatalf("merge failed though both files load: %v", err)
			}
			return
		}
		if errA != nil || errB != nil {
			t.Fatalf("merged files that do not load: %v, %v", errA, errB)
		}
		if !reflect.DeepEqual(got["fuzzInline"], inline["fuzzInline"]) {
			t.Fatalf("inline values lost: %v", got["fuzzInline"])
		}
		for k, v := range vb {
			if k == "fuzzInline" {
				continue
			}
			_, mapB := v.(map[string]any)
			_, mapA := va[k].(map[string]any)
			if !(mapA && mapB) && !reflect.DeepEqual(got[k], v) {
				t.Fatalf("key %q: got %#v, want the second file's %#v", k, got[k], v)
			}
		}
		for k, v := range va {
			if _, inB := vb[k]; !inB && k != "fuzzInline" && !reflect.DeepEqual(got[k], v) {
				t.Fatalf("key %q only in the first file: got %#v, want %#v", k, got[k], v)
			}
		}
	})
}

// FuzzFileGlob compiles a glob of spec.include and spec.exclude (and of a
// Project's patterns). It never panics; a glob that quotes every
// character of s matches s and nothing longer, and "*" followed by it
// matches s after any prefix.
func FuzzFileGlob(f *testing.F) {
	f.Add("apps/*/{base,overlays/prod}/*.yaml", "apps/web/base/deploy.yaml")
	f.Add("[!.]*.y?ml", "a.yml")
	f.Add(`a\*b[a-z`, "a*b")
	f.Add("{a,{b,c}}", "c")
	f.Add("café/*", "café/x")
	f.Fuzz(func(t *testing.T, glob, s string) {
		if re, err := FileGlob(glob); err == nil {
			re.MatchString(s)
		}
		var q strings.Builder
		for _, r := range s {
			q.WriteString(`\`)
			q.WriteRune(r)
		}
		re, err := FileGlob(q.String())
		if err != nil {
			t.Fatalf("quoted glob %q: %v", q.String(), err)
		}
		if !re.MatchString(s) || re.MatchString(s+"x") {
			t.Fatalf("quoted glob %q (%s) does not match %q alone", q.String(), re, s)
		}
		re, err = FileGlob("*" + q.String())
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString("prefix/" + s) {
			t.Fatalf("glob %q (%s) does not match %q", "*"+q.String(), re, "prefix/"+s)
		}
	})
}
