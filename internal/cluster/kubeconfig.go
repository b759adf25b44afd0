package cluster

import (
	"errors"
	"fmt"
	"net/url"

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

// DisplayHost is the server URL without any user information.
func DisplayHost(host string) string {
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return host
	}
	u.User = nil
	return u.String()
}
