package image

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tend-gitops/tend/internal/release"
)

// SPDX 2.3 JSON, the parts tend writes.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string       `json:"SPDXID"`
	Name             string       `json:"name"`
	VersionInfo      string       `json:"versionInfo,omitempty"`
	Supplier         string       `json:"supplier,omitempty"`
	DownloadLocation string       `json:"downloadLocation"`
	FilesAnalyzed    bool         `json:"filesAnalyzed"`
	LicenseConcluded string       `json:"licenseConcluded"`
	LicenseDeclared  string       `json:"licenseDeclared"`
	CopyrightText    string       `json:"copyrightText"`
	Checksums        []spdxSum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExtRef `json:"externalRefs,omitempty"`
	PrimaryPurpose   string       `json:"primaryPackagePurpose,omitempty"`
}

type spdxSum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExtRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func spdxID(kind, name, version string) string {
	return "SPDXRef-" + kind + "-" + spdxIDUnsafe.ReplaceAllString(name+"-"+version, "-")
}

// spdx describes one platform's image: the image, tend and the Go
// modules built into it (from the binary's own build information), and
// the Debian packages with their .deb checksums and package URLs.
func spdx(o Options, p release.Platform, img v1.Image, pkgs []*Package, bin []byte) ([]byte, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	bi, err := goModules(bin)
	if err != nil {
		return nil, fmt.Errorf("tend's build information: %w", err)
	}
	imageID := "SPDXRef-Image"
	doc := spdxDoc{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              fmt.Sprintf("tend-%s-%s-%s", o.Version, p.OS, p.Arch),
		DocumentNamespace: fmt.Sprintf("%s/sbom/%s/%s", o.Source, o.Version, digest),
		CreationInfo: spdxCreation{
			Created:  o.Time.UTC().Format("2006-01-02T15:04:05Z"),
			Creators: []string{"Tool: tend-image-" + o.Version, "Organization: tend"},
		},
	}
	add := func(pkg spdxPackage, rel string) {
		doc.Packages = append(doc.Packages, pkg)
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: imageID, Type: rel, Related: pkg.SPDXID})
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		SPDXID: imageID, Name: "tend", VersionInfo: o.Version, DownloadLocation: "NOASSERTION",
		LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
		PrimaryPurpose: "CONTAINER",
		Checksums:      []spdxSum{{Algorithm: "SHA256", Value: digest.Hex}},
		ExternalRefs: []spdxExtRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: fmt.Sprintf("pkg:oci/tend@%s?arch=%s&repository_url=%s",
			url.QueryEscape(digest.String()), p.Arch, url.QueryEscape("ghcr.io/tend-gitops/tend"))}},
	})
	doc.Relationships = append(doc.Relationships, spdxRelationship{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: imageID})
	add(spdxPackage{
		SPDXID: spdxID("Go", bi.Main.Path, o.Version), Name: bi.Main.Path, VersionInfo: o.Version,
		DownloadLocation: "git+" + o.Source + "@" + o.Commit, LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION",
		CopyrightText: "NOASSERTION", PrimaryPurpose: "APPLICATION",
		ExternalRefs: []spdxExtRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/" + bi.Main.Path + "@" + o.Version}},
	}, "CONTAINS")
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		pkg := spdxPackage{
			SPDXID: spdxID("Go", m.Path, m.Version), Name: m.Path, VersionInfo: m.Version,
			DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
			LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
			PrimaryPurpose: "LIBRARY",
			ExternalRefs:   []spdxExtRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/" + m.Path + "@" + m.Version}},
		}
		add(pkg, "CONTAINS")
	}
	for _, d := range pkgs {
		add(spdxPackage{
			SPDXID: spdxID("Deb", d.Name, d.Version), Name: d.Name, VersionInfo: d.Version,
			Supplier:         "Organization: Debian",
			DownloadLocation: d.URL, LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION",
			CopyrightText: "NOASSERTION", PrimaryPurpose: "LIBRARY",
			Checksums: []spdxSum{{Algorithm: "SHA256", Value: d.SHA256}},
			ExternalRefs: []spdxExtRef{{Category: "PACKAGE-MANAGER", Type: "purl",
				Locator: fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=debian-12", d.Name, url.QueryEscape(d.Version), d.Arch)}},
		}, "CONTAINS")
	}
	return json.MarshalIndent(doc, "", "  ")
}
