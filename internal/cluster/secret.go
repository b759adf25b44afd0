package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// DefaultKubeconfigKey is the Secret key a Cluster reads when
// kubeconfigSecretRef.key is empty.
const DefaultKubeconfigKey = "kubeconfig"

// ConfigFromSecret builds the REST config of a Cluster from its Secret:
// the kubeconfig under ref.Key (default "kubeconfig"), or, with no key set
// and no "kubeconfig" key present, an Argo CD cluster Secret ("server" and
// "config") as it is. It returns the key the credentials came from. Errors
// name the Secret's keys, never its values.
func ConfigFromSecret(sec *corev1.Secret, ref tendv1.SecretKeyReference) (cfg *rest.Config, from string, err error) {
	name := sec.Namespace + "/" + sec.Name
	key := ref.Key
	if key == "" {
		key = DefaultKubeconfigKey
		_, hasKubeconfig := sec.Data[key]
		_, hasServer := sec.Data["server"]
		_, hasConfig := sec.Data["config"]
		if !hasKubeconfig && hasServer && hasConfig {
			cfg, err := argoConfig(sec.Data["server"], sec.Data["config"])
			if err != nil {
				return nil, "", secretError(name, ", an Argo CD cluster Secret: %w", err)
			}
			return cfg, "config", nil
		}
	}
	raw, ok := sec.Data[key]
	if !ok {
		keys := slices.Sorted(maps.Keys(sec.Data))
		has := "no keys"
		if len(keys) > 0 {
			has = "keys " + strings.Join(keys, ", ")
		}
		return nil, "", secretError(name, " has no key %q (it has %s); put the kubeconfig there or set spec.kubeconfigSecretRef.key (an Argo CD cluster Secret, with keys server and config, is read as it is)", key, has)
	}
	if cfg, err = ParseKubeconfig(raw); err != nil {
		return nil, "", secretError(name, " key %q: %w", key, err)
	}
	return cfg, key, nil
}

// secretError is an error about the Secret name, worded as the Cluster's
// condition shows it: "Secret ns/name ...".
func secretError(name, format string, args ...any) error {
	return fmt.Errorf("%s"+format, append([]any{"Secret " + name}, args...)...)
}

// argoClusterConfig is the "config" of an Argo CD cluster Secret, with the
// fields tend can use; the others are refused by name.
type argoClusterConfig struct {
	Username        string `json:"username,omitempty"`
	Password        string `json:"password,omitempty"`
	BearerToken     string `json:"bearerToken,omitempty"`
	TLSClientConfig struct {
		Insecure   bool   `json:"insecure,omitempty"`
		ServerName string `json:"serverName,omitempty"`
		CAData     []byte `json:"caData,omitempty"`
		CertData   []byte `json:"certData,omitempty"`
		KeyData    []byte `json:"keyData,omitempty"`
	} `json:"tlsClientConfig"`
}

// argoConfig reads an Argo CD cluster Secret's server and config. Exec and
// cloud-provider credentials (awsAuthConfig, execProviderConfig) would run
// commands inside tend and are refused, as they are in kubeconfigs.
func argoConfig(server, config []byte) (*rest.Config, error) {
	host := strings.TrimSpace(string(server))
	if u, err := url.Parse(host); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("key \"server\" is not a URL (want https://host:port)")
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(config, &probe); err != nil {
		return nil, errors.New("key \"config\" is not JSON")
	}
	for _, f := range []string{"awsAuthConfig", "execProviderConfig"} {
		if _, ok := probe[f]; ok {
			return nil, fmt.Errorf("config.%s is not supported: it runs a command inside tend; use a bearer token or client certificate", f)
		}
	}
	var c argoClusterConfig
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// The decoder names an unknown field; a type error says where.
		return nil, fmt.Errorf("key \"config\": %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	cfg := &rest.Config{
		Host: host, Username: c.Username, Password: c.Password, BearerToken: c.BearerToken,
		TLSClientConfig: rest.TLSClientConfig{
			Insecure: c.TLSClientConfig.Insecure, ServerName: c.TLSClientConfig.ServerName,
			CAData: c.TLSClientConfig.CAData, CertData: c.TLSClientConfig.CertData, KeyData: c.TLSClientConfig.KeyData,
		},
	}
	if cfg.BearerToken == "" && cfg.Password == "" && len(cfg.CertData) == 0 {
		return nil, errors.New("key \"config\" has no credentials (bearerToken, username and password, or tlsClientConfig.certData and keyData)")
	}
	return cfg, nil
}
