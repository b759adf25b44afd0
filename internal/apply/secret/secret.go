// Package secret owns what tend does to a Secret beyond applying it as git
// declares it: values tend generates once and keeps (tend.dev/generate),
// their rotation on request, and the markers of replication
// (tend.dev/replicate-to).
//
// Generated values never come from git, so everything that compares git
// with the cluster must know which keys are tend's: the engine (what to
// apply, the inventory hash), diff (what to show) and the CLI (what may be
// rotated). They all read the annotations through this package.
//
// Values are created with crypto/rand and exist only in the live Secret and,
// for an apply, in the request that writes them. Nothing here logs, and no
// error or message of this package contains a value.
package secret

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Annotations and labels of generated and replicated Secrets.
const (
	// AnnotationGenerate lists the keys tend generates: a comma list of
	// key or key=length, e.g. "password, api-key=48".
	AnnotationGenerate = tendv1.AnnotationGenerate
	// AnnotationGenerateFormat is alnum (default), hex or base64.
	AnnotationGenerateFormat = tendv1.AnnotationGenerateFormat
	// AnnotationRotateRequestedAt, set to a new value (`tend secret
	// rotate` sets the time), asks for new values at the next sync.
	AnnotationRotateRequestedAt = tendv1.AnnotationRotateRequestedAt
	// AnnotationRotateKeys limits a rotation to some keys (a comma list);
	// absent or empty, every generated key is rotated.
	AnnotationRotateKeys = tendv1.AnnotationRotateKeys
	// AnnotationRotatedAt is the last rotation request tend handled. tend
	// writes it; a request equal to it is not pending.
	AnnotationRotatedAt = tendv1.AnnotationRotatedAt

	// AnnotationReplicateTo is a label selector of the namespaces a Secret
	// is copied into.
	AnnotationReplicateTo = tendv1.AnnotationReplicateTo
	// AnnotationReplicaOf, on a copy, names its source: "namespace/name".
	AnnotationReplicaOf = tendv1.AnnotationReplicaOf
	// AnnotationReplicaOwner, on a copy, names the App that applied its
	// source: "namespace/name".
	AnnotationReplicaOwner = tendv1.AnnotationReplicaOwner
	// LabelReplicate marks the Secrets replication watches: the engine
	// sets it to ReplicateSource on a Secret with AnnotationReplicateTo,
	// and copies carry ReplicateCopy. tend watches only Secrets with this
	// label, never every Secret of the cluster.
	LabelReplicate  = tendv1.LabelReplicate
	ReplicateSource = "source"
	ReplicateCopy   = "copy"
)

// Format is how generated values are written.
type Format string

// Formats of generated values.
const (
	// Alnum values are Length characters from A-Z, a-z and 0-9.
	Alnum Format = "alnum"
	// Hex values are Length random bytes, hex-encoded (2*Length characters).
	Hex Format = "hex"
	// Base64 values are Length random bytes, standard base64 with padding.
	Base64 Format = "base64"
)

// DefaultLength is the length of a key without one.
const DefaultLength = 32

// MaxLength bounds a key's length.
const MaxLength = 4096

// Key is one generated key.
type Key struct {
	Name   string
	Length int
}

// Spec is what a Secret's annotations ask tend to generate.
type Spec struct {
	Keys   []Key
	Format Format
}

// IsSecret reports whether o is a core/v1 Secret.
func IsSecret(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Secret"
}

// keyRe is what the API server accepts as a Secret data key.
var keyRe = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// ParseSpec reads the generate annotations. It returns nil and no error when
// the Secret generates nothing.
func ParseSpec(annotations map[string]string) (*Spec, error) {
	v, ok := annotations[AnnotationGenerate]
	if !ok || strings.TrimSpace(v) == "" {
		if ok {
			return nil, fmt.Errorf("annotation %s is empty: list the keys to generate, e.g. \"password, api-key=48\"", AnnotationGenerate)
		}
		return nil, nil
	}
	s := &Spec{Format: Alnum}
	if f, ok := annotations[AnnotationGenerateFormat]; ok {
		switch Format(strings.TrimSpace(f)) {
		case Alnum, Hex, Base64:
			s.Format = Format(strings.TrimSpace(f))
		default:
			return nil, fmt.Errorf("annotation %s=%q: want alnum, hex or base64", AnnotationGenerateFormat, f)
		}
	}
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, length, hasLength := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		k := Key{Name: name, Length: DefaultLength}
		if !keyRe.MatchString(name) || len(name) > 253 {
			return nil, fmt.Errorf("annotation %s: %q is not a valid Secret key (letters, digits, '-', '_' and '.')", AnnotationGenerate, name)
		}
		if hasLength {
			n, err := strconv.Atoi(strings.TrimSpace(length))
			if err != nil || n < 1 || n > MaxLength {
				return nil, fmt.Errorf("annotation %s: length of %q is %q: want a number from 1 to %d", AnnotationGenerate, name, strings.TrimSpace(length), MaxLength)
			}
			k.Length = n
		}
		if seen[name] {
			return nil, fmt.Errorf("annotation %s: key %q is listed twice", AnnotationGenerate, name)
		}
		seen[name] = true
		s.Keys = append(s.Keys, k)
	}
	if len(s.Keys) == 0 {
		return nil, fmt.Errorf("annotation %s=%q lists no key", AnnotationGenerate, v)
	}
	return s, nil
}

// Names returns the spec's key names in order.
func (s *Spec) Names() []string {
	out := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		out[i] = k.Name
	}
	return out
}

// Has reports whether the spec generates key.
func (s *Spec) Has(key string) bool {
	for _, k := range s.Keys {
		if k.Name == key {
			return true
		}
	}
	return false
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Value returns a new random value for k in the spec's format.
func (s *Spec) Value(k Key) ([]byte, error) {
	switch s.Format {
	case Hex, Base64:
		b := make([]byte, k.Length)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate %s: %w", k.Name, err)
		}
		if s.Format == Hex {
			return []byte(hex.EncodeToString(b)), nil
		}
		return []byte(base64.StdEncoding.EncodeToString(b)), nil
	default:
		out := make([]byte, k.Length)
		max := big.NewInt(int64(len(alnum)))
		for i := range out {
			n, err := rand.Int(rand.Reader, max) // uniform: no modulo bias
			if err != nil {
				return nil, fmt.Errorf("generate %s: %w", k.Name, err)
			}
			out[i] = alnum[n.Int64()]
		}
		return out, nil
	}
}

// GitKeys returns the keys o's data and stringData set.
func GitKeys(o *unstructured.Unstructured) map[string]bool {
	out := map[string]bool{}
	for _, field := range []string{"data", "stringData"} {
		if m, ok := o.Object[field].(map[string]any); ok {
			for k := range m {
				out[k] = true
			}
		}
	}
	return out
}

// Generated returns the keys tend generates in desired: those its
// annotation lists that git does not set. An invalid annotation gives none.
func Generated(desired *unstructured.Unstructured) []string {
	spec, err := ParseSpec(desired.GetAnnotations())
	if err != nil || spec == nil {
		return nil
	}
	git := GitKeys(desired)
	var out []string
	for _, k := range spec.Keys {
		if !git[k.Name] {
			out = append(out, k.Name)
		}
	}
	return out
}

// Request returns the rotation request that applies to desired: git's, if
// git sets the annotation (it is then applied), else the live Secret's.
func Request(desired, live *unstructured.Unstructured) string {
	if v, ok := desired.GetAnnotations()[AnnotationRotateRequestedAt]; ok {
		return v
	}
	if live != nil {
		return live.GetAnnotations()[AnnotationRotateRequestedAt]
	}
	return ""
}

// RotationPending reports whether a rotation was asked for and not handled
// yet.
func RotationPending(desired, live *unstructured.Unstructured) bool {
	req := Request(desired, live)
	if req == "" {
		return false
	}
	handled := ""
	if live != nil {
		handled = live.GetAnnotations()[AnnotationRotatedAt]
	}
	return req != handled
}

// NeedsValues reports, from a live object whose values may be hashes (the
// watch cache), whether applying desired would write values the live
// Secret lacks: a generated key it does not have, or a pending rotation.
func NeedsValues(desired, live *unstructured.Unstructured) bool {
	keys := Generated(desired)
	if len(keys) == 0 {
		return false
	}
	if live == nil {
		return true
	}
	have := GitKeys(live)
	for _, k := range keys {
		if !have[k] {
			return true
		}
	}
	return RotationPending(desired, live)
}

// Filled says what Fill did, by key name (never values).
type Filled struct {
	// Generated are keys the live Secret did not have.
	Generated []string
	// Rotated are keys that got new values for a rotation request.
	Rotated []string
	// Request is the rotation request handled, if any.
	Request string
	values  [][]byte
}

// Message describes what was generated, for progress and events, e.g.
// "generated key api-key; rotated keys password, token". A nil Filled says "".
func (f *Filled) Message() string {
	if f == nil {
		return ""
	}
	var parts []string
	if len(f.Generated) > 0 {
		parts = append(parts, "generated "+keyList(f.Generated))
	}
	if len(f.Rotated) > 0 {
		parts = append(parts, "rotated "+keyList(f.Rotated))
	}
	if f.Request != "" && len(f.Rotated) == 0 {
		parts = append(parts, "rotation requested at "+f.Request+" named no generated key")
	}
	return strings.Join(parts, "; ")
}

// keyList says "key a" or "keys a, b".
func keyList(keys []string) string {
	if len(keys) == 1 {
		return "key " + keys[0]
	}
	return "keys " + strings.Join(keys, ", ")
}

// Redact replaces every value Fill placed in the Secret, raw or base64, in
// s: for error messages of the apply that carried them. A nil Filled
// returns s.
func (f *Filled) Redact(s string) string {
	if f == nil {
		return s
	}
	for _, v := range f.values {
		if len(v) < 4 {
			continue // too short to replace without mangling the message
		}
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString(v), "(secret value)")
		s = strings.ReplaceAll(s, string(v), "(secret value)")
	}
	return s
}

// Fill sets, in desired, the data of every generated key: the live value
// when the live Secret has one, else a new random value; keys a pending
// rotation names get new values. It records a handled rotation in
// AnnotationRotatedAt and carries the one handled before forward (tend owns
// that annotation, so an apply without it would remove it). live must be
// read from the API server (plain values), nil when the Secret does not
// exist. Keys git sets are left to git.
func Fill(desired, live *unstructured.Unstructured) (*Filled, error) {
	spec, err := ParseSpec(desired.GetAnnotations())
	if err != nil || spec == nil {
		return &Filled{}, err
	}
	liveData := map[string]any{}
	if live != nil {
		if m, ok := live.Object["data"].(map[string]any); ok {
			liveData = m
		}
	}
	f := &Filled{}
	rotate := map[string]bool{}
	if RotationPending(desired, live) {
		f.Request = Request(desired, live)
		named := rotateKeys(desired, live)
		for _, k := range spec.Keys {
			if len(named) == 0 || named[k.Name] {
				rotate[k.Name] = true
			}
		}
	}
	git := GitKeys(desired)
	data, _ := desired.Object["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	for _, k := range spec.Keys {
		if git[k.Name] {
			continue
		}
		if cur, ok := liveData[k.Name].(string); ok && !rotate[k.Name] {
			data[k.Name] = cur
			if raw, err := base64.StdEncoding.DecodeString(cur); err == nil {
				f.values = append(f.values, raw)
			}
			continue
		}
		v, err := spec.Value(k)
		if err != nil {
			return nil, err
		}
		f.values = append(f.values, v)
		data[k.Name] = base64.StdEncoding.EncodeToString(v)
		if _, had := liveData[k.Name]; had {
			f.Rotated = append(f.Rotated, k.Name)
		} else {
			f.Generated = append(f.Generated, k.Name)
		}
	}
	desired.Object["data"] = data
	handled := f.Request
	if handled == "" && live != nil {
		handled = live.GetAnnotations()[AnnotationRotatedAt]
	}
	if handled != "" {
		ann := desired.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationRotatedAt] = handled
		desired.SetAnnotations(ann)
	}
	return f, nil
}

// rotateKeys returns the keys a rotation names; empty means all.
func rotateKeys(desired, live *unstructured.Unstructured) map[string]bool {
	v, ok := desired.GetAnnotations()[AnnotationRotateKeys]
	if !ok && live != nil {
		v = live.GetAnnotations()[AnnotationRotateKeys]
	}
	out := map[string]bool{}
	for _, k := range strings.Split(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out[k] = true
		}
	}
	return out
}

// ReplicateSelector returns the namespace selector of a Secret's
// AnnotationReplicateTo; ok is false when it has none.
func ReplicateSelector(annotations map[string]string) (sel labels.Selector, ok bool, err error) {
	v, has := annotations[AnnotationReplicateTo]
	if !has {
		return nil, false, nil
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, false, fmt.Errorf("annotation %s is empty: give a label selector of namespaces, e.g. \"team=web\" (remove the annotation to stop replicating)", AnnotationReplicateTo)
	}
	sel, err = labels.Parse(v)
	if err != nil {
		return nil, false, fmt.Errorf("annotation %s=%q is not a label selector: %w", AnnotationReplicateTo, v, err)
	}
	if sel.Empty() {
		return nil, false, errors.New("annotation " + AnnotationReplicateTo + " selects every namespace; name a label, e.g. \"team=web\"")
	}
	return sel, true, nil
}

// Prepare adds to a Secret tend is about to apply the markers of its
// annotations (LabelReplicate on a replicated Secret) and checks them. It
// does not generate: see Fill.
func Prepare(o *unstructured.Unstructured) error {
	if _, err := ParseSpec(o.GetAnnotations()); err != nil {
		return err
	}
	_, replicate, err := ReplicateSelector(o.GetAnnotations())
	if err != nil {
		return err
	}
	if replicate {
		l := o.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[LabelReplicate] = ReplicateSource
		o.SetLabels(l)
	}
	return nil
}

// SortedKeys returns m's keys sorted.
func SortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
