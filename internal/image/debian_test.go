package image

import (
	"strings"
	"testing"
	"time"
)

func TestCompareVersions(t *testing.T) {
	// Each pair is ordered as dpkg --compare-versions orders it.
	for _, c := range []struct{ lo, hi string }{
		{"1.0", "1.1"},
		{"1.9", "1.10"},
		{"1.0~rc1", "1.0"},
		{"1.0~rc1", "1.0~rc2"},
		{"1.0", "1.0-1"},
		{"1.0-1", "1.0-2"},
		{"1.0-2", "1.0-10"},
		{"2.39.2-1.1", "1:2.39.2-1"},
		{"1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u10"},
		{"3.0.11-1~deb12u2", "3.0.11-1"},
		{"1.0a", "1.0b"},
		{"1.0", "1.0a"},
		{"1.0+b1", "1.0.1"},
		{"0001.0", "2.0"},
	} {
		if got := compareVersions(c.lo, c.hi); got != -1 {
			t.Errorf("compare(%s, %s) = %d, want -1", c.lo, c.hi, got)
		}
		if got := compareVersions(c.hi, c.lo); got != 1 {
			t.Errorf("compare(%s, %s) = %d, want 1", c.hi, c.lo, got)
		}
	}
	for _, v := range []string{"1.0", "1:2.3-4", "1.0~rc1+b2"} {
		if got := compareVersions(v, v); got != 0 {
			t.Errorf("compare(%s, %s) = %d, want 0", v, v, got)
		}
	}
	if got := compareVersions("01.0", "1.0"); got != 0 {
		t.Errorf("leading zeros: compare = %d, want 0", got)
	}
}

const index = `Package: app
Version: 1.0
Architecture: amd64
Depends: libc6 (>= 2.34), mailer | mta, libz:any
Pre-Depends: init-system-helpers
Filename: pool/main/a/app/app_1.0_amd64.deb
Size: 10
SHA256: aaaa
Description: an app
 over two lines

Package: libc6
Version: 2.36-9
Architecture: amd64
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb
SHA256: bbbb

Package: libz
Version: 1.2
Architecture: amd64
Depends: libc6
Filename: pool/main/z/libz/libz_1.2_amd64.deb
SHA256: cccc

Package: postfix
Version: 3.7
Architecture: amd64
Provides: mta, default-mta
Filename: pool/main/p/postfix/postfix_3.7_amd64.deb
SHA256: dddd

Package: init-system-helpers
Version: 1.65
Architecture: all
Filename: pool/main/i/ish/ish_1.65_all.deb
SHA256: eeee

Package: unrelated
Version: 1
Architecture: amd64
Filename: pool/main/u/unrelated_1_amd64.deb
SHA256: ffff
`

// TestResolve takes Depends and Pre-Depends transitively, the first
// alternative that exists (by name or through Provides), strips
// architecture qualifiers and version constraints, and leaves out what
// nothing depends on.
func TestResolve(t *testing.T) {
	pkgs, err := parsePackages(strings.NewReader(index), "http://mirror/debian")
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]*Package{}
	for _, p := range pkgs {
		idx[p.Name] = p
	}
	if got := idx["app"].URL; got != "http://mirror/debian/pool/main/a/app/app_1.0_amd64.deb" {
		t.Errorf("URL %s", got)
	}
	if s := idx["app"].Stanza; strings.Contains(s, "Description") || strings.Contains(s, "Filename") || !strings.Contains(s, "Depends: libc6") {
		t.Errorf("status stanza keeps archive fields or drops dpkg's:\n%s", s)
	}
	got, err := resolve(idx, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if want := "app init-system-helpers libc6 libz postfix"; strings.Join(names, " ") != want {
		t.Errorf("resolved %v, want %s", names, want)
	}
	delete(idx, "postfix")
	if _, err := resolve(idx, []string{"app"}); err == nil || !strings.Contains(err.Error(), `package app: no package satisfies "mailer | mta"`) {
		t.Errorf("unsatisfiable dependency: error %v", err)
	}
	if _, err := resolve(idx, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "package nope: not in the archives") {
		t.Errorf("missing root: error %v", err)
	}
}

func TestReleaseSum(t *testing.T) {
	rel := "Origin: Debian\nMD5Sum:\n 0123 100 main/binary-amd64/Packages.xz\nSHA256:\n abcd 100 main/binary-arm64/Packages.xz\n ef01 200 main/binary-amd64/Packages.xz\n"
	if got, size, err := releaseSum([]byte(rel), "main/binary-amd64/Packages.xz"); err != nil || got != "ef01" || size != 200 {
		t.Errorf("sum %q size %d, %v; want ef01 and 200 (the SHA256 section's)", got, size, err)
	}
	if _, _, err := releaseSum([]byte(rel), "main/binary-riscv64/Packages.xz"); err == nil {
		t.Error("no error for a file the Release does not list")
	}
}

// TestCurrent refuses a genuinely signed index that is another suite's or
// past its Valid-Until: replayed by someone on the path, it would bring
// packages without their security fixes.
func TestCurrent(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	sec := "Origin: Debian\nSuite: oldstable-security\nCodename: bookworm-security\nDate: Sat, 05 Dec 2026 03:33:28 UTC\nValid-Until: Sat, 12 Dec 2026 03:33:28 UTC\nSHA256:\n ab 1 x\n"
	if err := current([]byte(sec), "bookworm-security", now); err != nil {
		t.Errorf("current index refused: %v", err)
	}
	if err := current([]byte(sec), "bookworm-security", now.AddDate(0, 0, 6)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired index: %v", err)
	}
	if err := current([]byte(sec), "bookworm", now); err == nil || !strings.Contains(err.Error(), "another suite") {
		t.Errorf("another suite's index: %v", err)
	}
	if err := current([]byte("Codename: bookworm\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n"), "bookworm", now); err != nil {
		t.Errorf("an index without Valid-Until (the release suite): %v", err)
	}
}

func TestDropped(t *testing.T) {
	for name, want := range map[string]bool{
		"usr/share/man/man1/git.1.gz":     true,
		"usr/share/locale/de/LC_MESSAGES": true,
		"usr/share/doc/git/README.md":     true,
		"usr/share/doc/git/copyright":     false,
		"usr/share/doc/git":               false,
		"usr/bin/git":                     false,
		"usr/share/git-core/templates":    false,
	} {
		if got := dropped(name); got != want {
			t.Errorf("dropped(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestDebDataRefusesOtherFiles(t *testing.T) {
	if _, err := debData([]byte("PK\x03\x04 a zip")); err == nil || !strings.Contains(err.Error(), "not a .deb") {
		t.Errorf("error %v", err)
	}
	ar := "!<arch>\n" + "debian-binary   0           0     0     100644  4         `\n" + "2.0\n"
	if _, err := debData([]byte(ar)); err == nil || !strings.Contains(err.Error(), "no data.tar") {
		t.Errorf("error %v", err)
	}
}
