package render

import (
	"strings"
	"testing"
)

// TestKSOPSGenerator: a kustomization with a KSOPS generator (as Argo CD
// teams write it, with the exec-plugin annotation) renders without any
// plugin: its files are decrypted with the App's keys and its secretFrom
// entries generate Secrets named as KSOPS names them (a hash suffix only
// with the needs-hash annotation), with their labels and annotations;
// kustomize's own transformers (namePrefix) apply to them as to any
// resource, and nothing decrypted is written to disk.
func TestKSOPSGenerator(t *testing.T) {
	id := newAgeKey(t)
	to := forAge(id)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/kustomization.yaml": `namePrefix: prod-
resources: [cm.yaml]
generators: [./secret-generator.yaml]
`,
		"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {value: x}\n",
		"app/secret-generator.yaml": `apiVersion: viaduct.ai/v1
kind: ksops
metadata:
  name: secrets
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ksops
files:
- ./db.enc.yaml
secretFrom:
- metadata:
    name: api
    labels: {team: web}
    annotations: {owner: ops}
  type: Opaque
  files: [token=token.enc]
  envs: [creds.enc.env]
- metadata:
    name: hashed
    annotations: {kustomize.config.k8s.io/needs-hash: "true"}
  files: [token=token.enc]
`,
		"app/db.enc.yaml":   string(sopsEncrypt(t, "yaml", []byte(secretManifest), to)),
		"app/token.enc":     string(sopsEncrypt(t, "binary", []byte("tok-ksops-42"), to)),
		"app/creds.enc.env": string(sopsEncrypt(t, "dotenv", []byte("USER=admin\n"), to)),
	})
	res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", Keys: &Keys{Age: []string{id.String()}}})
	if got, want := secretData(t, res, "prod-db", "password"), "s3cr3t-db-password"; got != want {
		t.Errorf("KSOPS files: db password %q, want %q", got, want)
	}
	if got := secretData(t, res, "prod-api", "token"); got != "tok-ksops-42" {
		t.Errorf("KSOPS secretFrom files: token %q", got)
	}
	if got := secretData(t, res, "prod-api", "USER"); got != "admin" {
		t.Errorf("KSOPS secretFrom envs: USER %q", got)
	}
	var hashed string
	for _, o := range res.Objects() {
		switch {
		case o.GetName() == "prod-api":
			if o.GetLabels()["team"] != "web" || o.GetAnnotations()["owner"] != "ops" {
				t.Errorf("prod-api metadata: labels %v annotations %v", o.GetLabels(), o.GetAnnotations())
			}
		case strings.HasPrefix(o.GetName(), "prod-hashed-"):
			hashed = o.GetName()
			if _, ok := o.GetAnnotations()["kustomize.config.k8s.io/needs-hash"]; ok {
				t.Errorf("%s keeps the needs-hash annotation", hashed)
			}
		}
	}
	if hashed == "" {
		t.Errorf("no Secret prod-hashed-<hash> among %v", ids(res.Objects()))
	}
	assertNoPlaintextOnDisk(t, root, "s3cr3t-db-password", "tok-ksops-42")

	// Without keys the encrypted file is named, as for any SOPS file.
	if _, err := (&Renderer{}).Render(t.Context(), root, Options{Path: "app", Namespace: "ns"}); err == nil || !strings.Contains(err.Error(), "spec.decryption") {
		t.Errorf("render without keys: %v, want an error naming spec.decryption", err)
	}
}

// TestKSOPSGeneratorErrors: a KSOPS generator with a field KSOPS does not
// have, one mixed with other generators in one file, and one naming a file
// that does not exist are refused naming the file.
func TestKSOPSGeneratorErrors(t *testing.T) {
	for name, tc := range map[string]struct{ gen, want string }{
		"unknown field": {"apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata: {name: s}\nfilez: [a.yaml]\n", "field filez not found"},
		"mixed":         {"apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata: {name: s}\n---\napiVersion: builtin\nkind: SecretGenerator\nmetadata: {name: x}\n", "KSOPS and other generators"},
		"missing file":  {"apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata: {name: s}\nfiles: [nope.enc.yaml]\n", "nope.enc.yaml"},
		"no name":       {"apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata: {name: s}\nsecretFrom: [{files: [a]}]\n", "metadata.name is required"},
	} {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{
			"app/kustomization.yaml": "generators: [gen.yaml]\n",
			"app/gen.yaml":           tc.gen,
		})
		_, err := (&Renderer{}).Render(t.Context(), root, Options{Path: "app", Namespace: "ns"})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "app/kustomization.yaml") {
			t.Errorf("%s: %v, want an error naming app/kustomization.yaml and saying %q", name, err, tc.want)
		}
	}
}
