package chart

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// DockerConfigKey is the key of a kubernetes.io/dockerconfigjson Secret.
const DockerConfigKey = ".dockerconfigjson"

// SecretCredentials reads registry credentials for host from a Secret's
// data: "username" and "password", or a .dockerconfigjson (what `kubectl
// create secret docker-registry` and `flux create secret oci` write, and
// Flux's OCIRepository reads) with an entry for host. It says what is
// missing when neither holds credentials for host.
func SecretCredentials(data map[string][]byte, host string) (user, pass string, err error) {
	if u, p := string(data["username"]), string(data["password"]); u != "" || p != "" {
		if u == "" || p == "" {
			return "", "", fmt.Errorf("it needs both \"username\" and \"password\"")
		}
		return u, p, nil
	}
	raw, ok := data[DockerConfigKey]
	if !ok {
		return "", "", fmt.Errorf("it has neither \"username\" and \"password\" nor %q", DockerConfigKey)
	}
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", "", fmt.Errorf("%s is not valid JSON: %v", DockerConfigKey, err)
	}
	var hosts []string
	for key, a := range cfg.Auths {
		h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
		h, _, _ = strings.Cut(h, "/")
		hosts = append(hosts, h)
		if h != host {
			continue
		}
		if a.Username == "" && a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("%s: the auth of %s is not base64", DockerConfigKey, key)
			}
			a.Username, a.Password, _ = strings.Cut(string(dec), ":")
		}
		if a.Username == "" || a.Password == "" {
			return "", "", fmt.Errorf("%s: the entry for %s has no username and password", DockerConfigKey, key)
		}
		return a.Username, a.Password, nil
	}
	return "", "", fmt.Errorf("%s has no entry for %s (it has %s)", DockerConfigKey, host, strings.Join(hosts, ", "))
}
