package cli

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tend-gitops/tend/examples/flux-style-sops/hack/sopsfile"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// An Argo CD Application whose kustomization decrypts a Secret with KSOPS
// (the exec plugin Argo CD's repo-server runs) is synced as it is under
// --compat argo: the controller's --argo-decryption-secret names the
// Secret holding the age key as Argo CD teams keep it (keys.txt), and the
// KSOPS generator is decrypted in process.
func TestCompatArgoCDKSOPS(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	// Encrypted as the flux-platform example's .sops.yaml says, for its
	// demo key.
	const example = "../../examples/flux-platform/"
	plain := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: s3cret-ksops-db\n"
	enc, err := sopsfile.Encrypt(example+"apps/production/db.sops.yaml", []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(example + "demo.agekey")
	if err != nil {
		t.Fatal(err)
	}
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("secrets", map[string]string{
		"apps/vault/kustomization.yaml": "generators: [./secret-generator.yaml]\n",
		"apps/vault/secret-generator.yaml": "apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata:\n  name: vault\n" +
			"  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ksops\nfiles: [./db.sops.yaml]\n",
		"apps/vault/db.sops.yaml": string(enc),
	})
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sops-age"}, Data: map[string][]byte{"keys.txt": key},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := argoApplication("vault", repo.URL, "apps/vault", ns)
	createYAML(t, dyn, argoApplications, strings.Replace(app, "namespace: argocd", "namespace: "+ns, 1))
	logIfFailed(t, dyn, argoApplications, ns, "vault")

	cl.startControllerWith(t, func(o *controller.Options) {
		o.Compat = []string{"argo"}
		o.ArgoDecryptionSecret = "sops-age"
	})
	eventually(t, "the KSOPS Secret decrypted and applied, the Application Synced", 2*time.Minute, func() bool {
		s, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, "vault-db", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == "s3cret-ksops-db" &&
			getStatus(dyn, argoApplications, ns, "vault", "sync", "status") == "Synced"
	})
}
