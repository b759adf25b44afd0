package livestate

import (
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Observe records obj, typically the response to tend's own apply, so that
// Get and List return it (or something newer) at once instead of after the
// watch event arrives. It does not notify handlers: the watch event still
// does. obj is copied and trimmed like a watched object. Objects of kinds
// that are not watched are ignored.
//
// Until the watch catches up, Get returns whichever of the observed and the
// watched object has the higher resourceVersion. resourceVersions are opaque;
// they are compared as integers when both parse as one, and otherwise the
// watched object wins.
func (c *Cache) Observe(obj *unstructured.Unstructured) {
	if obj == nil {
		return
	}
	gvk := obj.GroupVersionKind()
	k, _ := c.lookup(gvk)
	if k == nil {
		return
	}
	cp := obj.DeepCopy()
	c.trim(gvk, cp)
	key := k.key(cp.GetNamespace(), cp.GetName())
	if item, ok, _ := k.informer.GetIndexer().GetByKey(key); ok {
		if p, ok := item.(*packed); ok && !newerVersion(cp.GetResourceVersion(), p.resourceVersion) {
			return
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if prev := k.observed[key]; prev != nil && newerResourceVersion(prev, cp) {
		return
	}
	k.observed[key] = cp
}

// newerObserved returns the observed object for key if it is newer than
// stored (or nothing is stored), and forgets it once the store has caught
// up with it.
func (k *kind) newerObserved(key string, stored *packed) *unstructured.Unstructured {
	k.mu.Lock()
	defer k.mu.Unlock()
	o := k.observed[key]
	if o == nil {
		return nil
	}
	if stored != nil && !newerVersion(o.GetResourceVersion(), stored.resourceVersion) {
		delete(k.observed, key)
		return nil
	}
	return o
}

// forget drops the observed object for seen's key unless it is newer than
// seen, which the watch just delivered.
func (k *kind) forget(seen *unstructured.Unstructured) {
	key := k.key(seen.GetNamespace(), seen.GetName())
	k.mu.Lock()
	defer k.mu.Unlock()
	if o := k.observed[key]; o != nil && !newerResourceVersion(o, seen) {
		delete(k.observed, key)
	}
}

// newerResourceVersion reports whether a's resourceVersion is known to be
// higher than b's.
func newerResourceVersion(a, b *unstructured.Unstructured) bool {
	return newerVersion(a.GetResourceVersion(), b.GetResourceVersion())
}

// newerVersion reports whether resourceVersion a is known to be higher
// than b.
func newerVersion(a, b string) bool {
	ra, errA := strconv.ParseUint(a, 10, 64)
	rb, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && ra > rb
}
