package testenv

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// ArgoCDClusterSecret returns the Argo CD cluster Secret (label
// argocd.argoproj.io/secret-type: cluster; keys name, server, config) of
// the cluster a flattened kubeconfig reaches with its client certificate,
// as Argo CD keeps it: Secret name, no namespace, cluster name argoName.
func ArgoCDClusterSecret(t testing.TB, kubeconfig []byte, name, argoName string) *corev1.Secret {
	t.Helper()
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kctx := kc.Contexts[kc.CurrentContext]
	srv, user := kc.Clusters[kctx.Cluster], kc.AuthInfos[kctx.AuthInfo]
	config, err := json.Marshal(map[string]any{"tlsClientConfig": map[string]any{
		"caData": srv.CertificateAuthorityData, "certData": user.ClientCertificateData, "keyData": user.ClientKeyData,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"argocd.argoproj.io/secret-type": "cluster"}},
		Data:       map[string][]byte{"name": []byte(argoName), "server": []byte(srv.Server), "config": config},
	}
}
