package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// files is a read-only view of an artifact directory, confined to it (no
// path or symlink leads outside; os.Root enforces that), which records every
// file read and every directory listed, and decrypts SOPS documents in
// memory.
type files struct {
	root string
	fsys fs.FS
	keys *Keys

	mu     sync.Mutex
	read   map[string]struct{}
	origin map[*unstructured.Unstructured]string

	krOnce sync.Once // parses keys into kr on first use (sops_keys.go)
	kr     *keyring
	krErr  error
}

func newFiles(root string, keys *Keys) *files {
	f := &files{root: root, keys: keys, read: map[string]struct{}{}, origin: map[*unstructured.Unstructured]string{}}
	if r, err := os.OpenRoot(root); err == nil {
		f.fsys = r.FS()
	} else {
		f.fsys = errFS{err}
	}
	return f
}

// errFS fails every call; it stands in when the root cannot be opened so the
// error surfaces on first use with the path in it.
type errFS struct{ err error }

func (e errFS) Open(string) (fs.File, error) { return nil, e.err }

// clean turns p into a slash path relative to the root, rejecting paths that
// climb out of it.
func clean(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(p, "./"))
	if c == ".." || strings.HasPrefix(c, "../") || path.IsAbs(c) {
		return "", fmt.Errorf("%s: outside the source artifact", p)
	}
	return c, nil
}

func (f *files) record(p string) {
	f.mu.Lock()
	f.read[p] = struct{}{}
	f.mu.Unlock()
}

// Open implements fs.FS without recording (callers record what they read).
func (f *files) Open(name string) (fs.File, error) {
	c, err := clean(name)
	if err != nil {
		return nil, err
	}
	return f.fsys.Open(c)
}

// Stat implements fs.StatFS.
func (f *files) Stat(name string) (fs.FileInfo, error) {
	c, err := clean(name)
	if err != nil {
		return nil, err
	}
	return fs.Stat(f.fsys, c)
}

// exists reports whether p exists and records the probe: a render that
// looked for a file that was not there is affected when it appears.
func (f *files) exists(p string) bool {
	_, err := f.Stat(p)
	f.recordProbe(p)
	return err == nil
}

// isDir reports whether p is a directory, recording the probe like exists.
func (f *files) isDir(p string) bool {
	fi, err := f.Stat(p)
	f.recordProbe(p)
	return err == nil && fi.IsDir()
}

func (f *files) recordProbe(p string) {
	if c, err := clean(p); err == nil && c != "." {
		f.record(c)
	}
}

// setOrigin remembers the artifact file obj was read from, for errors.
func (f *files) setOrigin(obj *unstructured.Unstructured, p string) {
	f.mu.Lock()
	f.origin[obj] = p
	f.mu.Unlock()
}

// originOf returns the file obj was read from, or "".
func (f *files) originOf(obj *unstructured.Unstructured) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.origin[obj]
}

// ReadFile reads p, records it, and returns its content decrypted when it is
// a SOPS document.
func (f *files) ReadFile(p string) ([]byte, error) {
	c, err := clean(p)
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(f.fsys, c)
	if err != nil {
		return nil, err
	}
	f.record(c)
	return f.maybeDecrypt(c, b)
}

// ReadDir lists dir and records the listing (as "dir/"), so that adding or
// removing a file in dir counts as a change to the render.
func (f *files) ReadDir(dir string) ([]fs.DirEntry, error) {
	c, err := clean(dir)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(f.fsys, c)
	if err != nil {
		return nil, err
	}
	if c == "." {
		f.record("./")
	} else {
		f.record(c + "/")
	}
	return entries, nil
}

// readSet returns what was read, sorted: file paths, and directory listings
// as "dir/" ("./" for the root).
func (f *files) readSet() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.read))
	for k := range f.read {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Affected reports whether a render that read the given files (a
// Result.Files) is affected by the changed paths (slash-separated, relative to
// the artifact root, as git reports them). A nil changed list means "unknown"
// and affects everything.
func Affected(read, changed []string) bool {
	if changed == nil {
		return true
	}
	files := make(map[string]struct{}, len(read))
	for _, r := range read {
		files[r] = struct{}{}
	}
	for _, c := range changed {
		if _, ok := files[c]; ok {
			return true
		}
		dir := path.Dir(c)
		if dir == "." {
			dir = "."
		}
		if _, ok := files[dir+"/"]; ok {
			return true
		}
	}
	return false
}

var errEncryptedNoKeys = errors.New("file is SOPS-encrypted but the App has no decryption keys; set spec.decryption.secretRef")
