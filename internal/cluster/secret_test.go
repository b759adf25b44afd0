package cluster

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func argoSecret(server, config string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "cluster-prod"},
		Data:       map[string][]byte{"name": []byte("prod"), "server": []byte(server), "config": []byte(config)},
	}
}

// An Argo CD cluster Secret is read as it is when the Cluster names no key
// and the Secret has no kubeconfig; what would run a command, unknown
// fields and missing credentials are refused by name, values never quoted.
func TestConfigFromArgoCDClusterSecret(t *testing.T) {
	cfg, from, err := ConfigFromSecret(argoSecret("https://prod.example.com:6443",
		`{"bearerToken":"s3cret","tlsClientConfig":{"insecure":false,"serverName":"prod","caData":"Y2E="}}`), tendv1.SecretKeyReference{Name: "cluster-prod"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://prod.example.com:6443" || cfg.BearerToken != "s3cret" || string(cfg.CAData) != "ca" || cfg.ServerName != "prod" || from != "config" {
		t.Errorf("config %+v from %q", cfg, from)
	}
	for _, tc := range []struct {
		server, config string
		want           string
	}{
		{"https://p:6443", `{"execProviderConfig":{"command":"argocd-k8s-auth"}}`, "config.execProviderConfig is not supported"},
		{"https://p:6443", `{"awsAuthConfig":{"clusterName":"p"}}`, "config.awsAuthConfig is not supported"},
		{"https://p:6443", `{"bearerToken":"s3cret","proxyUrl":"http://proxy"}`, `unknown field "proxyUrl"`},
		{"https://p:6443", `{"tlsClientConfig":{"insecure":true}}`, "has no credentials"},
		{"p:6443", `{"bearerToken":"s3cret"}`, `key "server" is not a URL`},
		{"https://p:6443", `not json s3cret`, `key "config" is not JSON`},
	} {
		_, _, err := ConfigFromSecret(argoSecret(tc.server, tc.config), tendv1.SecretKeyReference{Name: "cluster-prod"})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "argocd/cluster-prod") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want an error naming the Secret and %q, without the token", tc.config, err, tc.want)
		}
	}
	// A key named in the Cluster is a kubeconfig, whatever else the Secret holds.
	_, _, err = ConfigFromSecret(argoSecret("https://p:6443", `{"bearerToken":"t"}`), tendv1.SecretKeyReference{Name: "cluster-prod", Key: "config"})
	if err == nil || !strings.Contains(err.Error(), `key "config"`) {
		t.Errorf("key config as a kubeconfig: %v", err)
	}
	// Neither a kubeconfig nor an Argo CD Secret: the keys it has are named.
	_, _, err = ConfigFromSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "b"}, Data: map[string][]byte{"token": nil}}, tendv1.SecretKeyReference{Name: "b"})
	if err == nil || !strings.Contains(err.Error(), `Secret a/b has no key "kubeconfig" (it has keys token)`) {
		t.Errorf("no kubeconfig: %v", err)
	}
}
