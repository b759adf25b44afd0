package apply

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// ObjectRef identifies an object independent of its API version.
type ObjectRef struct {
	Group, Kind, Namespace, Name string
}

// RefOf returns the reference of o.
func RefOf(o *unstructured.Unstructured) ObjectRef {
	gvk := o.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
}

func (r ObjectRef) String() string {
	kind := r.Kind
	if r.Group != "" {
		kind = r.Group + "/" + r.Kind
	}
	if r.Namespace != "" {
		return kind + " " + r.Namespace + "/" + r.Name
	}
	return kind + " " + r.Name
}

// GroupKind returns the reference's group and kind.
func (r ObjectRef) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: r.Group, Kind: r.Kind}
}

// Entry is what the inventory remembers of one applied object.
type Entry struct {
	// Version is the API version the object was applied with.
	Version string
	// Desired is a hash of the object tend last applied.
	Desired string
	// Fingerprint is the live object's ownership fingerprint right after
	// that apply (see livestate.Fingerprint).
	Fingerprint string
}

// AdoptedDesired is the Desired of an entry tend did not apply but took
// over from the tool that managed the App before (Argo CD's or Flux's own
// list of what an Application or Kustomization applied): the object is
// applied at the next sync, and pruned if it left git, though it does not
// carry tend's owner annotation yet.
const AdoptedDesired = "adopted"

// Adopted says whether e was taken over and not applied by tend yet.
func (e Entry) Adopted() bool { return e.Desired == AdoptedDesired }

// Inventory is what one App applied: every object it owns, with what is
// needed to know, without asking the apiserver, that nothing changed.
type Inventory struct {
	// Revision is the source revision of the last sync that changed the
	// inventory.
	Revision string
	Entries  map[ObjectRef]Entry

	// stored is the version of the stored copy this inventory was loaded
	// from or saved as ("" when none is known to exist): a store writes
	// only over that version, so two writers never silently lose each
	// other's entries, and a new inventory is created without a failed
	// update first.
	stored string
}

// NewInventory returns an empty inventory.
func NewInventory() *Inventory { return &Inventory{Entries: map[ObjectRef]Entry{}} }

// Clone returns a deep copy.
func (inv *Inventory) Clone() *Inventory {
	out := &Inventory{Revision: inv.Revision, Entries: make(map[ObjectRef]Entry, len(inv.Entries)), stored: inv.stored}
	for k, v := range inv.Entries {
		out.Entries[k] = v
	}
	return out
}

// Equal reports whether two inventories hold the same entries and revision.
func (inv *Inventory) Equal(o *Inventory) bool {
	if inv.Revision != o.Revision || len(inv.Entries) != len(o.Entries) {
		return false
	}
	for k, v := range inv.Entries {
		if o.Entries[k] != v {
			return false
		}
	}
	return true
}

// Refs returns the inventory's object references, sorted.
func (inv *Inventory) Refs() []ObjectRef {
	out := make([]ObjectRef, 0, len(inv.Entries))
	for r := range inv.Entries {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// InventoryFormat is the format of the inventories this tend writes, and
// the newest it reads. The first line of every format, inside the gzip
// stream, is "tend-inventory v<format>": a tend that meets a newer format
// refuses the inventory with an InventoryFormatError instead of misreading
// it, so a rolled-back tend fails the App's sync (and prunes nothing) until
// it is upgraded again. A release starts reading a new format before a
// later one starts writing it (docs/upgrade.md).
const InventoryFormat = 1

// inventoryHeader, followed by the format number, is the first line of an
// encoded inventory.
const inventoryHeader = "tend-inventory v"

// InventoryFormatError is returned for an inventory written by a newer tend
// in a format this one cannot read.
type InventoryFormatError struct {
	// Where names the inventory, e.g. "inventory Secret team-a/tend-inventory-web".
	Where string
	// Format is the stored inventory's format.
	Format int
}

func (e *InventoryFormatError) Error() string {
	return fmt.Sprintf("%s has format %d; this tend reads up to %d: upgrade tend", e.Where, e.Format, InventoryFormat)
}

// gzipWriter is the one gzip writer Encode uses, guarded by gzipMu. A
// writer holds about 800 KiB of compressor state: a new one per Encode made
// a cold sync allocate that per App, and a sync.Pool kept one per
// concurrent encoder (several MiB, live). Encoding an inventory takes tens
// of microseconds, so sharing one costs no noticeable waiting.
var (
	gzipMu     sync.Mutex
	gzipWriter = gzip.NewWriter(io.Discard)
)

// Encode writes the inventory as gzipped lines:
// group|kind|namespace|name|version|desired|fingerprint.
func (inv *Inventory) Encode() ([]byte, error) {
	var buf bytes.Buffer
	gzipMu.Lock()
	defer gzipMu.Unlock()
	zw := gzipWriter
	zw.Reset(&buf)
	w := bufio.NewWriter(zw)
	fmt.Fprintf(w, "%s%d\nrevision %s\n", inventoryHeader, InventoryFormat, inv.Revision)
	for _, r := range inv.Refs() {
		e := inv.Entries[r]
		fmt.Fprintf(w, "%s|%s|%s|%s|%s|%s|%s\n", r.Group, r.Kind, r.Namespace, r.Name, e.Version, e.Desired, e.Fingerprint)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeInventory parses what Encode wrote, in this or an earlier format.
// An inventory in a newer format gives an *InventoryFormatError.
func DecodeInventory(b []byte) (*Inventory, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if n := inventoryFormatOf(lines[0]); n > InventoryFormat {
		return nil, &InventoryFormatError{Where: "inventory", Format: n}
	}
	if len(lines) < 2 || lines[0] != inventoryHeader+"1" || !strings.HasPrefix(lines[1], "revision ") {
		return nil, fmt.Errorf("inventory: unknown format %q", lines[0])
	}
	inv := NewInventory()
	inv.Revision = strings.TrimPrefix(lines[1], "revision ")
	for i, l := range lines[2:] {
		f := strings.Split(l, "|")
		if len(f) != 7 {
			return nil, fmt.Errorf("inventory: line %d: want 7 fields, got %d", i+3, len(f))
		}
		inv.Entries[ObjectRef{Group: f[0], Kind: f[1], Namespace: f[2], Name: f[3]}] = Entry{Version: f[4], Desired: f[5], Fingerprint: f[6]}
	}
	return inv, nil
}

// inventoryFormatOf returns the format a header line names, 0 when it
// names none. Later formats may add words after the number.
func inventoryFormatOf(header string) int {
	v, ok := strings.CutPrefix(header, inventoryHeader)
	if !ok {
		return 0
	}
	v, _, _ = strings.Cut(v, " ")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// InventoryStore loads and saves App inventories.
type InventoryStore interface {
	Load(ctx context.Context, app AppRef) (*Inventory, error)
	// Save stores inv over the stored version it was loaded from (or
	// creates it) and records the new version in inv; it returns an
	// error matching ErrInventoryChanged when another writer got there
	// first.
	Save(ctx context.Context, app AppRef, inv *Inventory) error
	Delete(ctx context.Context, app AppRef) error
}

// ErrInventoryChanged is returned by Save when the stored inventory is not
// the one the caller read: another writer (`tend sync`, another
// controller) saved it in between.
var ErrInventoryChanged = errors.New("the inventory was changed by another writer")

// SecretStore keeps each App's inventory in a Secret of type
// tend.dev/inventory named "tend-inventory-<app>" in the App's namespace,
// its key "inventory" holding what Encode writes (the format is its first
// line, see InventoryFormat). A Secret, because the hashes of Secret
// objects it holds are not for every reader of ConfigMaps.
type SecretStore struct {
	Client kubernetes.Interface
}

var _ InventoryStore = (*SecretStore)(nil)

const inventorySecretType = corev1.SecretType("tend.dev/inventory")

func inventoryName(app AppRef) string { return "tend-inventory-" + app.Name }

// Load returns the App's inventory, empty when it has none yet.
func (s *SecretStore) Load(ctx context.Context, app AppRef) (*Inventory, error) {
	sec, err := s.Client.CoreV1().Secrets(app.Namespace).Get(ctx, inventoryName(app), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return NewInventory(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("load inventory of %s: %w", app, err)
	}
	inv, err := DecodeInventory(sec.Data["inventory"])
	var newer *InventoryFormatError
	if errors.As(err, &newer) {
		newer.Where = "inventory Secret " + app.Namespace + "/" + sec.Name
		return nil, newer
	}
	if err != nil {
		return nil, fmt.Errorf("inventory Secret %s/%s: %w", app.Namespace, sec.Name, err)
	}
	inv.stored = sec.ResourceVersion
	return inv, nil
}

// Save creates the inventory Secret, or updates the version inv was loaded
// from or last saved as.
func (s *SecretStore) Save(ctx context.Context, app AppRef, inv *Inventory) error {
	data, err := inv.Encode()
	if err != nil {
		return err
	}
	sec := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: inventoryName(app), Namespace: app.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "tend"},
			Annotations: map[string]string{AnnotationOwner: app.String()},
		},
		Type: inventorySecretType,
		Data: map[string][]byte{"inventory": data},
	}
	var out *corev1.Secret
	if inv.stored == "" {
		out, err = s.Client.CoreV1().Secrets(app.Namespace).Create(ctx, sec, metav1.CreateOptions{FieldManager: FieldManager})
	} else {
		sec.ResourceVersion = inv.stored
		out, err = s.Client.CoreV1().Secrets(app.Namespace).Update(ctx, sec, metav1.UpdateOptions{FieldManager: FieldManager})
	}
	switch {
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err), apierrors.IsNotFound(err) && inv.stored != "":
		return fmt.Errorf("save inventory of %s: %w", app, ErrInventoryChanged)
	case err != nil:
		return fmt.Errorf("save inventory of %s: %w", app, err)
	}
	inv.stored = out.ResourceVersion
	return nil
}

// Delete removes the App's inventory.
func (s *SecretStore) Delete(ctx context.Context, app AppRef) error {
	err := s.Client.CoreV1().Secrets(app.Namespace).Delete(ctx, inventoryName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete inventory of %s: %w", app, err)
	}
	return nil
}
