package testenv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHGitServer serves git-upload-pack over ssh for the repositories under
// a root directory to one authorised client key, like a forge's ssh
// endpoint, on loopback.
type SSHGitServer struct {
	// Addr is host:port, for ssh://git@<Addr>/<path> URLs.
	Addr    string
	HostKey ssh.PublicKey
}

// NewSSHGitServer serves the repositories under root to the holder of
// authorized's private key until the test ends.
func NewSSHGitServer(t testing.TB, root string, authorized ssh.PublicKey) *SSHGitServer {
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
	return &SSHGitServer{Addr: l.Addr().String(), HostKey: hostSigner.PublicKey()}
}

// URL is the ssh URL of the repository at path (under the server's root).
func (s *SSHGitServer) URL(path string) string { return "ssh://git@" + s.Addr + path }

// KnownHosts is the known_hosts line of the server's host key.
func (s *SSHGitServer) KnownHosts() []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey) + "\n")
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
			cmd.Env = append(gitServerEnv(root), env...)
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

func newSigner(t testing.TB) ssh.Signer {
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

// NewSSHClientKey returns an ssh private key in OpenSSH PEM form (a
// Source Secret's "identity") and its public key.
func NewSSHClientKey(t testing.TB) ([]byte, ssh.PublicKey) {
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

// gitServerEnv is git-upload-pack's environment: no system or user
// configuration.
func gitServerEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
}
