package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustRoot is where kustomize sees the artifact: every path kustomize asks
// for must be under it, and errors are reported relative to it.
const kustRoot = "/artifact"

// kustFS is the filesystem kustomize runs on. Reads go to the artifact
// through files (confined, recorded, SOPS-decrypted in memory); writes
// kustomize makes go to an in-memory overlay, never to disk. Kustomization
// files are served rewritten by rewrite (see kustomize.go), with Helm
// charts inflated into an extra in-memory resource.
type kustFS struct {
	f *files
	// rewrite returns the content to serve for a kustomization file at
	// p (artifact-relative), given its bytes on disk.
	rewrite func(p string, b []byte) ([]byte, error)

	// remote, when set, serves the directories kustomize clones remote
	// git bases into (only when the App allows remote bases).
	remote filesys.FileSystem

	mu      sync.Mutex
	overlay map[string][]byte // artifact-relative path -> content
	dirs    map[string]bool   // directories created in the overlay
	failure error             // first error of ours, clearer than kustomize's rewording
}

var _ filesys.FileSystem = (*kustFS)(nil)

func newKustFS(f *files, rewrite func(string, []byte) ([]byte, error)) *kustFS {
	return &kustFS{f: f, rewrite: rewrite, overlay: map[string][]byte{}, dirs: map[string]bool{}}
}

// rel turns a kustomize path into an artifact-relative one.
func (k *kustFS) rel(p string) (string, error) {
	p = filepath.ToSlash(p)
	if !path.IsAbs(p) {
		p = path.Join(kustRoot, p)
	}
	p = path.Clean(p)
	if p == kustRoot {
		return ".", nil
	}
	if !strings.HasPrefix(p, kustRoot+"/") {
		return "", fmt.Errorf("%s is outside the source artifact; kustomizations can only use files in the same source", strings.TrimPrefix(p, kustRoot))
	}
	return p[len(kustRoot)+1:], nil
}

// clone returns p and true when p is in a directory kustomize cloned a
// remote base into and remote bases are allowed.
func (k *kustFS) clone(p string) (string, bool) {
	if k.remote == nil {
		return "", false
	}
	c := path.Clean(filepath.ToSlash(p))
	return c, path.IsAbs(c) && kustomizeCloneDir(c)
}

// firstFailure returns the first error of ours, if any.
func (k *kustFS) firstFailure() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.failure
}

// fail remembers the first of our own errors and returns err.
func (k *kustFS) fail(err error) error {
	k.mu.Lock()
	if k.failure == nil {
		k.failure = err
	}
	k.mu.Unlock()
	return err
}

func (k *kustFS) overlayGet(p string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.overlay[p]
	return b, ok
}

func (k *kustFS) overlayDir(p string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dirs[p] {
		return true
	}
	prefix := p + "/"
	if p == "." {
		prefix = ""
	}
	for q := range k.overlay {
		if strings.HasPrefix(q, prefix) {
			return true
		}
	}
	return false
}

func (k *kustFS) put(p string, b []byte) {
	k.mu.Lock()
	k.overlay[p] = b
	k.mu.Unlock()
}

// Create creates an in-memory file.
func (k *kustFS) Create(p string) (filesys.File, error) {
	r, err := k.rel(p)
	if err != nil {
		return nil, err
	}
	k.put(r, nil)
	return &memFile{name: r, k: k, writable: true}, nil
}

// Mkdir creates an in-memory directory.
func (k *kustFS) Mkdir(p string) error { return k.MkdirAll(p) }

// MkdirAll creates in-memory directories.
func (k *kustFS) MkdirAll(p string) error {
	r, err := k.rel(p)
	if err != nil {
		return err
	}
	k.mu.Lock()
	for d := r; d != "." && d != "/"; d = path.Dir(d) {
		k.dirs[d] = true
	}
	k.mu.Unlock()
	return nil
}

// RemoveAll removes in-memory files; the artifact is never changed.
func (k *kustFS) RemoveAll(p string) error {
	if c, ok := k.clone(p); ok {
		return k.remote.RemoveAll(c)
	}
	r, err := k.rel(p)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for q := range k.overlay {
		if q == r || strings.HasPrefix(q, r+"/") {
			delete(k.overlay, q)
		}
	}
	for q := range k.dirs {
		if q == r || strings.HasPrefix(q, r+"/") {
			delete(k.dirs, q)
		}
	}
	return nil
}

// Open opens a file for reading.
func (k *kustFS) Open(p string) (filesys.File, error) {
	if c, ok := k.clone(p); ok {
		return k.remote.Open(c)
	}
	b, err := k.ReadFile(p)
	if err != nil {
		return nil, err
	}
	r, _ := k.rel(p)
	return &memFile{name: r, k: k, buf: *bytes.NewBuffer(b)}, nil
}

// IsDir reports whether p is a directory.
func (k *kustFS) IsDir(p string) bool {
	if c, ok := k.clone(p); ok {
		return k.remote.IsDir(c)
	}
	r, err := k.rel(p)
	if err != nil {
		return false
	}
	return k.overlayDir(r) || k.f.isDir(r)
}

// ReadDir lists a directory's entry names.
func (k *kustFS) ReadDir(p string) ([]string, error) {
	if c, ok := k.clone(p); ok {
		return k.remote.ReadDir(c)
	}
	r, err := k.rel(p)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	entries, err := k.f.ReadDir(r)
	if err != nil && !k.overlayDir(r) {
		return nil, err
	}
	for _, e := range entries {
		names[e.Name()] = true
	}
	k.mu.Lock()
	for q := range k.overlay {
		if path.Dir(q) == r {
			names[path.Base(q)] = true
		}
	}
	k.mu.Unlock()
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// CleanedAbs splits p into a confirmed directory and a file name ("" when p
// is a directory).
func (k *kustFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if c, ok := k.clone(p); ok {
		return k.remote.CleanedAbs(c)
	}
	r, err := k.rel(p)
	if err != nil {
		return "", "", err
	}
	abs := path.Join(kustRoot, r)
	if k.IsDir(abs) {
		return filesys.ConfirmedDir(abs), "", nil
	}
	dir, file := path.Split(abs)
	dir = path.Clean(dir)
	if !k.IsDir(dir) {
		return "", "", fmt.Errorf("%s: no such directory in the source artifact", strings.TrimPrefix(dir, kustRoot+"/"))
	}
	return filesys.ConfirmedDir(dir), file, nil
}

// Exists reports whether p exists; the probe is recorded.
func (k *kustFS) Exists(p string) bool {
	if c, ok := k.clone(p); ok {
		return k.remote.Exists(c)
	}
	r, err := k.rel(p)
	if err != nil {
		return false
	}
	if _, ok := k.overlayGet(r); ok || k.overlayDir(r) {
		return true
	}
	return k.f.exists(r)
}

// Glob returns the paths matching pattern (wildcards in the last element).
func (k *kustFS) Glob(pattern string) ([]string, error) {
	if c, ok := k.clone(pattern); ok {
		return k.remote.Glob(c)
	}
	r, err := k.rel(pattern)
	if err != nil {
		return nil, err
	}
	dir := path.Dir(r)
	names, err := k.ReadDir(path.Join(kustRoot, dir))
	if err != nil {
		return nil, nil
	}
	var out []string
	for _, n := range names {
		if ok, err := path.Match(path.Base(r), n); err != nil {
			return nil, err
		} else if ok {
			out = append(out, path.Join(kustRoot, dir, n))
		}
	}
	return out, nil
}

// ReadFile reads p: overlay first, then the artifact (decrypted), with
// kustomization files rewritten.
func (k *kustFS) ReadFile(p string) ([]byte, error) {
	if c, ok := k.clone(p); ok {
		return k.remote.ReadFile(c)
	}
	r, err := k.rel(p)
	if err != nil {
		return nil, k.fail(err)
	}
	if b, ok := k.overlayGet(r); ok {
		return b, nil
	}
	b, err := k.f.ReadFile(r)
	if err != nil {
		// Kustomize tries paths that may not be files (a base directory
		// read as a file first): those errors are its to handle. Errors of
		// ours (decryption) are remembered, as kustomize rewords them.
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			err = k.fail(err)
		}
		return nil, err
	}
	if isKustomizationName(path.Base(r)) {
		nb, err := k.rewrite(r, b)
		if err != nil {
			return nil, k.fail(err)
		}
		k.put(r, nb)
		b = nb
	}
	return b, nil
}

// WriteFile writes to the in-memory overlay.
func (k *kustFS) WriteFile(p string, data []byte) error {
	r, err := k.rel(p)
	if err != nil {
		return err
	}
	k.put(r, bytes.Clone(data))
	return nil
}

// Walk walks the artifact tree under p (the overlay's files included).
func (k *kustFS) Walk(p string, fn filepath.WalkFunc) error {
	if c, ok := k.clone(p); ok {
		return k.remote.Walk(c, fn)
	}
	r, err := k.rel(p)
	if err != nil {
		return err
	}
	var walk func(r string) error
	walk = func(r string) error {
		abs := path.Join(kustRoot, r)
		if !k.IsDir(abs) {
			b, err := k.ReadFile(abs)
			return fn(abs, memInfo{name: path.Base(r), size: int64(len(b))}, err)
		}
		if err := fn(abs, memInfo{name: path.Base(r), dir: true}, nil); err != nil {
			if errors.Is(err, filepath.SkipDir) {
				return nil
			}
			return err
		}
		names, err := k.ReadDir(abs)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := walk(path.Join(r, n)); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(r)
}

func isKustomizationName(name string) bool {
	return name == "kustomization.yaml" || name == "kustomization.yml" || name == "Kustomization"
}

// memFile is a file kustomize opened: reads from a snapshot, writes to the
// overlay on Close.
type memFile struct {
	name     string
	k        *kustFS
	buf      bytes.Buffer
	writable bool
}

func (m *memFile) Read(p []byte) (int, error) {
	if m.writable {
		return 0, io.EOF
	}
	return m.buf.Read(p)
}

func (m *memFile) Write(p []byte) (int, error) {
	if !m.writable {
		return 0, fmt.Errorf("%s: opened read-only", m.name)
	}
	return m.buf.Write(p)
}

func (m *memFile) Close() error {
	if m.writable {
		m.k.put(m.name, bytes.Clone(m.buf.Bytes()))
	}
	return nil
}

func (m *memFile) Stat() (os.FileInfo, error) {
	return memInfo{name: path.Base(m.name), size: int64(m.buf.Len())}, nil
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
