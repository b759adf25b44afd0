package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SOPS decryption happens in files.ReadFile, so every renderer (plain
// directories, kustomize resources and generator sources, Helm values)
// sees plaintext and nothing decrypted is ever written anywhere. This file
// decides whether a file is a SOPS document and in which format;
// sops_keys.go recovers the data key with the App's age and OpenPGP keys;
// sops_formats.go and sops_metadata.go load each format, and sops_tree.go
// decrypts the values and verifies the MAC.

// sopsFormat is the format of a SOPS-encrypted file; it is also the format
// of the plaintext it decrypts to.
type sopsFormat int

const (
	notSOPS sopsFormat = iota
	sopsYAML
	sopsJSON
	sopsDotenv
	sopsINI
	sopsBinary // JSON envelope {"data": ..., "sops": ...}; decrypts to raw bytes
)

func (s sopsFormat) String() string {
	return [...]string{"plain", "yaml", "json", "dotenv", "ini", "binary"}[s]
}

// maybeDecrypt returns b unchanged unless it is a SOPS document, which it
// decrypts (verifying the MAC) with the App's keys. Errors name p and never
// contain plaintext or secret key material.
func (f *files) maybeDecrypt(p string, b []byte) ([]byte, error) {
	format := detectSOPS(p, b)
	if format == notSOPS {
		return b, nil
	}
	if f.keys == nil || (len(f.keys.Age) == 0 && len(f.keys.PGP) == 0) {
		return nil, fmt.Errorf("%s: %w", p, errEncryptedNoKeys)
	}
	kr, err := f.keyring()
	if err != nil {
		return nil, err
	}
	out, err := decryptSOPS(format, b, kr)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", p, err)
	}
	return out, nil
}

// detectSOPS tells whether b (read from p) is a SOPS document and in which
// format. The extension decides between formats the way the sops CLI does
// (.yaml/.yml, .json, .env, .ini, anything else binary), but only content
// carrying SOPS metadata (a mac and lastmodified) counts as encrypted. Files
// with an unknown extension are sniffed.
func detectSOPS(p string, b []byte) sopsFormat {
	if !bytes.Contains(b, []byte("sops")) || !bytes.Contains(b, []byte("lastmodified")) || !bytes.Contains(b, []byte("mac")) {
		return notSOPS
	}
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml":
		if isSOPSYAML(b) {
			return sopsYAML
		}
		return notSOPS
	case ".json":
		if isSOPSJSON(b) {
			return sopsJSON
		}
		return notSOPS
	case ".env":
		if isSOPSDotenv(b) {
			return sopsDotenv
		}
		return notSOPS
	case ".ini":
		if isSOPSINI(b) {
			return sopsINI
		}
		return notSOPS
	}
	switch {
	case isSOPSJSON(b):
		if isBinaryEnvelope(b) {
			return sopsBinary
		}
		return sopsJSON
	case isSOPSDotenv(b):
		return sopsDotenv
	case isSOPSINI(b):
		return sopsINI
	case isSOPSYAML(b):
		return sopsYAML
	}
	return notSOPS
}

// hasSOPSMetadata reports whether m (a decoded "sops" entry) carries the
// metadata every encrypted document has.
func hasSOPSMetadata(m map[string]any) bool {
	_, mac := m["mac"]
	_, lm := m["lastmodified"]
	return mac && lm
}

func isSOPSYAML(b []byte) bool {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "sops" && root.Content[i+1].Kind == yaml.MappingNode {
			var m map[string]any
			if root.Content[i+1].Decode(&m) == nil {
				return hasSOPSMetadata(m)
			}
		}
	}
	return false
}

func isSOPSJSON(b []byte) bool {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(t, &top) != nil {
		return false
	}
	var m map[string]any
	if json.Unmarshal(top["sops"], &m) != nil {
		return false
	}
	return hasSOPSMetadata(m)
}

// isBinaryEnvelope reports whether b, a SOPS JSON document, is the binary
// store's envelope: only "data" (a string) and "sops".
func isBinaryEnvelope(b []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil || len(top) != 2 {
		return false
	}
	var s string
	return json.Unmarshal(top["data"], &s) == nil
}

func isSOPSDotenv(b []byte) bool {
	var mac, lm bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		line := sc.Text()
		mac = mac || strings.HasPrefix(line, "sops_mac=")
		lm = lm || strings.HasPrefix(line, "sops_lastmodified=")
	}
	return mac && lm
}

func isSOPSINI(b []byte) bool {
	var inSOPS, mac, lm bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			inSOPS = line == "[sops]"
			continue
		}
		if !inSOPS {
			continue
		}
		key, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "mac":
			mac = true
		case "lastmodified":
			lm = true
		}
	}
	return mac && lm
}
