package git

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer serves git-upload-pack for repositories under root to one
// authorised client key, like a forge's ssh endpoint.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func newSSHServer(t *testing.T, root string, authorized ssh.PublicKey) *sshServer {
	t.Helper()
	hostSigner := newSigner(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorised")
		},
	}
	cfg.AddHostKey(hostSigner)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveSSHConn(conn, cfg, root) })
		}
	})
	return &sshServer{addr: l.Addr().String(), hostKey: hostSigner.PublicKey()}
}

func serveSSHConn(conn net.Conn, cfg *ssh.ServerConfig, root string) {
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, requests, root)
	}
}

// serveSession runs `git-upload-pack '<path>'` for an exec request and
// reports its exit status.
func serveSession(ch ssh.Channel, requests <-chan *ssh.Request, root string) {
	defer ch.Close()
	var env []string
	for req := range requests {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if err := ssh.Unmarshal(req.Payload, &kv); err == nil && kv.Name == "GIT_PROTOCOL" {
				env = append(env, kv.Name+"="+kv.Value)
			}
			_ = req.Reply(true, nil)
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			path, ok := strings.CutPrefix(p.Command, "git-upload-pack ")
			path = strings.Trim(path, "'")
			if !ok || !strings.HasPrefix(filepath.Clean(path), root) {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			cmd := exec.Command("git-upload-pack", path)
			cmd.Env = append(testEnv(root), env...)
			cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
			stdin, err := cmd.StdinPipe()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(stdin, ch)
				stdin.Close()
			}()
			status := uint32(0)
			if err := cmd.Run(); err != nil {
				status = 1
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					status = uint32(exit.ExitCode())
				}
			}
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newClientKey returns an ssh private key in OpenSSH PEM form and its public
// key.
func newClientKey(t *testing.T) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), sshPub
}

func knownHostsLine(addr string, key ssh.PublicKey) []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n")
}

func TestFetchSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client (openssh-client) installed")
	}
	// Temporary files (the key, known_hosts) go here, so the test can see
	// them removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	repo := newTestRepo(t)
	key, pub := newClientKey(t)
	srv := newSSHServer(t, filepath.Dir(repo.BareDir), pub)
	url := fmt.Sprintf("ssh://git@%s%s", srv.addr, repo.BareDir)
	f := &Fetcher{}
	auth := &Auth{SSHPrivateKey: key, SSHKnownHosts: knownHostsLine(srv.addr, srv.hostKey)}

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
		wrong := &Auth{SSHPrivateKey: key, SSHKnownHosts: knownHostsLine(srv.addr, newSigner(t).PublicKey())}
		err := fetchErr(t, f, t.TempDir(), Options{URL: url, Auth: wrong})
		if !errors.Is(err, ErrHostKey) {
			t.Errorf("error %q does not match ErrHostKey", err)
		}
		if want := "ssh host key verification failed for " + srv.addr; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})

	t.Run("unknown host", func(t *testing.T) {
		other := &Auth{SSHPrivateKey: key, SSHKnownHosts: knownHostsLine("git.example.com:22", srv.hostKey)}
		err := fetchErr(t, f, t.TempDir(), Options{URL: url, Auth: other})
		if !errors.Is(err, ErrHostKey) {
			t.Errorf("error %q does not match ErrHostKey", err)
		}
	})

	t.Run("key not authorised", func(t *testing.T) {
		otherKey, _ := newClientKey(t)
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
