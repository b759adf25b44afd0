package argocd

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SecretTypeLabel marks Argo CD's repository, repo-creds and cluster
// Secrets.
const SecretTypeLabel = "argocd.argoproj.io/secret-type"

// Secrets are Argo CD's repository Secrets (one URL each), repo-creds
// Secrets (credentials for every URL below theirs) and cluster Secrets.
// Only their URLs and cluster names are read; values stay in the Secrets,
// which tend reads as they are.
type Secrets struct {
	repos, prefixes map[string]*corev1.Secret // by normalized URL
	// clusters by "server:" + URL and "name:" + Argo CD's cluster name.
	clusters map[string]*corev1.Secret
}

// NewSecrets returns an empty set.
func NewSecrets() *Secrets {
	return &Secrets{repos: map[string]*corev1.Secret{}, prefixes: map[string]*corev1.Secret{}, clusters: map[string]*corev1.Secret{}}
}

// Add records sec if it is one of Argo CD's; other Secrets are ignored.
func (s *Secrets) Add(sec *corev1.Secret) error {
	field := func(k string) string {
		if v, ok := sec.StringData[k]; ok {
			return v
		}
		return string(sec.Data[k])
	}
	switch typ := sec.Labels[SecretTypeLabel]; typ {
	case "cluster":
		server := field("server")
		if server == "" {
			return fmt.Errorf("cluster Secret %s/%s (Argo CD) has no server: add the API server URL", sec.Namespace, sec.Name)
		}
		s.clusters["server:"+strings.TrimSuffix(server, "/")] = sec
		if n := field("name"); n != "" {
			s.clusters["name:"+n] = sec
		}
	case "repository", "repo-creds":
		url := field("url")
		if url == "" {
			return fmt.Errorf("%s Secret %s/%s (Argo CD) has no url: add the repository URL", typ, sec.Namespace, sec.Name)
		}
		if typ == "repository" {
			s.repos[NormalizeRepoURL(url)] = sec
		} else {
			s.prefixes[NormalizeRepoURL(url)] = sec
		}
	}
	return nil
}

// Clusters returns every cluster Secret, sorted by name (an
// ApplicationSet's clusters generator lists them all).
func (s *Secrets) Clusters() []*corev1.Secret {
	seen := map[*corev1.Secret]bool{}
	var out []*corev1.Secret
	for _, sec := range s.clusters {
		if !seen[sec] {
			seen[sec] = true
			out = append(out, sec)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Cluster returns the cluster Secret of a destination's server or name.
func (s *Secrets) Cluster(server, name string) *corev1.Secret {
	if server != "" {
		return s.clusters["server:"+strings.TrimSuffix(server, "/")]
	}
	return s.clusters["name:"+name]
}

// Repository returns the Secret for url as Argo CD picks it: the
// repository Secret of that URL, else the repo-creds Secret of the longest
// prefix.
func (s *Secrets) Repository(url string) *corev1.Secret {
	u := NormalizeRepoURL(url)
	if sec, ok := s.repos[u]; ok {
		return sec
	}
	var best *corev1.Secret
	n := 0
	for p, sec := range s.prefixes {
		if strings.HasPrefix(u, p) && len(p) > n {
			best, n = sec, len(p)
		}
	}
	return best
}

// NormalizeRepoURL compares repository URLs as Argo CD does: case and a
// trailing ".git" or "/" do not matter.
func NormalizeRepoURL(u string) string {
	return strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(u)), "/"), ".git")
}

// IsSSH says whether a repository URL is reached over SSH.
func IsSSH(url string) bool {
	return strings.HasPrefix(url, "ssh://") || (!strings.Contains(url, "://") && strings.Contains(url, "@"))
}
