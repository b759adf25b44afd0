package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Versions of the components the local control plane runs. KubeVersion must
// match the k8s.io/kubernetes requirement in go.mod; the cache is keyed by it.
const (
	KubeVersion = "v1.37.1"
	KwokVersion = "v0.8.0"
	modulePath  = "github.com/tend-gitops/tend/tools/cluster"
)

// Binaries are the paths of the built components.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler, Kwok string
}

// component describes how to build one binary and how to check a cached copy.
type component struct {
	name    string
	build   func(ctx context.Context, out string, log io.Writer) error
	version []string // arguments that make the binary print its version
	want    string   // substring the version output must contain
}

type builder struct {
	src    string // tools/cluster module directory
	binDir string
	log    io.Writer
}

func cacheRoot() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "tend", "cluster"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find cache dir: %w (set XDG_CACHE_HOME)", err)
	}
	return filepath.Join(home, ".cache", "tend", "cluster"), nil
}

func newBuilder(src string, log io.Writer) (*builder, error) {
	root, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	if src == "" {
		src = os.Getenv("TEND_CLUSTER_SRC")
	}
	if src == "" {
		if src, err = findModuleDir(); err != nil {
			return nil, err
		}
	}
	return &builder{src: src, binDir: filepath.Join(root, KubeVersion, "bin"), log: log}, nil
}

// findModuleDir walks up from the working directory looking for this module,
// either as the directory itself or as tools/cluster below a tend checkout.
func findModuleDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, cand := range []string{d, filepath.Join(d, "tools", "cluster")} {
			if b, err := os.ReadFile(filepath.Join(cand, "go.mod")); err == nil &&
				bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
				return cand, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cannot find the tools/cluster module above %s; run from a tend checkout or pass --src", wd)
		}
	}
}

func (b *builder) components() []component {
	ldflags := strings.Join([]string{
		"-s", "-w",
		"-X k8s.io/component-base/version.gitVersion=" + KubeVersion,
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=" + strings.Split(KubeVersion, ".")[1],
		"-X k8s.io/component-base/version.gitTreeState=clean",
		"-X k8s.io/client-go/pkg/version.gitVersion=" + KubeVersion,
		"-X k8s.io/client-go/pkg/version.gitMajor=1",
		"-X k8s.io/client-go/pkg/version.gitMinor=" + strings.Split(KubeVersion, ".")[1],
	}, " ")
	kube := func(pkg string) func(context.Context, string, io.Writer) error {
		return func(ctx context.Context, out string, log io.Writer) error {
			return b.goCmd(ctx, log, nil, "build", "-ldflags", ldflags, "-o", out, pkg)
		}
	}
	return []component{
		{name: "etcd", build: func(ctx context.Context, out string, log io.Writer) error {
			return b.goCmd(ctx, log, nil, "build", "-ldflags", "-s -w", "-o", out, "./cmd/etcd")
		}, version: []string{"--version"}, want: "etcd"},
		{name: "kube-apiserver", build: kube("k8s.io/kubernetes/cmd/kube-apiserver"), version: []string{"--version"}, want: KubeVersion},
		{name: "kube-controller-manager", build: kube("k8s.io/kubernetes/cmd/kube-controller-manager"), version: []string{"--version"}, want: KubeVersion},
		{name: "kube-scheduler", build: kube("k8s.io/kubernetes/cmd/kube-scheduler"), version: []string{"--version"}, want: KubeVersion},
		{name: "kwok", build: func(ctx context.Context, out string, log io.Writer) error {
			// kwok is built with its own go.mod (go install pkg@version), so its
			// Kubernetes libraries need not match ours.
			gobin, err := os.MkdirTemp(filepath.Dir(out), "kwok-build-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(gobin)
			if err := b.goCmd(ctx, log, []string{"GOBIN=" + gobin}, "install", "-ldflags", "-s -w", "sigs.k8s.io/kwok/cmd/kwok@"+KwokVersion); err != nil {
				return err
			}
			return os.Rename(filepath.Join(gobin, "kwok"), out)
		}, version: []string{"--version"}, want: "kwok version " + KwokVersion},
	}
}

// ensure builds every component that is missing or fails its version check
// and returns their paths.
func (b *builder) ensure(ctx context.Context) (Binaries, error) {
	if err := b.ensureComponents(ctx, b.components()); err != nil {
		return Binaries{}, err
	}
	p := func(name string) string { return filepath.Join(b.binDir, name) }
	return Binaries{
		Etcd:              p("etcd"),
		APIServer:         p("kube-apiserver"),
		ControllerManager: p("kube-controller-manager"),
		Scheduler:         p("kube-scheduler"),
		Kwok:              p("kwok"),
	}, nil
}

// ensureComponents builds the given components where missing or unusable,
// holding a lock so concurrent callers do not build the same binary twice.
func (b *builder) ensureComponents(ctx context.Context, comps []component) error {
	if err := os.MkdirAll(b.binDir, 0o755); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(b.binDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lock cache dir: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(b.log, "waiting for another build in %s to finish\n", b.binDir)
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			return fmt.Errorf("lock cache dir: %w", err)
		}
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	for _, c := range comps {
		out := filepath.Join(b.binDir, c.name)
		if err := checkBinary(ctx, out, c); err == nil {
			continue
		} else if !os.IsNotExist(err) {
			fmt.Fprintf(b.log, "cached %s is unusable (%v); rebuilding\n", c.name, err)
		}
		if err := b.buildOne(ctx, c, out); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) buildOne(ctx context.Context, c component, out string) error {
	logPath := filepath.Join(b.binDir, c.name+".build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	tmp := out + ".tmp"
	_ = os.Remove(tmp)
	start := time.Now()
	fmt.Fprintf(b.log, "building %s (first build of the control plane takes several minutes)\n", c.name)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(b.log, "  still building %s (%s)\n", c.name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err = c.build(ctx, tmp, logf)
	close(done)
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("build %s failed: %w\n%s", c.name, err, tailFile(logPath, 30))
	}
	if err := checkBinary(ctx, tmp, c); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("built %s but it does not run: %w", c.name, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "built %s in %s\n", c.name, time.Since(start).Round(time.Second))
	return nil
}

func (b *builder) goCmd(ctx context.Context, log io.Writer, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.src
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	return cmd.Run()
}

// checkBinary runs the binary's version command with a timeout; a missing
// file returns an error satisfying os.IsNotExist.
func checkBinary(ctx context.Context, path string, c component) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, c.version...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w", path, strings.Join(c.version, " "), err)
	}
	if !strings.Contains(string(out), c.want) {
		return fmt.Errorf("%s reports %q, want %q", path, firstLine(out), c.want)
	}
	return nil
}

func firstLine(b []byte) string {
	s := bufio.NewScanner(bytes.NewReader(b))
	if s.Scan() {
		return s.Text()
	}
	return ""
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", len(lines), path, strings.Join(lines, "\n"))
}
