package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// event is what the receiver needs from one verified delivery.
type event struct {
	// ping is a forge's connectivity test: answer 200 "pong".
	ping bool
	// ignore, when set, says why the delivery triggers nothing (an event
	// type other than push).
	ignore string
	// urls are the repository's addresses as the forge lists them
	// (clone, SSH and web URLs); a Source matches any of them.
	urls []string
	// refs are the pushed refs: refs/heads/<branch> or refs/tags/<tag>.
	refs []string
	// defaultBranch is the repository's default branch, when the payload
	// says; Sources without a ref follow it.
	defaultBranch string
}

// parse reads a verified delivery. Errors mean a malformed payload (400).
func parse(forge string, h http.Header, body []byte) (event, error) {
	switch forge {
	case ForgeGitHub:
		return parseGitHub(h, body)
	case ForgeGitLab:
		return parseGitLab(h, body)
	case ForgeGitea:
		return parseGitea(h, body)
	case ForgeBitbucket:
		return parseBitbucket(h, body)
	case ForgeGeneric:
		return parseGeneric(body)
	}
	return event{}, fmt.Errorf("unknown forge %q", forge)
}

// giteaLikePush is the push payload of GitHub, Gitea and Forgejo.
type giteaLikePush struct {
	Ref        string `json:"ref"`
	Repository struct {
		CloneURL      string `json:"clone_url"`
		SSHURL        string `json:"ssh_url"`
		HTMLURL       string `json:"html_url"`
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
}

func (p giteaLikePush) event() event {
	r := p.Repository
	return event{urls: []string{r.CloneURL, r.SSHURL, r.HTMLURL}, refs: []string{p.Ref}, defaultBranch: r.DefaultBranch}
}

func parseGitHub(h http.Header, body []byte) (event, error) {
	switch kind := h.Get("X-GitHub-Event"); kind {
	case "ping":
		return event{ping: true}, nil
	case "push":
		var p giteaLikePush
		if err := decode(h, body, &p); err != nil {
			return event{}, err
		}
		return p.event(), nil
	default:
		return event{ignore: fmt.Sprintf("GitHub event %q is not a push", kind)}, nil
	}
}

func parseGitea(h http.Header, body []byte) (event, error) {
	kind := h.Get("X-Forgejo-Event")
	if kind == "" {
		kind = h.Get("X-Gitea-Event")
	}
	switch kind {
	case "ping":
		return event{ping: true}, nil
	case "push":
		var p giteaLikePush
		if err := decode(h, body, &p); err != nil {
			return event{}, err
		}
		return p.event(), nil
	default:
		return event{ignore: fmt.Sprintf("Gitea event %q is not a push", kind)}, nil
	}
}

func parseGitLab(h http.Header, body []byte) (event, error) {
	var p struct {
		ObjectKind string `json:"object_kind"`
		EventName  string `json:"event_name"`
		Ref        string `json:"ref"`
		Project    struct {
			GitHTTPURL    string `json:"git_http_url"`
			GitSSHURL     string `json:"git_ssh_url"`
			WebURL        string `json:"web_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"project"`
	}
	kind := h.Get("X-Gitlab-Event")
	switch kind {
	case "Push Hook", "Tag Push Hook", "System Hook":
	default:
		return event{ignore: fmt.Sprintf("GitLab event %q is not a push", kind)}, nil
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return event{}, fmt.Errorf("decode GitLab payload: %w", err)
	}
	// System hooks carry every kind of event; only pushes matter.
	if k := p.ObjectKind + p.EventName; kind == "System Hook" && !strings.Contains(k, "push") {
		return event{ignore: fmt.Sprintf("GitLab system hook %q is not a push", p.EventName)}, nil
	}
	pr := p.Project
	return event{urls: []string{pr.GitHTTPURL, pr.GitSSHURL, pr.WebURL}, refs: []string{p.Ref}, defaultBranch: pr.DefaultBranch}, nil
}

func parseBitbucket(h http.Header, body []byte) (event, error) {
	switch kind := h.Get("X-Event-Key"); kind {
	case "diagnostics:ping":
		return event{ping: true}, nil
	case "repo:push":
	default:
		return event{ignore: fmt.Sprintf("Bitbucket event %q is not a push", kind)}, nil
	}
	type change struct {
		Type string `json:"type"` // branch or tag
		Name string `json:"name"`
	}
	var p struct {
		Repository struct {
			FullName string `json:"full_name"`
			Links    struct {
				HTML struct {
					Href string `json:"href"`
				} `json:"html"`
			} `json:"links"`
		} `json:"repository"`
		Push struct {
			Changes []struct {
				New *change `json:"new"`
				Old *change `json:"old"`
			} `json:"changes"`
		} `json:"push"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return event{}, fmt.Errorf("decode Bitbucket payload: %w", err)
	}
	ev := event{urls: []string{p.Repository.Links.HTML.Href}}
	if p.Repository.FullName != "" {
		// The web URL is https://bitbucket.org/<full_name>; list it
		// again from full_name in case links are missing.
		host := "bitbucket.org"
		if u, err := url.Parse(p.Repository.Links.HTML.Href); err == nil && u.Host != "" {
			host = u.Host
		}
		ev.urls = append(ev.urls, "https://"+host+"/"+p.Repository.FullName)
	}
	for _, c := range p.Push.Changes {
		ch := c.New
		if ch == nil { // deleted branch or tag
			ch = c.Old
		}
		if ch == nil {
			continue
		}
		switch ch.Type {
		case "branch", "named_branch":
			ev.refs = append(ev.refs, "refs/heads/"+ch.Name)
		case "tag", "annotated_tag":
			ev.refs = append(ev.refs, "refs/tags/"+ch.Name)
		}
	}
	return ev, nil
}

// GenericPush is the body /hooks/generic expects, signed in X-Tend-Signature.
type GenericPush struct {
	// Repository is the repository URL in any form a Source may use.
	Repository string `json:"repository"`
	// Ref is refs/heads/<branch> or refs/tags/<tag>; a bare name is a
	// branch.
	Ref string `json:"ref"`
}

func parseGeneric(body []byte) (event, error) {
	var p GenericPush
	if err := json.Unmarshal(body, &p); err != nil {
		return event{}, fmt.Errorf("decode payload: %w (want {\"repository\": URL, \"ref\": \"refs/heads/main\"})", err)
	}
	if p.Repository == "" || p.Ref == "" {
		return event{}, errors.New(`payload needs "repository" and "ref", e.g. {"repository": "https://git.example.com/team/app.git", "ref": "refs/heads/main"}`)
	}
	ref := p.Ref
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	return event{urls: []string{p.Repository}, refs: []string{ref}}, nil
}

// decode unmarshals a JSON body, or the "payload" field of a form-encoded
// one (GitHub's and Gitea's other content type).
func decode(h http.Header, body []byte, v any) error {
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return fmt.Errorf("decode form payload: %w", err)
		}
		body = []byte(form.Get("payload"))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode payload: %w", err)
	}
	return nil
}
