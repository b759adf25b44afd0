package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ulikunitz/xz"
)

// Archive is one Debian archive suite the packages come from: the
// mirror's base URL and the suite (bookworm, bookworm-security).
type Archive struct {
	URL   string
	Suite string
}

// DefaultArchives are Debian 12's release, updates and security suites.
// Security updates win over the release: a package's newest version in
// any of them is taken.
var DefaultArchives = []Archive{
	{URL: "https://deb.debian.org/debian", Suite: "bookworm"},
	{URL: "https://deb.debian.org/debian", Suite: "bookworm-updates"},
	{URL: "https://deb.debian.org/debian-security", Suite: "bookworm-security"},
}

// DefaultPackages are what the image needs besides tend: git for fetches
// (and its HTTPS transport), ssh for git over SSH, the CA bundle.
var DefaultPackages = []string{"ca-certificates", "git", "openssh-client"}

// DefaultKeyring verifies the archives' InRelease files.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Package is one binary package of an archive's index.
type Package struct {
	Name, Version, Arch string
	// Depends and PreDepends are the raw fields.
	Depends, PreDepends string
	Provides            string
	// URL is where the .deb is; SHA256 its checksum from the signed index.
	URL, SHA256 string
	Size        int64
	// Stanza is the package's index entry, written to the image's
	// /var/lib/dpkg/status.d so that scanners see what is installed.
	Stanza string
}

// debian resolves and fetches packages of one architecture.
type debian struct {
	client  *http.Client
	keyring openpgp.EntityList
	cache   string
	log     io.Writer
}

func (d *debian) logf(format string, args ...any) {
	if d.log != nil {
		fmt.Fprintf(d.log, format+"\n", args...)
	}
}

// index reads the packages of arch from every archive: InRelease checked
// against the keyring, Packages.xz against InRelease's SHA-256. For each
// name the newest version wins.
func (d *debian) index(ctx context.Context, archives []Archive, arch string) (map[string]*Package, error) {
	out := map[string]*Package{}
	for _, a := range archives {
		base := strings.TrimSuffix(a.URL, "/")
		rel, err := d.get(ctx, base+"/dists/"+a.Suite+"/InRelease", 16<<20)
		if err != nil {
			return nil, err
		}
		signed, err := d.verify(rel)
		if err == nil {
			err = current(signed, a.Suite, time.Now())
		}
		if err != nil {
			return nil, fmt.Errorf("%s/dists/%s/InRelease: %w", base, a.Suite, err)
		}
		name := "main/binary-" + arch + "/Packages.xz"
		want, size, err := releaseSum(signed, name)
		if err != nil {
			return nil, fmt.Errorf("%s/dists/%s/InRelease: %w", base, a.Suite, err)
		}
		xzb, err := d.get(ctx, base+"/dists/"+a.Suite+"/"+name, size)
		if err != nil {
			return nil, err
		}
		if got := sum(xzb); got != want {
			return nil, fmt.Errorf("%s/dists/%s/%s: sha256 %s, InRelease says %s", base, a.Suite, name, got, want)
		}
		r, err := xz.NewReader(bytes.NewReader(xzb))
		if err != nil {
			return nil, fmt.Errorf("%s/dists/%s/%s: %w", base, a.Suite, name, err)
		}
		pkgs, err := parsePackages(r, base)
		if err != nil {
			return nil, fmt.Errorf("%s/dists/%s/%s: %w", base, a.Suite, name, err)
		}
		for _, p := range pkgs {
			if old, ok := out[p.Name]; !ok || compareVersions(p.Version, old.Version) > 0 {
				out[p.Name] = p
			}
		}
	}
	return out, nil
}

// verify checks a clear-signed InRelease and returns its signed text.
func (d *debian) verify(b []byte) ([]byte, error) {
	block, _ := clearsign.Decode(b)
	if block == nil {
		return nil, errors.New("not a clear-signed file")
	}
	if _, err := block.VerifySignature(d.keyring, nil); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return block.Plaintext, nil
}

// releaseSum finds file's SHA-256 and size in a Release file.
func releaseSum(release []byte, file string) (string, int64, error) {
	in := false
	for _, line := range strings.Split(string(release), "\n") {
		if !strings.HasPrefix(line, " ") {
			in = strings.HasPrefix(line, "SHA256:")
			continue
		}
		if f := strings.Fields(line); in && len(f) == 3 && f[2] == file {
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return "", 0, fmt.Errorf("size of %s: %w", file, err)
			}
			return f[0], size, nil
		}
	}
	return "", 0, fmt.Errorf("no SHA256 of %s", file)
}

// current checks that a signed Release is the suite's and still valid:
// an old, genuinely signed Release (or another suite's) replayed by
// someone on the path would bring packages without their security fixes.
func current(release []byte, suite string, now time.Time) error {
	fields := map[string]string{}
	for _, line := range strings.Split(string(release), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			if _, seen := fields[k]; !seen {
				fields[k] = strings.TrimSpace(v)
			}
		}
	}
	if c := fields["Codename"]; c != suite {
		return fmt.Errorf("signed for codename %q, not %q: refusing another suite's index", c, suite)
	}
	if v := fields["Valid-Until"]; v != "" {
		until, err := time.Parse(time.RFC1123, strings.Replace(v, "UTC", "GMT", 1))
		if err != nil {
			return fmt.Errorf("Valid-Until %q: %w", v, err)
		}
		if now.After(until) {
			return fmt.Errorf("expired on %s (Valid-Until): a stale index, or this machine's clock is wrong", v)
		}
	}
	return nil
}

// parsePackages reads a Packages index.
func parsePackages(r io.Reader, base string) ([]*Package, error) {
	var out []*Package
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var stanza strings.Builder
	fields := map[string]string{}
	last := ""
	flush := func() error {
		defer func() {
			stanza.Reset()
			fields = map[string]string{}
			last = ""
		}()
		if len(fields) == 0 {
			return nil
		}
		p := &Package{
			Name: fields["Package"], Version: fields["Version"], Arch: fields["Architecture"],
			Depends: fields["Depends"], PreDepends: fields["Pre-Depends"], Provides: fields["Provides"],
			SHA256: fields["SHA256"], Stanza: stanza.String(),
		}
		if p.Name == "" || p.Version == "" || fields["Filename"] == "" || p.SHA256 == "" {
			return fmt.Errorf("entry %q lacks Package, Version, Filename or SHA256", p.Name)
		}
		p.URL = base + "/" + fields["Filename"]
		fmt.Sscan(fields["Size"], &p.Size)
		out = append(out, p)
		return nil
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				fields[last] += "\n" + line
			}
			if last != "Description" {
				stanza.WriteString(line + "\n")
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %q: want Field: value", line)
		}
		last = k
		fields[k] = strings.TrimSpace(v)
		switch k {
		case "Filename", "Size", "MD5sum", "SHA256", "Description-md5", "Tag", "Section", "Description":
			// Archive details, not what dpkg keeps of an installed package.
		default:
			stanza.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// resolve returns roots and everything they depend on (Depends and
// Pre-Depends; Recommends are left out), sorted by name. An alternative
// "a | b" takes the first that exists, by name or through Provides.
func resolve(idx map[string]*Package, roots []string) ([]*Package, error) {
	provides := map[string][]string{}
	for _, p := range idx {
		for _, f := range splitList(p.Provides) {
			name := depName(f)
			provides[name] = append(provides[name], p.Name)
		}
	}
	for _, names := range provides {
		sort.Strings(names)
	}
	seen := map[string]bool{}
	queue := append([]string(nil), roots...)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		p, ok := idx[name]
		if !ok {
			return nil, fmt.Errorf("package %s: not in the archives", name)
		}
		seen[name] = true
		for _, dep := range splitList(p.PreDepends + "," + p.Depends) {
			found := ""
			for _, alt := range strings.Split(dep, "|") {
				n := depName(alt)
				if _, ok := idx[n]; ok {
					found = n
				} else if ps := provides[n]; len(ps) > 0 {
					found = ps[0]
				}
				if found != "" {
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("package %s: no package satisfies %q", name, strings.TrimSpace(dep))
			}
			queue = append(queue, found)
		}
	}
	out := make([]*Package, 0, len(seen))
	for name := range seen {
		out = append(out, idx[name])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// depName is the package name of "name:any (>= 1.0)".
func depName(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " (["); i >= 0 {
		s = s[:i]
	}
	name, _, _ := strings.Cut(s, ":")
	return name
}

// fetch returns the .deb of p, from the cache when there, checked against
// the index's SHA-256 either way.
func (d *debian) fetch(ctx context.Context, p *Package) ([]byte, error) {
	path := filepath.Join(d.cache, p.SHA256+".deb")
	if b, err := os.ReadFile(path); err == nil && sum(b) == p.SHA256 {
		return b, nil
	}
	d.logf("fetching %s %s (%s)", p.Name, p.Version, p.Arch)
	limit := p.Size
	if limit <= 0 {
		limit = 1 << 30
	}
	b, err := d.get(ctx, p.URL, limit)
	if err != nil {
		return nil, err
	}
	if got := sum(b); got != p.SHA256 {
		return nil, fmt.Errorf("%s: sha256 %s, the signed index says %s", p.URL, got, p.SHA256)
	}
	if err := os.MkdirAll(d.cache, 0o755); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, err
	}
	return b, os.Rename(tmp, path)
}

// get reads url, refusing more than limit bytes before anything is
// checked.
func (d *debian) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: more than the %d bytes expected", url, limit)
	}
	return b, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// compareVersions orders Debian versions as dpkg does:
// [epoch:]upstream[-revision], each part compared by alternating non-digit
// and digit runs, with ~ sorting before everything, even the end.
func compareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareNum(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		epoch, v = e, rest
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

func compareNum(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// order is dpkg's weight of one character of a non-digit run.
func order(c byte) int {
	switch {
	case c == '~':
		return -1
	case isDigit(c):
		return 0
	case c == 0:
		return 0
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	default:
		return int(c) + 256
	}
}

func compareFragment(a, b string) int {
	for a != "" || b != "" {
		// Non-digit runs, character by character.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			var ca, cb byte
			if a != "" && !isDigit(a[0]) {
				ca = a[0]
			}
			if b != "" && !isDigit(b[0]) {
				cb = b[0]
			}
			if oa, ob := order(ca), order(cb); oa != ob {
				if oa < ob {
					return -1
				}
				return 1
			}
			if ca != 0 {
				a = a[1:]
			}
			if cb != 0 {
				b = b[1:]
			}
		}
		var da, db string
		for a != "" && isDigit(a[0]) {
			da, a = da+a[:1], a[1:]
		}
		for b != "" && isDigit(b[0]) {
			db, b = db+b[:1], b[1:]
		}
		if c := compareNum(da, db); c != 0 {
			return c
		}
	}
	return 0
}
