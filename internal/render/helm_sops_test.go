package render

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

func TestHelmSOPSEncryptedValues(t *testing.T) {
	id := newAgeKey(t)
	root := t.TempDir()
	files := helmConfigMapChart("app", "1.0.0", nil)
	files["values.yaml"] = string(sopsEncrypt(t, "yaml", []byte("greeting: from the encrypted chart defaults\n"), forAge(id)))
	files["templates/secret.yaml"] = `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
stringData:
  password: {{ .Values.db.password | quote }}
`
	for k, v := range files {
		charttest.WriteFiles(t, root, map[string]string{"app/" + k: v})
	}
	charttest.WriteFiles(t, root, map[string]string{
		"env/secrets.yaml": string(sopsEncrypt(t, "yaml", []byte("db:\n  password: hunter2-helm\n"), forAge(id))),
	})
	opts := Options{Path: "app", Helm: &HelmOptions{ReleaseName: "r", ValuesFiles: []string{"../env/secrets.yaml"}}}

	withKeys := opts
	withKeys.Keys = &Keys{Age: []string{id.String()}}
	res := helmRender(t, &Renderer{}, root, withKeys)
	sec := helmFind(t, res.Objects(), "Secret", "r-db")
	if got, _, _ := unstructured.NestedString(sec.Object, "stringData", "password"); got != "hunter2-helm" {
		t.Errorf("password from the encrypted values file = %q, want it decrypted", got)
	}
	if got, want := helmData(t, helmFind(t, res.Objects(), "ConfigMap", "r-app"), "greeting"), "from the encrypted chart defaults"; got != want {
		t.Errorf("greeting from the encrypted values.yaml = %q, want %q", got, want)
	}
	assertNoPlaintextOnDisk(t, root, "hunter2-helm")

	err := helmRenderErr(t, &Renderer{}, root, opts)
	helmWantErr(t, err, "SOPS")
}
