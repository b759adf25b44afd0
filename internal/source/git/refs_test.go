package git

import (
	"errors"
	"testing"
)

func TestLatestSemVer(t *testing.T) {
	for _, tc := range []struct {
		constraint string
		tags       []string
		want       string
	}{
		{">=1.0.0 <2.0.0", []string{"v1.0.0", "v1.2.0", "1.3.0", "v2.0.0", "latest"}, "1.3.0"},
		{"~1.2", []string{"v1.2.0", "v1.2.5", "v1.3.0"}, "v1.2.5"},
		{"^1", []string{"v1.0.0", "v1.10.0", "v1.9.0"}, "v1.10.0"},
		{">=1.0.0", []string{"v1.0.0", "v1.1.0-rc.1"}, "v1.0.0"},
		{">=1.1.0-0", []string{"v1.0.0", "v1.1.0-rc.1"}, "v1.1.0-rc.1"},
		{"*", []string{"1.0.0", "v1.0.0"}, "v1.0.0"},
		{"*", []string{"v1.0.0", "1.0.0"}, "v1.0.0"},
	} {
		got, err := LatestSemVer(tc.constraint, tc.tags)
		if err != nil {
			t.Errorf("LatestSemVer(%q, %q): %v", tc.constraint, tc.tags, err)
			continue
		}
		if got != tc.want {
			t.Errorf("LatestSemVer(%q, %q) = %q, want %q", tc.constraint, tc.tags, got, tc.want)
		}
	}

	if _, err := LatestSemVer(">=3", []string{"v1.0.0", "main"}); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("no match: error %v does not match ErrRefNotFound", err)
	}
	if _, err := LatestSemVer("one point oh", []string{"v1.0.0"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad range: error %v does not match ErrInvalid", err)
	}
}

func TestValidate(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"https", Options{URL: "https://example.com/org/repo.git"}, true},
		{"ssh", Options{URL: "ssh://git@example.com:2222/org/repo.git"}, true},
		{"scp-like", Options{URL: "git@example.com:org/repo.git"}, true},
		{"branch and commit", Options{URL: "https://h/r", Ref: Ref{Branch: "main", Commit: sha}}, true},
		{"no URL", Options{}, false},
		{"file URL", Options{URL: "file:///etc"}, false},
		{"ext transport", Options{URL: "ext::sh -c touch% /tmp/pwned"}, false},
		{"option as URL", Options{URL: "--upload-pack=touch /tmp/pwned:x"}, false},
		{"branch and tag", Options{URL: "https://h/r", Ref: Ref{Branch: "main", Tag: "v1"}}, false},
		{"tag and commit", Options{URL: "https://h/r", Ref: Ref{Tag: "v1", Commit: sha}}, false},
		{"short commit", Options{URL: "https://h/r", Ref: Ref{Commit: "0123456"}}, false},
		{"branch with space", Options{URL: "https://h/r", Ref: Ref{Branch: "a b"}}, false},
		{"branch like an option", Options{URL: "https://h/r", Ref: Ref{Branch: "-x"}}, false},
		{"tag with ..", Options{URL: "https://h/r", Ref: Ref{Tag: "v1..2"}}, false},
	} {
		err := validate(tc.opts)
		if got, want := err == nil, tc.ok; got != want {
			t.Errorf("%s: validate = %v, want ok=%v", tc.name, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not match ErrInvalid", tc.name, err)
		}
	}
}
