package chart

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSecretCredentials: username and password, or a .dockerconfigjson
// entry for the host (with username and password, or auth), are read;
// what is missing is named.
func TestSecretCredentials(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("bob:hunter2"))
	docker := `{"auths":{"https://ghcr.io":{"auth":"` + auth + `"},"registry.local:5000":{"username":"carol","password":"pw"}}}`
	for _, tc := range []struct {
		name       string
		data       map[string]string
		host       string
		user, pass string
		err        string
	}{
		{"basic", map[string]string{"username": "alice", "password": "s3cret"}, "any", "alice", "s3cret", ""},
		{"docker auth", map[string]string{DockerConfigKey: docker}, "ghcr.io", "bob", "hunter2", ""},
		{"docker username", map[string]string{DockerConfigKey: docker}, "registry.local:5000", "carol", "pw", ""},
		{"docker other host", map[string]string{DockerConfigKey: docker}, "quay.io", "", "", "no entry for quay.io"},
		{"half basic", map[string]string{"username": "alice"}, "any", "", "", `both "username" and "password"`},
		{"nothing", map[string]string{"token": "x"}, "any", "", "", "neither"},
		{"bad json", map[string]string{DockerConfigKey: "{"}, "any", "", "", "not valid JSON"},
	} {
		data := map[string][]byte{}
		for k, v := range tc.data {
			data[k] = []byte(v)
		}
		user, pass, err := SecretCredentials(data, tc.host)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || user != tc.user || pass != tc.pass):
			t.Errorf("%s: %q %q %v, want %q %q", tc.name, user, pass, err, tc.user, tc.pass)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), auth)) {
			t.Errorf("%s: the error shows a secret: %v", tc.name, err)
		}
	}
}
