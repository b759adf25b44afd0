package controller

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	"github.com/tend-gitops/tend/internal/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// probeVersion asks the API server cfg points at for its version, within
// clusterCheckTimeout. Failures are *notReady saying what to do; secret and
// key name where the credentials are. Rejected credentials, a certificate
// that does not verify and a server that is no API server are stalled (the
// kubeconfig must change); no answer, or a 5xx or 429, is transient.
func probeVersion(cfg *rest.Config, secret, key string) (string, error) {
	c := rest.CopyConfig(cfg)
	c.Timeout = clusterCheckTimeout
	v, err := cluster.KubeVersion(c)
	if err == nil {
		return v, nil
	}
	host := cluster.DisplayHost(cfg.Host)
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
