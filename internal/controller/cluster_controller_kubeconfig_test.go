package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tend-gitops/tend/internal/cluster"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const testToken = "s3cr3t-token-value"

// testKubeconfig is a self-contained kubeconfig for server, trusting ca
// (PEM), with testToken; mutate edits it before it is written.
func testKubeconfig(t *testing.T, server string, ca []byte, mutate ...func(*clientcmdapi.Config)) []byte {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: testToken}
	kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "ctx"
	for _, m := range mutate {
		m(kc)
	}
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serverCA(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// otherCA is a CA that signed no server's certificate (all httptest
// servers share one).
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestClusterParseKubeconfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := serverCA(srv)

	cfg, err := cluster.ParseKubeconfig(testKubeconfig(t, srv.URL, ca))
	if err != nil {
		t.Fatalf("a flattened kubeconfig: %v", err)
	}
	if got, want := cfg.Host, srv.URL; got != want {
		t.Errorf("host = %q, want %q", got, want)
	}
	if got, want := cfg.BearerToken, testToken; got != want {
		t.Errorf("token = %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name string
		raw  []byte
		want []string
	}{
		{"not a kubeconfig", []byte(testToken), []string{"not a kubeconfig"}},
		{"no current-context", testKubeconfig(t, srv.URL, ca, func(c *clientcmdapi.Config) { c.CurrentContext = "" }), []string{"no current-context"}},
		{"unknown context", testKubeconfig(t, srv.URL, ca, func(c *clientcmdapi.Config) { c.CurrentContext = "prod" }), []string{`"prod"`}},
		{"no server", testKubeconfig(t, "", ca), []string{"no server"}},
		{"token file", testKubeconfig(t, srv.URL, ca, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"].TokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
		}), []string{"tokenFile", "/var/run/secrets/kubernetes.io/serviceaccount/token", "--flatten"}},
		{"CA file", testKubeconfig(t, srv.URL, nil, func(c *clientcmdapi.Config) {
			c.Clusters["c"].CertificateAuthority = "/etc/kubernetes/pki/ca.crt"
		}), []string{"certificate-authority", "--flatten"}},
		{"client key file", testKubeconfig(t, srv.URL, ca, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"].ClientKey = "/home/me/.kube/key.pem"
		}), []string{"client-key", "--flatten"}},
		{"exec plugin", testKubeconfig(t, srv.URL, ca, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"].Exec = &clientcmdapi.ExecConfig{Command: "aws", APIVersion: "client.authentication.k8s.io/v1"}
		}), []string{"exec", `"aws"`, "ServiceAccount token"}},
		{"auth provider", testKubeconfig(t, srv.URL, ca, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"].AuthProvider = &clientcmdapi.AuthProviderConfig{Name: "oidc"}
		}), []string{"auth-provider", `"oidc"`}},
		{"broken CA data", testKubeconfig(t, srv.URL, []byte("not a certificate")), []string{"certificate data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cluster.ParseKubeconfig(tc.raw)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error quotes the token: %q", err)
			}
		})
	}
}

func TestClusterProbeVersion(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"major":"1","minor":"99","gitVersion":"v1.99.0"}`)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	ca := serverCA(srv)
	closed := httptest.NewTLSServer(mux)
	closed.Close()
	web := httptest.NewTLSServer(http.NotFoundHandler())
	defer web.Close()

	probe := func(t *testing.T, host string, ca []byte, mutate ...func(*clientcmdapi.Config)) (string, *notReady) {
		t.Helper()
		cfg, err := cluster.ParseKubeconfig(testKubeconfig(t, host, ca, mutate...))
		if err != nil {
			t.Fatal(err)
		}
		v, err := probeVersion(cfg, "ns/kc", "kubeconfig")
		if err == nil {
			return v, nil
		}
		var nr *notReady
		if !errors.As(err, &nr) {
			t.Fatalf("not a notReady: %v", err)
		}
		t.Logf("%s: %s", nr.reason, nr.msg)
		if strings.Contains(nr.msg, testToken) {
			t.Errorf("message quotes the token: %q", nr.msg)
		}
		return v, nr
	}

	if v, nr := probe(t, srv.URL, ca); nr != nil || v != "v1.99.0" {
		t.Fatalf("version = %q, %v; want v1.99.0", v, nr)
	}
	for _, tc := range []struct {
		name       string
		host       string
		ca         []byte
		mutate     func(*clientcmdapi.Config)
		wantReason string
		want       []string
	}{
		{"wrong token", srv.URL, ca, func(c *clientcmdapi.Config) { c.AuthInfos["u"].Token = "expired" },
			ClusterReasonUnauthorized, []string{srv.URL + " rejected the credentials in Secret ns/kc key \"kubeconfig\""}},
		{"nothing listens", closed.URL, ca, nil,
			ClusterReasonUnreachable, []string{"cannot reach " + closed.URL + ": ", "connection refused"}},
		{"unknown CA", srv.URL, otherCA(t), nil,
			ClusterReasonUnreachable, []string{"cannot reach " + srv.URL, "x509", "certificate-authority-data in Secret ns/kc"}},
		{"not an API server", web.URL, serverCA(web), nil,
			ClusterReasonUnreachable, []string{web.URL + " answered GET /version with HTTP 404", "Kubernetes API server"}},
		{"user info in the URL", "https://me:pw@" + strings.TrimPrefix(closed.URL, "https://"), ca, nil,
			ClusterReasonUnreachable, []string{"cannot reach " + closed.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mutate []func(*clientcmdapi.Config)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			_, nr := probe(t, tc.host, tc.ca, mutate...)
			if nr == nil {
				t.Fatal("connected")
			}
			if got, want := nr.reason, tc.wantReason; got != want {
				t.Errorf("reason = %s, want %s (%s)", got, want, nr.msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(nr.msg, w) {
					t.Errorf("message %q does not contain %q", nr.msg, w)
				}
			}
			if strings.Contains(nr.msg, "pw@") {
				t.Errorf("message quotes the URL's password: %q", nr.msg)
			}
		})
	}
}
