package apply_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/testenv"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestInventoryWrittenOnceAndNotRead: a caller that holds the inventory
// (the controller) passes it in; a sync then reads no inventory, a new
// App's inventory is created with one request (no failed update first),
// and a changed one is written with one update.
func TestInventoryWrittenOnceAndNotRead(t *testing.T) {
	env := testenv.New(t)
	counter := &requestCounter{verbs: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(counter.wrap)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := newEngineFixture(t, env, &apply.SecretStore{Client: cs})
	f.counter = counter // count the store's requests only
	ctx := context.Background()
	// Warm the watch cache for ConfigMaps with another App.
	if _, err := f.sync(t, apply.Request{App: apply.AppRef{Namespace: f.env.Namespace, Name: "other"}, Objects: f.objs(t, configMap("x", "1", ""))}); err != nil {
		t.Fatal(err)
	}

	inv, err := f.engine.Inventory.Load(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}
	f.counter.reset()
	res, err := f.sync(t, apply.Request{Inventory: inv, Objects: f.objs(t, configMap("a", "1", ""))})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.verbs("GET", "PUT", "POST"); got != [3]int{0, 0, 1} {
		// POST: the inventory Secret (the objects go by PATCH through
		// the engine's own client).
		t.Errorf("first sync of an App: GET, PUT, POST = %v, want one POST (the inventory) and nothing else", got)
	}

	f.counter.reset()
	res, err = f.sync(t, apply.Request{Inventory: res.Inventory, Objects: f.objs(t, configMap("a", "2", ""))})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.verbs("GET", "PUT", "POST"); got != [3]int{0, 1, 0} {
		t.Errorf("a changed object: GET, PUT, POST = %v, want one PUT (the inventory)", got)
	}
	stored, err := f.engine.Inventory.Load(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Equal(res.Inventory) {
		t.Errorf("stored inventory %v, want what the sync returned %v", stored.Entries, res.Inventory.Entries)
	}
}

// TestInventoryMergedWithAnotherWriter: when another writer (`tend sync`)
// saved the inventory after the controller last read it, the controller's
// sync keeps that writer's entries and its own; nothing is lost.
func TestInventoryMergedWithAnotherWriter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("a", "1", ""), configMap("b", "1", ""))})
	if err != nil {
		t.Fatal(err)
	}
	held := res.Inventory // what the controller holds from now on

	// Another writer adds c and drops b from the inventory (b stays in
	// the cluster: prune is off).
	other := newEngineFixture(t, f.env, f.engine.Inventory)
	if _, err := other.sync(t, apply.Request{Objects: other.objs(t, configMap("a", "1", ""), configMap("c", "1", ""))}); err != nil {
		t.Fatal(err)
	}
	theirs, err := f.engine.Inventory.Load(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}

	// The controller, with its old inventory, changes a.
	res, err = f.sync(t, apply.Request{Inventory: held, Objects: f.objs(t, configMap("a", "2", ""), configMap("b", "1", ""))})
	if err != nil {
		t.Fatalf("sync over an inventory another writer changed: %v", err)
	}
	stored, err := f.engine.Inventory.Load(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(stored), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("stored inventory holds %v, want %v (a and b from this sync, c from the other writer)", got, want)
	}
	refA := apply.ObjectRef{Kind: "ConfigMap", Namespace: f.env.Namespace, Name: "a"}
	if stored.Entries[refA] == theirs.Entries[refA] {
		t.Errorf("entry of a is the other writer's; want this sync's (it applied a new value)")
	}
	if !stored.Equal(res.Inventory) {
		t.Errorf("the sync returned %v, but the store holds %v", res.Inventory.Entries, stored.Entries)
	}
	// And the merged inventory is the base of the next save.
	if _, err := f.sync(t, apply.Request{Inventory: res.Inventory, Objects: f.objs(t, configMap("a", "3", ""), configMap("c", "1", ""))}); err != nil {
		t.Fatalf("sync after the merge: %v", err)
	}
}

func names(inv *apply.Inventory) []string {
	var out []string
	for _, r := range inv.Refs() {
		out = append(out, r.Name)
	}
	return out
}

// verbs returns how many GET (not watches), PUT and POST requests the
// engine sent since the counter was reset.
func (f *fixture) verbs(vs ...string) [3]int {
	f.counter.mu.Lock()
	defer f.counter.mu.Unlock()
	var out [3]int
	for i, v := range vs {
		out[i] = f.counter.verbs[v]
	}
	return out
}
