package git

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"golang.org/x/crypto/ssh"

	"github.com/tend-gitops/tend/internal/testenv"
)

// signedPush pushes a change signed by signer and returns the commit.
func signedPush(t *testing.T, repo *testenv.GitRepo, signer Signer, content string) string {
	t.Helper()
	res, err := (&Fetcher{}).Push(context.Background(), PushOptions{
		Options: Options{URL: repo.URL},
		Branch:  "main",
		Author:  Signature{Name: "Release Bot", Email: "release@example.com"},
		Message: "promote dev to " + content,
		Signer:  signer,
		Change: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "tag.txt"), []byte(content+"\n"), 0o644)
		},
	})
	if err != nil || !res.Pushed {
		t.Fatalf("push: %+v, %v", res, err)
	}
	repo.Pull()
	return res.Revision
}

// verifyCommit runs git verify-commit on rev with extra git config.
func verifyCommit(t *testing.T, repo *testenv.GitRepo, env []string, config ...string) (string, error) {
	t.Helper()
	args := []string{}
	for _, c := range config {
		args = append(args, "-c", c)
	}
	args = append(args, "verify-commit", "-v", "HEAD")
	cmd := exec.Command("git", args...)
	cmd.Dir = repo.Dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// SSH keys (ed25519, and RSA signed with rsa-sha2-512), one protected by a
// passphrase: git verify-commit accepts the commits with ssh-keygen and
// an allowed signers file naming the key, and refuses them for another
// key. The commit's tree, author and message are the change's.
func TestSignSSH(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{"tag.txt": "1.0.0\n"})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		key        any
		passphrase string
	}{{"ed25519", edKey, ""}, {"rsa", rsaKey, ""}, {"ed25519 with a passphrase", edKey, "s3cret"}} {
		t.Run(tc.name, func(t *testing.T) {
			var block *pem.Block
			if tc.passphrase != "" {
				block, err = ssh.MarshalPrivateKeyWithPassphrase(tc.key, "", []byte(tc.passphrase))
			} else {
				block, err = ssh.MarshalPrivateKey(tc.key, "")
			}
			if err != nil {
				t.Fatal(err)
			}
			pemKey := pem.EncodeToMemory(block)
			if tc.passphrase != "" {
				if _, err := NewSSHSigner(pemKey, nil); err == nil || !strings.Contains(err.Error(), `add it to the Secret as "passphrase"`) {
					t.Errorf("a protected key without its passphrase: %v", err)
				}
			}
			signer, err := NewSSHSigner(pemKey, []byte(tc.passphrase))
			if err != nil {
				t.Fatal(err)
			}
			rev := signedPush(t, repo, signer, tc.name)
			if got := repo.Git("log", "-1", "--format=%an|%s", rev); got != "Release Bot|promote dev to "+tc.name {
				t.Errorf("commit %q", got)
			}
			if got := repo.Git("show", rev+":tag.txt"); got != tc.name {
				t.Errorf("tag.txt %q", got)
			}
			sshSigner, _ := ssh.ParsePrivateKeyWithPassphrase(pemKey, []byte(tc.passphrase))
			if tc.passphrase == "" {
				sshSigner, _ = ssh.ParsePrivateKey(pemKey)
			}
			allowed := filepath.Join(t.TempDir(), "allowed_signers")
			line := "release@example.com " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshSigner.PublicKey()))) + "\n"
			if err := os.WriteFile(allowed, []byte(line), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := verifyCommit(t, repo, nil, "gpg.format=ssh", "gpg.ssh.allowedSignersFile="+allowed)
			if err != nil || !strings.Contains(out, `Good "git" signature for release@example.com`) {
				t.Errorf("git verify-commit: %v\n%s", err, out)
			}
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			otherPub, _ := ssh.NewPublicKey(other.Public())
			if err := os.WriteFile(allowed, []byte("release@example.com "+string(ssh.MarshalAuthorizedKey(otherPub))), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := verifyCommit(t, repo, nil, "gpg.format=ssh", "gpg.ssh.allowedSignersFile="+allowed); err == nil {
				t.Errorf("verified with another key:\n%s", out)
			}
		})
	}
}

// An OpenPGP key, protected by a passphrase: git verify-commit accepts
// the commit with gpg and the public key imported, and not without it.
func TestSignOpenPGP(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{"tag.txt": "1.0.0\n"})
	e, err := openpgp.NewEntity("Release Bot", "", "release@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.EncryptPrivateKeys([]byte("s3cret"), nil); err != nil {
		t.Fatal(err)
	}
	var priv, pub bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := NewOpenPGPSigner(priv.Bytes(), nil); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("a protected key without its passphrase: %v", err)
	}
	if _, err := NewOpenPGPSigner(pub.Bytes(), nil); err == nil || !strings.Contains(err.Error(), "no private key") {
		t.Errorf("a public key: %v", err)
	}
	signer, err := NewOpenPGPSigner(priv.Bytes(), []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	signedPush(t, repo, signer, "1.1.0")
	home := t.TempDir()
	env := []string{"GNUPGHOME=" + home}
	if out, err := verifyCommit(t, repo, env); err == nil {
		t.Errorf("verified without the public key:\n%s", out)
	}
	imp := exec.Command("gpg", "--batch", "--import")
	imp.Env = append(os.Environ(), env...)
	imp.Stdin = &pub
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := verifyCommit(t, repo, env)
	if err != nil || !strings.Contains(out, `Good signature from "Release Bot <release@example.com>"`) {
		t.Errorf("git verify-commit: %v\n%s", err, out)
	}
}
