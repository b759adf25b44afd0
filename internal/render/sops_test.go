package render

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/getsops/sops/v3"
	"go.yaml.in/yaml/v3"
)

const secretManifest = `apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: s3cr3t-db-password
`

// assertNoPlaintextOnDisk fails if any file under root holds one of the
// secrets: the test wrote only ciphertext, and rendering must not write.
func assertNoPlaintextOnDisk(t *testing.T, root string, secrets ...string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the plaintext %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func secretData(t *testing.T, res *Result, name, key string) string {
	t.Helper()
	s := findObj(t, res.Objects(), "Secret", name)
	if v := nestedString(t, s, "stringData", key); v != "" {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(nestedString(t, s, "data", key))
	if err != nil {
		t.Fatalf("Secret %s data %s: %v", name, key, err)
	}
	return string(b)
}

func TestSOPSKustomizeSecretGeneratorAge(t *testing.T) {
	id := newAgeKey(t)
	to := forAge(id)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/kustomization.yaml": `resources: [db.enc.yaml]
secretGenerator:
- name: creds
  envs: [creds.env]
  files: [config.json, tls.key=tls.key.enc]
`,
		"app/creds.env":     string(sopsEncrypt(t, "dotenv", []byte("API_TOKEN=tok-123456\n# a comment\nUSER=admin\n"), to)),
		"app/config.json":   string(sopsEncrypt(t, "json", []byte(`{"endpoint": "https://db", "port": 5432, "tls": true}`), to)),
		"app/tls.key.enc":   string(sopsEncrypt(t, "binary", []byte("-----BEGIN KEY-----\nbinary-key-material\n"), to)),
		"app/db.enc.yaml":   string(sopsEncrypt(t, "yaml", []byte(secretManifest), to)),
		"app/.sops.yaml":    "creation_rules:\n- age: " + id.Recipient().String() + "\n",
		"app/other.env":     "NOT=read\n",
		"app/README.md":     "secrets\n",
		"app/unrelated.txt": "x\n",
	})
	res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", Keys: &Keys{Age: []string{id.String()}}})

	var gen string
	for _, o := range res.Objects() {
		if strings.HasPrefix(o.GetName(), "creds-") {
			gen = o.GetName()
		}
	}
	if gen == "" {
		t.Fatalf("no generated Secret in %v", ids(res.Objects()))
	}
	for key, want := range map[string]string{"API_TOKEN": "tok-123456", "USER": "admin", "tls.key": "-----BEGIN KEY-----\nbinary-key-material\n"} {
		if got := secretData(t, res, gen, key); got != want {
			t.Errorf("secretGenerator %s: got %q, want %q", key, got, want)
		}
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(secretData(t, res, gen, "config.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"endpoint": "https://db", "port": 5432, "tls": true}; !reflect.DeepEqual(cfg, want) {
		t.Errorf("config.json decrypted to %v, want %v", cfg, want)
	}
	if got, want := secretData(t, res, "db", "password"), "s3cr3t-db-password"; got != want {
		t.Errorf("encrypted resource: got %q, want %q", got, want)
	}
	for _, p := range []string{"app/kustomization.yaml", "app/creds.env", "app/config.json", "app/tls.key.enc", "app/db.enc.yaml"} {
		if !strings.Contains(strings.Join(res.Files, " "), p) {
			t.Errorf("Files %v lack %s", res.Files, p)
		}
	}
	assertNoPlaintextOnDisk(t, root, "tok-123456", "s3cr3t-db-password", "binary-key-material", "https://db")
}

func TestSOPSKustomizeResourcePGP(t *testing.T) {
	key := newPGPKey(t)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"base/kustomization.yaml": "resources: [secret.yaml]\n",
		"base/secret.yaml":        string(sopsEncrypt(t, "yaml", []byte(secretManifest), forPGP(key))),
		"app/kustomization.yaml":  "resources: [../base]\nnamePrefix: prod-\n",
	})
	res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", Keys: &Keys{PGP: [][]byte{key.armored}}})
	if got, want := secretData(t, res, "prod-db", "password"), "s3cr3t-db-password"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	assertNoPlaintextOnDisk(t, root, "s3cr3t-db-password")
}

func TestSOPSPlainDirectoryAge(t *testing.T) {
	id := newAgeKey(t)
	onlyData := forAge(id)
	onlyData.configure = func(md *sops.Metadata) {
		md.UnencryptedSuffix = ""
		md.EncryptedRegex = "^(data|stringData)$"
	}
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/a-secret.yaml": string(sopsEncrypt(t, "yaml", []byte(secretManifest), forAge(id))),
		"app/b-partial.yaml": string(sopsEncrypt(t, "yaml", []byte(`apiVersion: v1
kind: Secret
metadata:
  name: partial
  labels: {count: "3"}
stringData:
  token: partial-token
`), onlyData)),
		"app/c-values.yaml": string(sopsEncrypt(t, "yaml", []byte("password: values-password\nreplicas: 2\n"), forAge(id))),
		"app/d-cm.json":     string(sopsEncrypt(t, "json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j"},"data":{"k":"json-value"}}`), forAge(id))),
	})
	res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", Keys: &Keys{Age: []string{id.String()}}})
	if got, want := ids(res.Objects()), []string{"Secret ns/db", "Secret ns/partial", "ConfigMap ns/j"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got, want := secretData(t, res, "db", "password"), "s3cr3t-db-password"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := secretData(t, res, "partial", "token"), "partial-token"; got != want {
		t.Errorf("encrypted_regex: got %q, want %q", got, want)
	}
	if got, want := nestedString(t, res.Objects()[2], "data", "k"), "json-value"; got != want {
		t.Errorf("JSON: got %q, want %q", got, want)
	}
	assertNoPlaintextOnDisk(t, root, "s3cr3t-db-password", "partial-token", "values-password", "json-value")
}

func TestSOPSWrongKey(t *testing.T) {
	owner, other := newAgeKey(t), newAgeKey(t)
	pgpOwner := newPGPKey(t)
	to := forAge(owner)
	to.groups[0].pgp = []testPGPKey{pgpOwner}
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"app/secret.yaml": string(sopsEncrypt(t, "yaml", []byte(secretManifest), to))})
	otherPGP := newPGPKey(t)

	err := renderErr(t, &Renderer{}, root, Options{Path: "app", Keys: &Keys{Age: []string{other.String()}, PGP: [][]byte{otherPGP.armored}}})
	t.Log(err)
	wantErrContains(t, err,
		"app/secret.yaml",
		owner.Recipient().String(), pgpOwner.fingerprint, // encrypted for
		other.Recipient().String(), otherPGP.fingerprint, // tried
		"decryption secret")
	for _, secret := range []string{other.String(), owner.String(), "AGE-SECRET-KEY", "PRIVATE KEY", "s3cr3t"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error reveals %q", secret)
		}
	}
}

func TestSOPSNoKeys(t *testing.T) {
	id := newAgeKey(t)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"app/secret.yaml": string(sopsEncrypt(t, "yaml", []byte(secretManifest), forAge(id)))})
	for _, keys := range []*Keys{nil, {}} {
		err := renderErr(t, &Renderer{}, root, Options{Path: "app", Keys: keys})
		if !errors.Is(err, errEncryptedNoKeys) {
			t.Errorf("got %v, want errEncryptedNoKeys", err)
		}
		wantErrContains(t, err, "app/secret.yaml", "spec.decryption.secretRef")
	}
}

func TestSOPSTampered(t *testing.T) {
	id := newAgeKey(t)
	keys := &Keys{Age: []string{id.String()}}
	plain := []byte(secretManifest + "  note_unencrypted: visible\n")
	enc := string(sopsEncrypt(t, "yaml", plain, forAge(id)))

	// The ciphertext of the password, with one character of it changed.
	m := regexp.MustCompile(`password: ENC\[AES256_GCM,data:([A-Za-z0-9+/=]+),`).FindStringSubmatchIndex(enc)
	if m == nil {
		t.Fatalf("no encrypted password in\n%s", enc)
	}
	data := []byte(enc)
	i := m[2]
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	tests := map[string]string{
		"ciphertext":                     string(data),
		"plain value covered by the MAC": strings.Replace(enc, "note_unencrypted: visible", "note_unencrypted: changed", 1),
		"MAC":                            regexp.MustCompile(`mac: ENC\[AES256_GCM,data:[A-Za-z0-9+/=]{4}`).ReplaceAllString(enc, "mac: ENC[AES256_GCM,data:AAAA"),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			if content == enc {
				t.Fatal("the test did not change the file")
			}
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"app/secret.yaml": content})
			err := renderErr(t, &Renderer{}, root, Options{Path: "app", Keys: keys})
			t.Log(err)
			wantErrContains(t, err, "app/secret.yaml", "changed after it was encrypted")
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error reveals the plaintext")
			}
		})
	}
}

func TestSOPSFormatsRoundTrip(t *testing.T) {
	id := newAgeKey(t)
	pgpKey := newPGPKey(t)
	yamlDoc := `# top comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm # inline
  labels:
    tier: "1"
data:
  int: 42
  float: 1.5
  bool: true
  empty: ""
  nothing: null
  list:
  - a
  - 2
  - nested: {deep: x}
  multiline: |
    line one
    line two
---
second: document
count: 7
`
	tests := []struct {
		name, format, file, plain string
	}{
		{"yaml multi-document", "yaml", "x.yaml", yamlDoc},
		{"json", "json", "x.json", `{"a": {"b": [1, 2.5, "c", false, null]}, "s": "v"}`},
		{"dotenv", "dotenv", "x.env", "A=1\nB=two words\n# comment\nC=\n"},
		{"ini", "ini", "x.ini", "[server]\nhost = example.org\nport = 8080\n\n[auth]\ntoken = abc\n"},
		{"binary", "binary", "x.bin", "\x00\x01binary\xff\n"},
		{"binary sniffed without extension", "binary", "kubeconfig", "apiVersion: v1\nclusters: []\n"},
	}
	groups := map[string]sopsRecipients{
		"age":    forAge(id),
		"pgp":    forPGP(pgpKey),
		"shamir": {groups: []sopsGroup{{age: []string{id.Recipient().String()}}, {pgp: []testPGPKey{pgpKey}}}},
	}
	for gname, to := range groups {
		for _, tt := range tests {
			t.Run(gname+"/"+tt.name, func(t *testing.T) {
				enc := sopsEncrypt(t, tt.format, []byte(tt.plain), to)
				f := newFiles(t.TempDir(), &Keys{Age: []string{id.String()}, PGP: [][]byte{pgpKey.armored}})
				got, err := f.maybeDecrypt(tt.file, enc)
				if err != nil {
					t.Fatal(err)
				}
				assertSameContent(t, tt.format, got, []byte(tt.plain))
			})
		}
	}

	// Shamir needs every group: one key is not enough.
	enc := sopsEncrypt(t, "yaml", []byte(yamlDoc), groups["shamir"])
	f := newFiles(t.TempDir(), &Keys{Age: []string{id.String()}})
	if _, err := f.maybeDecrypt("x.yaml", enc); err == nil {
		t.Errorf("decrypted a 2-of-2 Shamir file with one group's key")
	}
}

// assertSameContent compares decrypted output with the original plaintext:
// byte for byte for binary, by value for the structured formats (sops
// re-emits them, so formatting may differ).
func assertSameContent(t *testing.T, format string, got, want []byte) {
	t.Helper()
	switch format {
	case "binary":
		if !bytes.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	case "yaml", "json":
		g, w := yamlDocs(t, got), yamlDocs(t, want)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("got %v, want %v\n(output:\n%s)", g, w, got)
		}
	default:
		norm := func(b []byte) []string {
			var out []string
			for _, l := range strings.Split(string(b), "\n") {
				l = strings.ReplaceAll(strings.TrimSpace(l), " = ", "=")
				if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
					out = append(out, l)
				}
			}
			return out
		}
		if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
			t.Errorf("got %q, want %q", g, w)
		}
	}
}

func yamlDocs(t *testing.T, b []byte) []any {
	t.Helper()
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("%v in\n%s", err, b)
		}
		out = append(out, v)
	}
}

func TestSOPSDetection(t *testing.T) {
	notEncrypted := map[string]string{
		"cm.yaml":     "apiVersion: v1\nkind: ConfigMap\ndata:\n  sops: yes\n  mac: x\n  lastmodified: today\n",
		"nested.yaml": "config:\n  sops:\n    mac: x\n    lastmodified: y\n",
		"x.json":      `{"data": {"sops": {"mac": 1, "lastmodified": 2}}}`,
		"x.env":       "sops_mac_address=1\nlastmodified=2\n",
		"notes.txt":   "sops mac lastmodified",
	}
	for name, content := range notEncrypted {
		if got := detectSOPS(name, []byte(content)); got != notSOPS {
			t.Errorf("%s detected as SOPS %v", name, got)
		}
	}
}

func TestSOPSInvalidKeys(t *testing.T) {
	id := newAgeKey(t)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"app/secret.yaml": string(sopsEncrypt(t, "yaml", []byte(secretManifest), forAge(id)))})
	err := renderErr(t, &Renderer{}, root, Options{Path: "app", Keys: &Keys{Age: []string{"AGE-SECRET-KEY-1NOTAREALKEY"}}})
	wantErrContains(t, err, "decryption key 1 is not a valid age identity")
	if strings.Contains(err.Error(), "NOTAREALKEY") {
		t.Errorf("error quotes the key: %v", err)
	}
	err = renderErr(t, &Renderer{}, root, Options{Path: "app", Keys: &Keys{PGP: [][]byte{[]byte("not armored")}}})
	wantErrContains(t, err, "not an ASCII-armored OpenPGP key")
}

// TestSOPSEncryptionRules decrypts files sops encrypted under each of its
// rules for choosing what to encrypt; the MAC only matches if tend walks
// the document exactly as sops does.
func TestSOPSEncryptionRules(t *testing.T) {
	id := newAgeKey(t)
	doc := `# sops:enc
password: hunter2
user: admin # inline comment
list:
  # sops:enc
  - one
  - 2
  - nested:
      # a comment in a nested mapping
      token_enc: abc
      plain: 1.25
anchors:
  base: &base {a: 1, b: true}
  copy: *base
big: 9007199254740993
float: 2.5e-3
mac_unencrypted: kept
empty: ""
nothing: ~
---
# second document
other_enc: x
`
	rules := map[string]func(*sops.Metadata){
		"default unencrypted_suffix": func(*sops.Metadata) {},
		"encrypted_suffix":           func(md *sops.Metadata) { md.UnencryptedSuffix, md.EncryptedSuffix = "", "_enc" },
		"unencrypted_regex":          func(md *sops.Metadata) { md.UnencryptedSuffix, md.UnencryptedRegex = "", "^(user|plain)$" },
		"encrypted_regex":            func(md *sops.Metadata) { md.UnencryptedSuffix, md.EncryptedRegex = "", "^(password|list)$" },
		"encrypted_comment_regex":    func(md *sops.Metadata) { md.UnencryptedSuffix, md.EncryptedCommentRegex = "", "sops:enc" },
		"unencrypted_comment_regex":  func(md *sops.Metadata) { md.UnencryptedSuffix, md.UnencryptedCommentRegex = "", "sops:enc" },
		"mac_only_encrypted": func(md *sops.Metadata) {
			md.UnencryptedSuffix, md.EncryptedRegex, md.MACOnlyEncrypted = "", "^password$", true
		},
	}
	keys := &Keys{Age: []string{id.String()}}
	for name, rule := range rules {
		t.Run(name, func(t *testing.T) {
			to := forAge(id)
			to.configure = rule
			for _, format := range []string{"yaml", "json"} {
				plain := []byte(doc)
				file := "x.yaml"
				if format == "json" {
					plain = []byte(`{"password": "hunter2", "user": "admin", "list": ["one", 2, {"token_enc": "abc", "plain": 1.25}], "n": null, "t": true, "big": 12345678901234, "f": 0.1}`)
					file = "x.json"
				}
				enc := sopsEncrypt(t, format, plain, to)
				got, err := newFiles(t.TempDir(), keys).maybeDecrypt(file, enc)
				if err != nil {
					t.Fatalf("%s: %v", format, err)
				}
				assertSameContent(t, format, got, plain)

				// Changing any value covered by the MAC is detected.
				tampered := bytes.Replace(enc, []byte("admin"), []byte("admim"), 1)
				if !bytes.Equal(tampered, enc) {
					if _, err := newFiles(t.TempDir(), keys).maybeDecrypt(file, tampered); err == nil && name != "mac_only_encrypted" {
						t.Errorf("%s: a changed plaintext value was not detected", format)
					}
				}
			}
		})
	}
}

func TestSOPSDotenvAndINIDetails(t *testing.T) {
	id := newAgeKey(t)
	keys := &Keys{Age: []string{id.String()}}
	env := "MULTI=line1\\nline2\nEQ=a=b\n#comment\nEMPTY=\n"
	got, err := newFiles(t.TempDir(), keys).maybeDecrypt("app.env", sopsEncrypt(t, "dotenv", []byte(env), forAge(id)))
	if err != nil {
		t.Fatal(err)
	}
	if want := "MULTI=line1\\nline2\nEQ=a=b\nEMPTY=\n"; string(got) != want {
		t.Errorf("dotenv: got %q, want %q", got, want)
	}
	iniDoc := "; top\n[db]\n; the host\nhost = db.internal\npassword = \"p w\"\n\n[cache]\nsize = 10\n"
	got, err = newFiles(t.TempDir(), keys).maybeDecrypt("app.ini", sopsEncrypt(t, "ini", []byte(iniDoc), forAge(id)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[db]", "host", "db.internal", "p w", "[cache]", "size"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("INI output lacks %q:\n%s", want, got)
		}
	}
}
