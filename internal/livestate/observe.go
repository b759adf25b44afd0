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
	var stored *unstructured.Unstructured
	if item, ok, _ := k.informer.GetIndexer().GetByKey(key); ok {
		stored = item.(*unstructured.Unstructured)
	}
	if stored != nil && !newerResourceVersion(cp, stored) {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if prev := k.observed[key]; prev != nil && newerResourceVersion(prev, cp) {
		return
	}
	k.observed[key] = cp
}

// newest returns the newer of stored and the observed object for key, and
// forgets the observed one once the store has caught up with it.
func (k *kind) newest(key string, stored *unstructured.Unstructured) *unstructured.Unstructured {
	k.mu.Lock()
	defer k.mu.Unlock()
	o := k.observed[key]
	if o == nil {
		return stored
	}
	if stored != nil && !newerResourceVersion(o, stored) {
		delete(k.observed, key)
		return stored
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
	ra, errA := strconv.ParseUint(a.GetResourceVersion(), 10, 64)
	rb, errB := strconv.ParseUint(b.GetResourceVersion(), 10, 64)
	return errA == nil && errB == nil && ra > rb
}
