// Command gitmeasure compares go-git and the git CLI for what tend's git source
// does: a shallow (depth 1) clone of a branch, and an incremental shallow
// fetch into the same checkout after one more commit.
//
// It builds a repository of -files files and -commits commits, serves it with
// `git http-backend` on loopback, and for each tool records wall time and peak
// memory. Memory is read three ways: the resident set of the child and its
// descendants sampled from /proc every millisecond (summed over the
// processes running at once, as RSS and as PSS, which divides shared pages
// such as libc among the processes using them; and the highest VmHWM of any
// one), the ru_maxrss that wait4 reports for the child (syscall.Rusage),
// and, for go-git, the peak Go heap (runtime.MemStats, sampled). go-git runs in a child process (this binary,
// re-executed) so both tools are measured the same way.
//
// ru_maxrss is printed because it is the usual figure, but on Linux it is
// not the child's own peak: Go starts children with CLONE_VFORK|CLONE_VM and
// the kernel carries the parent's high-water mark into the child at exec, so
// every direct child of this program reports at least this program's RSS.
// The /proc figures do not have that flaw.
//
//	cd bench/gitmeasure && go run . -runs 5
//
// It is a Go module of its own, so that go-git is no dependency of tend. The
// figures and the choice they led to are in docs/sources-git.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "", "internal: run one go-git operation in this process (clone, fetch or noop)")
	dir := flag.String("dir", "", "internal: checkout directory for -mode")
	url := flag.String("url", "", "internal: repository URL for -mode")
	files := flag.Int("files", 3000, "files in the generated repository")
	commits := flag.Int("commits", 300, "commits in the generated repository")
	runs := flag.Int("runs", 5, "runs per measurement (the median is reported)")
	flag.Parse()

	if *mode != "" {
		if err := runGoGit(*mode, *dir, *url); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*files, *commits, *runs); err != nil {
		log.Fatal(err)
	}
}

// sample is one measured operation.
type sample struct {
	Wall      time.Duration `json:"wall"`
	MaxRSS    int64         `json:"maxRSS"`    // bytes, wait4 ru_maxrss (see measured)
	TreeRSS   int64         `json:"treeRSS"`   // bytes, peak of summed VmRSS over the process tree
	TreePSS   int64         `json:"treePSS"`   // bytes, peak of summed Pss over the process tree
	MaxHWM    int64         `json:"maxHWM"`    // bytes, highest VmHWM of one process in the tree
	HeapPeak  uint64        `json:"heapPeak"`  // bytes, go-git only
	HeapAlloc uint64        `json:"heapAlloc"` // bytes allocated in total, go-git only
}

func run(files, commits, runs int) error {
	work, err := os.MkdirTemp("", "tend-measure-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(work)

	root := filepath.Join(work, "srv")
	repo := filepath.Join(root, "repo")
	start := time.Now()
	if err := makeRepo(repo, files, commits); err != nil {
		return err
	}
	log.Printf("made repository: %d files, %d commits in %s", files, commits, time.Since(start).Round(time.Millisecond))

	backend, err := gitExecPath("git-http-backend")
	if err != nil {
		return err
	}
	srv := httptest.NewServer(&cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	})
	defer srv.Close()
	url := srv.URL + "/repo"

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}

	var base []sample
	for range runs {
		s, err := goGitChild(self, "noop", "", "")
		if err != nil {
			return err
		}
		base = append(base, s)
	}

	var cliClone, goClone, cliFetch, goFetch []sample
	for i := range runs {
		cliDir := filepath.Join(work, fmt.Sprintf("cli-%d", i))
		goDir := filepath.Join(work, fmt.Sprintf("gogit-%d", i))

		s, err := cliSequence(cliDir, [][]string{
			{"init", "-q"},
			{"fetch", "-q", "--depth=1", "--no-tags", url, "+refs/heads/main:refs/tend/target"},
			{"checkout", "-q", "--force", "--detach", "refs/tend/target"},
		})
		if err != nil {
			return err
		}
		cliClone = append(cliClone, s)

		if s, err = goGitChild(self, "clone", goDir, url); err != nil {
			return err
		}
		goClone = append(goClone, s)

		// One more commit that changes one file, then fetch it into both.
		if err := commitOne(repo, i); err != nil {
			return err
		}
		if s, err = cliSequence(cliDir, [][]string{
			{"fetch", "-q", "--depth=1", "--no-tags", url, "+refs/heads/main:refs/tend/target"},
			{"checkout", "-q", "--force", "--detach", "refs/tend/target"},
		}); err != nil {
			return err
		}
		cliFetch = append(cliFetch, s)

		if s, err = goGitChild(self, "fetch", goDir, url); err != nil {
			return err
		}
		goFetch = append(goFetch, s)
		if err := sameHead(cliDir, goDir); err != nil {
			return err
		}
	}

	fmt.Printf("repository: %d files, %d commits, served by git http-backend on loopback; %d runs, medians\n\n", files, commits, runs)
	fmt.Println("| operation | tool | wall time | peak RSS, all processes | peak PSS, all processes | largest process VmHWM | ru_maxrss (wait4) | peak Go heap | Go heap allocated |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	row := func(op, tool string, ss []sample) {
		m := median(ss)
		heap, alloc := "n/a", "n/a"
		if m.HeapPeak > 0 {
			heap, alloc = mib(int64(m.HeapPeak)), mib(int64(m.HeapAlloc))
		}
		fmt.Printf("| %s | %s | %d ms | %s | %s | %s | %s | %s | %s |\n", op, tool, m.Wall.Milliseconds(), mib(m.TreeRSS), mib(m.TreePSS), mib(m.MaxHWM), mib(m.MaxRSS), heap, alloc)
	}
	row("shallow clone (depth 1)", "git CLI", cliClone)
	row("shallow clone (depth 1)", "go-git v5.19.3", goClone)
	row("incremental fetch, 1 commit", "git CLI", cliFetch)
	row("incremental fetch, 1 commit", "go-git v5.19.3", goFetch)
	row("empty Go process (baseline)", "-", base)
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// median returns the sample with the median wall time, and the median of
// each memory figure independently.
func median(ss []sample) sample {
	pick := func(f func(sample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return sample{
		Wall:      time.Duration(pick(func(s sample) int64 { return int64(s.Wall) })),
		MaxRSS:    pick(func(s sample) int64 { return s.MaxRSS }),
		TreeRSS:   pick(func(s sample) int64 { return s.TreeRSS }),
		TreePSS:   pick(func(s sample) int64 { return s.TreePSS }),
		MaxHWM:    pick(func(s sample) int64 { return s.MaxHWM }),
		HeapPeak:  uint64(pick(func(s sample) int64 { return int64(s.HeapPeak) })),
		HeapAlloc: uint64(pick(func(s sample) int64 { return int64(s.HeapAlloc) })),
	}
}

// gitEnv is a clean environment: no user or system gitconfig, no prompts.
func gitEnv() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=measure", "GIT_AUTHOR_EMAIL=measure@example.com",
		"GIT_COMMITTER_NAME=measure", "GIT_COMMITTER_EMAIL=measure@example.com",
		"LC_ALL=C",
	}
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func gitExecPath(name string) (string, error) {
	dir, err := git("", "--exec-path")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// cliSequence runs git commands one after another in dir (created if
// missing) and returns their total wall time and the largest memory figures
// of any one of them.
func cliSequence(dir string, cmds [][]string) (sample, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, fmt.Errorf("mkdir: %w", err)
	}
	var s sample
	start := time.Now()
	for _, args := range cmds {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = gitEnv()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		m, err := measured(cmd)
		if err != nil {
			return sample{}, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out.String())
		}
		s.MaxRSS, s.TreeRSS, s.TreePSS, s.MaxHWM = max(s.MaxRSS, m.MaxRSS), max(s.TreeRSS, m.TreeRSS), max(s.TreePSS, m.TreePSS), max(s.MaxHWM, m.MaxHWM)
	}
	s.Wall = time.Since(start)
	return s, nil
}

// measured runs cmd and reports its memory: the
// kernel's ru_maxrss for the child (which on Linux also counts the parent's
// pages the child shared before exec, Go spawning children with
// CLONE_VFORK|CLONE_VM) and the /proc figures of the process and its
// descendants, which do not.
func measured(cmd *exec.Cmd) (sample, error) {
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	w := watchTree(cmd.Process.Pid)
	err := cmd.Wait()
	var s sample
	s.TreeRSS, s.TreePSS, s.MaxHWM = w.Stop()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.MaxRSS = ru.Maxrss * 1024
	}
	return s, err
}

// goGitChild re-executes this binary to run one go-git operation and returns
// what the child reported plus its memory as seen from outside.
func goGitChild(self, mode, dir, url string) (sample, error) {
	cmd := exec.Command(self, "-mode", mode, "-dir", dir, "-url", url)
	cmd.Env = gitEnv()
	cmd.Stderr = os.Stderr
	var out strings.Builder
	cmd.Stdout = &out
	m, err := measured(cmd)
	if err != nil {
		return sample{}, fmt.Errorf("go-git %s: %w", mode, err)
	}
	var s sample
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		return sample{}, fmt.Errorf("go-git %s: decode %q: %w", mode, out.String(), err)
	}
	s.MaxRSS, s.TreeRSS, s.TreePSS, s.MaxHWM = m.MaxRSS, m.TreeRSS, m.TreePSS, m.MaxHWM
	return s, nil
}

func makeRepo(dir string, files, commits int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	if _, err := git(dir, "-c", "init.defaultBranch=main", "init", "-q"); err != nil {
		return err
	}
	for i := range files {
		if err := writeManifest(dir, i, 0); err != nil {
			return err
		}
	}
	if _, err := git(dir, "add", "-A"); err != nil {
		return err
	}
	if _, err := git(dir, "commit", "-q", "-m", "initial"); err != nil {
		return err
	}
	// Each later commit edits ten files spread over the tree.
	for c := 1; c < commits; c++ {
		for k := range 10 {
			if err := writeManifest(dir, (c*37+k*301)%files, c); err != nil {
				return err
			}
		}
		if _, err := git(dir, "commit", "-q", "-a", "-m", fmt.Sprintf("change %d", c)); err != nil {
			return err
		}
	}
	return nil
}

func commitOne(dir string, run int) error {
	if err := writeManifest(dir, 7, 100000+run); err != nil {
		return err
	}
	_, err := git(dir, "commit", "-q", "-a", "-m", fmt.Sprintf("measure run %d", run))
	return err
}

// writeManifest writes file i (a ConfigMap of about 1 KiB, 30 per app
// directory) at version v.
func writeManifest(dir string, i, v int) error {
	app := fmt.Sprintf("apps/app-%03d", i/30)
	if err := os.MkdirAll(filepath.Join(dir, app), 0o755); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\n  namespace: app-%03d\n  labels:\n    version: \"%d\"\ndata:\n", i, i/30, v)
	for k := range 20 {
		fmt.Fprintf(&b, "  key-%02d: value-%d-%d-%x\n", k, i, v, (i*7919+k*104729+v*31)%1000003)
	}
	return os.WriteFile(filepath.Join(dir, app, fmt.Sprintf("cm-%04d.yaml", i)), []byte(b.String()), 0o644)
}

func sameHead(a, b string) error {
	ha, err := git(a, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	hb, err := git(b, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if ha != hb {
		return fmt.Errorf("git CLI checked out %s, go-git %s", ha, hb)
	}
	return nil
}

// runGoGit runs one go-git operation in this process and prints a sample as
// JSON on stdout.
func runGoGit(mode, dir, url string) error {
	stop := make(chan struct{})
	peak := make(chan uint64)
	var before memStats
	before.read()
	go func() {
		var p uint64
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			var r memStats
			r.read()
			p = max(p, r.heapInuse)
			select {
			case <-stop:
				peak <- p
				return
			case <-t.C:
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	var err error
	switch mode {
	case "clone":
		err = goGitClone(ctx, dir, url)
	case "fetch":
		err = goGitFetch(ctx, dir, url)
	case "noop":
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	wall := time.Since(start)
	close(stop)
	p := <-peak
	if err != nil {
		return err
	}
	var after memStats
	after.read()
	return json.NewEncoder(os.Stdout).Encode(sample{Wall: wall, HeapPeak: p, HeapAlloc: after.totalAlloc - before.totalAlloc})
}
