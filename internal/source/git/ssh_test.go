package git

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tend-gitops/tend/internal/testenv"
)

func TestFetchSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client (openssh-client) installed")
	}
	// Temporary files (the key, known_hosts) go here, so the test can see
	// them removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	repo := newTestRepo(t)
	key, pub := testenv.NewSSHClientKey(t)
	srv := testenv.NewSSHGitServer(t, filepath.Dir(repo.BareDir), pub)
	url := fmt.Sprintf("ssh://git@%s%s", srv.Addr, repo.BareDir)
	f := &Fetcher{}
	auth := &Auth{SSHPrivateKey: key, SSHKnownHosts: srv.KnownHosts()}

	dir := t.TempDir()
	res := fetch(t, f, dir, Options{URL: url, Ref: Ref{Branch: "main"}, Auth: auth})
	if got, want := res.Revision, repo.Head(); got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	next := repo.Commit("over ssh", map[string]string{"apps/b/cm.yaml": "b2\n"})
	res = fetch(t, f, dir, Options{URL: url, Ref: Ref{Branch: "main"}, Auth: auth})
	if got, want := res.Revision, next; got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := res.ChangedFiles, []string{"apps/b/cm.yaml"}; !slices.Equal(got, want) {
		t.Errorf("ChangedFiles = %q, want %q", got, want)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	t.Run("host key mismatch", func(t *testing.T) {
		_, otherHostKey := testenv.NewSSHClientKey(t)
		wrong := &Auth{SSHPrivateKey: key, SSHKnownHosts: knownHostsLine(srv.Addr, otherHostKey)}
		err := fetchErr(t, f, t.TempDir(), Options{URL: url, Auth: wrong})
		if !errors.Is(err, ErrHostKey) {
			t.Errorf("error %q does not match ErrHostKey", err)
		}
		if want := "ssh host key verification failed for " + srv.Addr; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})

	t.Run("unknown host", func(t *testing.T) {
		other := &Auth{SSHPrivateKey: key, SSHKnownHosts: knownHostsLine("git.example.com:22", srv.HostKey)}
		err := fetchErr(t, f, t.TempDir(), Options{URL: url, Auth: other})
		if !errors.Is(err, ErrHostKey) {
			t.Errorf("error %q does not match ErrHostKey", err)
		}
	})

	t.Run("key not authorised", func(t *testing.T) {
		otherKey, _ := testenv.NewSSHClientKey(t)
		bad := &Auth{SSHPrivateKey: otherKey, SSHKnownHosts: auth.SSHKnownHosts}
		err := fetchErr(t, f, t.TempDir(), Options{URL: url, Auth: bad})
		if !errors.Is(err, ErrAuth) {
			t.Errorf("error %q does not match ErrAuth", err)
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("error %q contains the key", err)
		}
	})

	t.Run("no known_hosts", func(t *testing.T) {
		err := fetchErr(t, f, t.TempDir(), Options{URL: url, Auth: &Auth{SSHPrivateKey: key}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("error %q does not match ErrInvalid", err)
		}
		if want := "known_hosts"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})
}

func knownHostsLine(addr string, key ssh.PublicKey) []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n")
}
