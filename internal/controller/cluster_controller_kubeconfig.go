package controller

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ParseKubeconfig turns the kubeconfig of a Cluster's Secret into a REST
// config, using its current-context. The kubeconfig must be self-contained,
// so it is refused when it
//
//   - refers to files (certificate-authority, client-certificate,
//     client-key, tokenFile): in tend's container they do not exist, or
//     worse, are tend's own (a tokenFile of
//     /var/run/secrets/kubernetes.io/serviceaccount/token would send tend's
//     own token to the kubeconfig's server);
//   - uses an exec or auth-provider credential plugin, which would run a
//     command inside tend.
//
// Its errors never quote the kubeconfig.
func ParseKubeconfig(raw []byte) (*rest.Config, error) {
	const flatten = "flatten it with `kubectl config view --minify --flatten` so certificates and the token are inline"
	kc, err := clientcmd.Load(raw)
	if err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %w", err)
	}
	name := kc.CurrentContext
	if name == "" {
		return nil, errors.New("the kubeconfig has no current-context; set it to the context tend should use")
	}
	kctx, ok := kc.Contexts[name]
	if !ok {
		return nil, fmt.Errorf("the kubeconfig's current-context %q is not among its contexts", name)
	}
	cluster, ok := kc.Clusters[kctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("context %q names cluster %q, which the kubeconfig does not define", name, kctx.Cluster)
	}
	if cluster.Server == "" {
		return nil, fmt.Errorf("cluster %q of the kubeconfig has no server", kctx.Cluster)
	}
	if f := cluster.CertificateAuthority; f != "" {
		return nil, fmt.Errorf("the kubeconfig refers to the file %s (certificate-authority), which tend does not read; %s", f, flatten)
	}
	if user, ok := kc.AuthInfos[kctx.AuthInfo]; ok {
		for _, f := range []struct{ field, path string }{
			{"client-certificate", user.ClientCertificate},
			{"client-key", user.ClientKey},
			{"tokenFile", user.TokenFile},
		} {
			if f.path != "" {
				return nil, fmt.Errorf("the kubeconfig refers to the file %s (%s), which tend does not read; %s", f.path, f.field, flatten)
			}
		}
		if user.Exec != nil {
			return nil, fmt.Errorf("user %q of the kubeconfig gets credentials by running %q (exec), which tend does not do; use a ServiceAccount token or a client certificate", kctx.AuthInfo, user.Exec.Command)
		}
		if user.AuthProvider != nil {
			return nil, fmt.Errorf("user %q of the kubeconfig uses the auth-provider %q, which tend does not support; use a ServiceAccount token or a client certificate", kctx.AuthInfo, user.AuthProvider.Name)
		}
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("not a usable kubeconfig: %w", err)
	}
	if _, err := rest.TLSConfigFor(cfg); err != nil {
		return nil, fmt.Errorf("the kubeconfig's certificate data is not usable: %w", err)
	}
	return cfg, nil
}

// probeVersion asks the API server cfg points at for its version, within
// clusterCheckTimeout. Failures are *notReady saying what to do; secret and
// key name where the credentials are. Rejected credentials, a certificate
// that does not verify and a server that is no API server are stalled (the
// kubeconfig must change); no answer, or a 5xx or 429, is transient.
func probeVersion(cfg *rest.Config, secret, key string) (string, error) {
	c := rest.CopyConfig(cfg)
	c.Timeout = clusterCheckTimeout
	v, err := KubeVersion(c)
	if err == nil {
		return v, nil
	}
	host := displayHost(cfg.Host)
	var status apierrors.APIStatus
	switch {
	case apierrors.IsUnauthorized(err):
		return "", &notReady{reason: ClusterReasonUnauthorized, stalled: true, msg: fmt.Sprintf("%s rejected the credentials in Secret %s key %q (401 Unauthorized); renew the token or client certificate there", host, secret, key)}
	case errors.As(err, &status):
		code := status.Status().Code
		if code >= 500 || code == 429 {
			return "", &notReady{reason: ClusterReasonUnreachable, msg: fmt.Sprintf("%s answered GET /version with HTTP %d (%v)", host, code, err)}
		}
		return "", &notReady{reason: ClusterReasonUnreachable, stalled: true, msg: fmt.Sprintf("%s answered GET /version with HTTP %d (%v); is the server in the kubeconfig a Kubernetes API server?", host, code, err)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "", &notReady{reason: ClusterReasonUnreachable, msg: fmt.Sprintf("cannot reach %s: no answer within %s", host, clusterCheckTimeout)}
		}
		err = ue.Err
	}
	msg := fmt.Sprintf("cannot reach %s: %v", host, err)
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &badHost) || errors.As(err, &verify) {
		msg += fmt.Sprintf("; the certificate-authority-data in Secret %s key %q must be the CA of the server's certificate, and the server's name must be in that certificate", secret, key)
		return "", &notReady{reason: ClusterReasonUnreachable, stalled: true, msg: msg}
	}
	return "", &notReady{reason: ClusterReasonUnreachable, msg: msg}
}

// displayHost is the server URL without any user information.
func displayHost(host string) string {
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return host
	}
	u.User = nil
	return u.String()
}
