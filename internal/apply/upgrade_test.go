package apply_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/testenv"
)

// The inventory Secrets under testdata/upgrade/v<format> were written by
// the tend that introduced that format and are kept forever: a tend that
// can no longer read one of them fails the tests below, and an upgrade to
// it would lose the Apps' inventories. Never edit or regenerate them; a new
// format adds a new directory (docs/upgrade.md).

var update = flag.Bool("update", false, "write the inventory fixtures of the current format that are missing from testdata/upgrade (needs the cluster); existing fixtures are never overwritten")

// fixtureHeader starts every fixture file.
const fixtureHeader = `# Written by tend (inventory format %d) through SecretStore.Save; only the
# namespace the test ran in was replaced by team-a.
#
# KEPT FOREVER: every later tend must read this file (internal/apply
# upgrade_test.go). Never edit or regenerate it; add a directory for a new
# format instead. See docs/upgrade.md.
`

// inventoryFixture is one stored inventory and what it must read as.
type inventoryFixture struct {
	file string // under testdata/upgrade
	app  string // in namespace team-a
	want *apply.Inventory
}

func inventory(revision string, entries map[apply.ObjectRef]apply.Entry) *apply.Inventory {
	inv := apply.NewInventory()
	inv.Revision = revision
	for r, e := range entries {
		inv.Entries[r] = e
	}
	return inv
}

// v1Inventories are the inventories of format 1: an App synced from git
// (namespaced and cluster-scoped objects, core and other groups, a CRD and
// one of its objects, an object taken over from Argo CD and not applied
// yet), an App seeded by a takeover before its first sync (no revision),
// and an App whose objects were all pruned (an OCI revision, no entries).
var v1Inventories = []inventoryFixture{
	{file: "v1/inventory-web.yaml", app: "web", want: inventory("03e404fd168941cfed98f46654680130dd85968b", map[apply.ObjectRef]apply.Entry{
		{Kind: "Namespace", Name: "web"}:                                                               {Version: "v1", Desired: "dd75a9d6fb309c4399fe425cd5f90ff9", Fingerprint: "8b1756447aa794688c1cb24428439862d279ddf9228b29ba06b54c1be7b42a09"},
		{Kind: "ConfigMap", Namespace: "web", Name: "web-config-7h2k9"}:                                {Version: "v1", Desired: "355521816b3689f42cd2e655985df711", Fingerprint: "65654edcd70e56d8ecf0b10a23d4dc75521311eeb9686815023513b4666cd5be"},
		{Kind: "Secret", Namespace: "web", Name: "web-db"}:                                             {Version: "v1", Desired: "4bd325e8ef3ce26f721f5e261c68f2c4", Fingerprint: "ffa234550126b8e4d93b95dda5b8dee5c8d363c0ff553b24918753be2e071df9"},
		{Kind: "Service", Namespace: "web", Name: "web"}:                                               {Version: "v1", Desired: "b733813d42ac0b351eb522a9688b99fc", Fingerprint: "ae5e7fb7b15ce9b3ba03b7f4144c488a65903b326b037b39e5f1154761c52c55"},
		{Group: "apps", Kind: "Deployment", Namespace: "web", Name: "web"}:                             {Version: "v1", Desired: "23b7442f0d2c2c326292c8ee2c2d8e10", Fingerprint: "0558498504375c2c0d3db4aded04bd94b5fc124d994e568c14bcc52c740216af"},
		{Group: "networking.k8s.io", Kind: "Ingress", Namespace: "web", Name: "web"}:                   {Version: "v1", Desired: "ca46a3f7dabfcc476e496bf8b5100d60", Fingerprint: "647e9df8ed1316318322578d12fdc28b526fb6d8d0c6b6412f06a1ed91adaccd"},
		{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition", Name: "widgets.example.com"}: {Version: "v1", Desired: "5fea727ee9bce34d3682a8435f568174", Fingerprint: "78e9f1ee593a1c24b66a45e76662aaae1dee3429380e0afbafd01ef6fe2732fd"},
		{Group: "example.com", Kind: "Widget", Namespace: "web", Name: "blue"}:                         {Version: "v1beta1", Desired: "c7d0ebd27095b5521f3ffc0738f0031b", Fingerprint: "4733840ccf06d8c3242552627dff852d5fddcbc435775fcfcbcca6d0cc81f788"},
		{Group: "batch", Kind: "CronJob", Namespace: "web", Name: "web-backup"}:                        {Version: "v1", Desired: "343a15f8949d659306ebf7fc17d345b0", Fingerprint: "5dd0f4f34aeae95b97c404d194b13e60c7ccd741c4172227f424e21587aed867"},
		{Kind: "ServiceAccount", Namespace: "web", Name: "web"}:                                        {Version: "v1", Desired: apply.AdoptedDesired},
	})},
	{file: "v1/inventory-adopted.yaml", app: "guestbook", want: inventory("", map[apply.ObjectRef]apply.Entry{
		{Group: "apps", Kind: "Deployment", Namespace: "guestbook", Name: "guestbook-ui"}: {Version: "v1", Desired: apply.AdoptedDesired},
		{Kind: "Service", Namespace: "guestbook", Name: "guestbook-ui"}:                   {Version: "v1", Desired: apply.AdoptedDesired},
	})},
	{file: "v1/inventory-emptied.yaml", app: "retired", want: inventory("sha256:7e887edb52b723997076a9f5a72bef4473227a303cbc2cf5118e7be261f41c13", nil)},
}

// readInventoryFixture decodes a fixture into a Secret; unknown fields
// fail.
func readInventoryFixture(t *testing.T, file string) (*corev1.Secret, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "upgrade", file))
	if err != nil {
		t.Fatalf("%v (fixtures of a released format are kept forever)", err)
	}
	sec := &corev1.Secret{}
	if err := yaml.UnmarshalStrict(raw, sec); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return sec, raw
}

// TestUpgradeReadsInventoryV1 decodes the inventory Secrets tend wrote in
// format 1 into the inventories they hold.
func TestUpgradeReadsInventoryV1(t *testing.T) {
	for _, fx := range v1Inventories {
		t.Run(fx.file, func(t *testing.T) {
			sec, raw := readInventoryFixture(t, fx.file)
			if !bytes.HasPrefix(raw, []byte(fmt.Sprintf(fixtureHeader, 1))) {
				t.Errorf("%s lost its header saying it is kept forever", fx.file)
			}
			if got, want := sec.Name, "tend-inventory-"+fx.app; got != want {
				t.Errorf("Secret name = %q, want %q", got, want)
			}
			if got, want := sec.Type, corev1.SecretType("tend.dev/inventory"); got != want {
				t.Errorf("Secret type = %q, want %q", got, want)
			}
			if got, want := sec.Annotations[apply.AnnotationOwner], "team-a/"+fx.app; got != want {
				t.Errorf("owner annotation = %q, want %q", got, want)
			}
			inv, err := apply.DecodeInventory(sec.Data["inventory"])
			if err != nil {
				t.Fatalf("the current tend cannot read an inventory tend wrote in format 1: %v", err)
			}
			assertInventory(t, inv, fx.want)
		})
	}
}

func assertInventory(t *testing.T, got, want *apply.Inventory) {
	t.Helper()
	if got.Revision != want.Revision {
		t.Errorf("revision = %q, want %q", got.Revision, want.Revision)
	}
	for _, r := range want.Refs() {
		if g, ok := got.Entries[r]; !ok {
			t.Errorf("entry %s missing", r)
		} else if g != want.Entries[r] {
			t.Errorf("entry %s = %+v, want %+v", r, g, want.Entries[r])
		}
	}
	for _, r := range got.Refs() {
		if _, ok := want.Entries[r]; !ok {
			t.Errorf("unexpected entry %s = %+v", r, got.Entries[r])
		}
	}
}

// TestUpgradeLoadsAndSavesInventoryV1: the current tend loads the format 1
// inventory Secrets from the cluster as an upgraded controller finds them,
// and saves over them.
func TestUpgradeLoadsAndSavesInventoryV1(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	store := &apply.SecretStore{Client: env.Clientset}
	for _, fx := range v1Inventories {
		t.Run(fx.file, func(t *testing.T) {
			sec, _ := readInventoryFixture(t, fx.file)
			sec.Namespace = env.Namespace
			if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			app := apply.AppRef{Namespace: env.Namespace, Name: fx.app}
			inv, err := store.Load(ctx, app)
			if err != nil {
				t.Fatalf("load a format 1 inventory: %v", err)
			}
			assertInventory(t, inv, fx.want)

			next := inv.Clone()
			next.Revision = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
			added := apply.ObjectRef{Kind: "ConfigMap", Namespace: "web", Name: "added"}
			next.Entries[added] = apply.Entry{Version: "v1", Desired: "00112233445566778899aabbccddeeff"}
			if err := store.Save(ctx, app, next); err != nil {
				t.Fatalf("save over a format 1 inventory: %v", err)
			}
			again, err := store.Load(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			assertInventory(t, again, next)
		})
	}
}

// TestInventoryOfNewerFormatRefused: an inventory a newer tend wrote in a
// format this one does not know is refused with an error that says so,
// and a sync of its App leaves it as it is (a rolled-back tend does not
// overwrite what the newer one recorded).
func TestInventoryOfNewerFormatRefused(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, "tend-inventory v%d\n{\"revision\": \"abc\", \"entries\": []}\n", apply.InventoryFormat+1)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	_, err := apply.DecodeInventory(data)
	var fe *apply.InventoryFormatError
	if !errors.As(err, &fe) || fe.Format != apply.InventoryFormat+1 {
		t.Fatalf("decode format %d: error %v, want an InventoryFormatError of format %d", apply.InventoryFormat+1, err, apply.InventoryFormat+1)
	}

	f := newFixture(t)
	ctx := context.Background()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tend-inventory-" + f.app.Name, Namespace: f.env.Namespace},
		Type:       "tend.dev/inventory",
		Data:       map[string][]byte{"inventory": data},
	}
	if _, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("inventory Secret %s/tend-inventory-%s has format %d; this tend reads up to %d: upgrade tend",
		f.env.Namespace, f.app.Name, apply.InventoryFormat+1, apply.InventoryFormat)
	if _, err := f.engine.Inventory.Load(ctx, f.app); err == nil || err.Error() != want {
		t.Errorf("load: error %v, want %q", err, want)
	}
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("a", "1", "")), Prune: true}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("sync: error %v, want one containing %q", err, want)
	}
	stored, err := f.env.Clientset.CoreV1().Secrets(f.env.Namespace).Get(ctx, sec.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Data["inventory"], data) {
		t.Errorf("the sync rewrote the newer tend's inventory")
	}
}

// TestUpgradeWriteInventoryFixtures writes, with -update, the fixtures of
// the current format that do not exist yet, through SecretStore.Save.
func TestUpgradeWriteInventoryFixtures(t *testing.T) {
	if !*update {
		t.Skip("run with -update to write missing fixtures of the current inventory format")
	}
	env := testenv.New(t)
	ctx := context.Background()
	store := &apply.SecretStore{Client: env.Clientset}
	for _, fx := range v1Inventories {
		path := filepath.Join("testdata", "upgrade", fx.file)
		if !strings.HasPrefix(fx.file, fmt.Sprintf("v%d/", apply.InventoryFormat)) {
			continue
		}
		if _, err := os.Stat(path); err == nil {
			t.Logf("%s exists: kept as it is", path)
			continue
		}
		app := apply.AppRef{Namespace: env.Namespace, Name: fx.app}
		if err := store.Save(ctx, app, fx.want.Clone()); err != nil {
			t.Fatal(err)
		}
		sec, err := env.Clientset.CoreV1().Secrets(env.Namespace).Get(ctx, "tend-inventory-"+fx.app, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := &corev1.Secret{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{
				Name: sec.Name, Namespace: "team-a",
				Labels: sec.Labels, Annotations: map[string]string{},
			},
			Type: sec.Type,
			Data: sec.Data,
		}
		for k, v := range sec.Annotations {
			out.Annotations[k] = strings.ReplaceAll(v, env.Namespace, "team-a")
		}
		b, err := yaml.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("  creationTimestamp: null\n"), nil, 1)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append([]byte(fmt.Sprintf(fixtureHeader, apply.InventoryFormat)), b...), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}
