// Package objstatus writes the status of tend's objects for their
// reconcilers, one way for all of them: a reconcile computes the status on
// its copy of the object, and Writer.Write stores it when it changed. A
// conflict (someone wrote the object since the reconcile read it) does not
// lose what the reconcile found: the changes it made are applied again to
// the latest version, field by field and condition by condition. And when
// an object becomes Stalled (a problem only its user can fix) the Writer
// records one Warning event saying so, on the write that made it Stalled,
// so an object stalled for days has one event, not one per reconcile.
//
// It lives outside package controller because the Notifier reconciler
// (package notify, which controller imports) writes status the same way.
package objstatus

import (
	"context"
	"fmt"
	"hash/fnv"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConditionStalled is the condition type a Writer announces.
const ConditionStalled = "Stalled"

// EventRecorder records Kubernetes events (events.k8s.io); a manager's
// GetEventRecorder is one.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Writer writes status subresources. The zero value but Client works.
type Writer struct {
	// Client reads (possibly from a cache) and writes the objects.
	Client client.Client
	// Recorder, when set, records a Warning event when a write makes the
	// object Stalled or changes the Stalled reason or message.
	Recorder EventRecorder
	// Action of those events, e.g. "Fetch" (default "Reconcile").
	Action string
	// Attempts bounds the writes tried when they conflict (default 5).
	Attempts int
}

// Write stores obj's status when it differs from before's, before being
// obj as the reconcile read it. It reports whether it wrote.
//
// On a conflict it reads the object again and applies to that version the
// changes from before to obj: status fields the reconcile changed take
// obj's values, conditions it changed (by type) are set or removed, and
// everything else keeps the latest values (another writer's counters, a
// condition only it sets). It waits a little between attempts, as a cached
// read can lag behind the write that conflicted. After Attempts conflicts
// it returns the conflict: the caller returns it as the reconcile's error,
// so the object is reconciled again after a backoff and its status
// recomputed; what a reconcile found is never silently dropped.
//
// After a write obj is the object as written and before the object the
// write replaced. An object deleted meanwhile is not an error.
func (w Writer) Write(ctx context.Context, obj, before client.Object) (bool, error) {
	mine, err := statusOf(obj)
	if err != nil {
		return false, err
	}
	base, err := statusOf(before)
	if err != nil {
		return false, err
	}
	if equality.Semantic.DeepEqual(mine, base) {
		return false, nil
	}
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	key := client.ObjectKeyFromObject(obj)
	what := kindOf(obj) + " " + key.String()
	target, replaced := obj, before
	for attempt := 1; ; attempt++ {
		err := w.Client.Status().Update(ctx, target)
		if err == nil {
			break
		}
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if !apierrors.IsConflict(err) || attempt >= attempts {
			return false, fmt.Errorf("write status of %s: %w", what, err)
		}
		latest := newLike(obj)
		for read := 1; ; read++ {
			if err := w.Client.Get(ctx, key, latest); err != nil {
				if apierrors.IsNotFound(err) {
					return false, nil
				}
				return false, fmt.Errorf("read %s to write its status again: %w", what, err)
			}
			if latest.GetResourceVersion() != target.GetResourceVersion() || read == 2 {
				break
			}
			// A cached read that has not seen the conflicting write yet.
			if err := pause(ctx, attempt); err != nil {
				return false, fmt.Errorf("write status of %s: %w", what, err)
			}
		}
		if target, err = rebased(latest, base, mine); err != nil {
			return false, fmt.Errorf("write status of %s: %w", what, err)
		}
		replaced = latest
	}
	if target != obj {
		reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(target).Elem())
	}
	if replaced != before {
		reflect.ValueOf(before).Elem().Set(reflect.ValueOf(replaced).Elem())
	}
	w.announce(obj, before)
	return true, nil
}

// announce records the event for a write that made obj Stalled, or
// changed why it is.
func (w Writer) announce(obj, before client.Object) {
	if w.Recorder == nil {
		return
	}
	now := conditionOf(obj, ConditionStalled)
	if now == nil || now["status"] != "True" {
		return
	}
	if was := conditionOf(before, ConditionStalled); was != nil && was["status"] == "True" &&
		was["reason"] == now["reason"] && was["message"] == now["message"] {
		return
	}
	action := w.Action
	if action == "" {
		action = "Reconcile"
	}
	reason, _ := now["reason"].(string)
	msg, _ := now["message"].(string)
	w.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, action, "%s", msg)
}

func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt) * 50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rebased returns latest with the status changes from base to mine.
func rebased(latest client.Object, base, mine map[string]any) (client.Object, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(latest)
	if err != nil {
		return nil, err
	}
	theirs, _ := u["status"].(map[string]any)
	u["status"] = merge(theirs, base, mine)
	out := newLike(latest)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, out); err != nil {
		return nil, err
	}
	return out, nil
}

// merge applies the changes from base to mine to theirs: a three-way
// merge of status maps in which the conditions list merges by type.
func merge(theirs, base, mine map[string]any) map[string]any {
	out := make(map[string]any, len(theirs)+len(mine))
	for k, v := range theirs {
		out[k] = v
	}
	for k := range union(base, mine) {
		b, inBase := base[k]
		m, inMine := mine[k]
		if inBase == inMine && equality.Semantic.DeepEqual(b, m) {
			continue // the reconcile left it alone
		}
		switch {
		case k == "conditions":
			out[k] = mergeConditions(asList(out[k]), asList(b), asList(m))
		case inMine:
			out[k] = m
		default:
			delete(out, k)
		}
	}
	return out
}

// mergeConditions applies the changes from base to mine, by condition
// type, to theirs.
func mergeConditions(theirs, base, mine []any) []any {
	b, m := byType(base), byType(mine)
	out := make([]any, 0, len(theirs)+len(mine))
	done := map[string]bool{}
	for _, c := range theirs {
		t := typeOf(c)
		done[t] = true
		mc, inMine := m[t]
		bc, inBase := b[t]
		switch {
		case inMine == inBase && equality.Semantic.DeepEqual(mc, bc):
			out = append(out, c)
		case inMine:
			out = append(out, mc)
		}
		// Removed by the reconcile: left out.
	}
	for _, c := range mine {
		t := typeOf(c)
		if done[t] {
			continue
		}
		if bc, inBase := b[t]; !inBase || !equality.Semantic.DeepEqual(bc, c) {
			out = append(out, c) // added or changed by the reconcile
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func union(a, b map[string]any) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func byType(conds []any) map[string]any {
	out := make(map[string]any, len(conds))
	for _, c := range conds {
		out[typeOf(c)] = c
	}
	return out
}

func typeOf(c any) string {
	m, _ := c.(map[string]any)
	t, _ := m["type"].(string)
	return t
}

// statusOf is obj's status as the apiserver would store it.
func statusOf(obj client.Object) (map[string]any, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", kindOf(obj), err)
	}
	st, _ := u["status"].(map[string]any)
	return st, nil
}

// conditionOf returns the condition typ of obj's status, or nil.
func conditionOf(obj client.Object, typ string) map[string]any {
	st, err := statusOf(obj)
	if err != nil {
		return nil
	}
	for _, c := range asList(st["conditions"]) {
		if typeOf(c) == typ {
			m, _ := c.(map[string]any)
			return m
		}
	}
	return nil
}

// newLike returns a new, empty object of obj's type.
func newLike(obj client.Object) client.Object {
	return reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
}

func kindOf(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return reflect.TypeOf(obj).Elem().Name()
}

// DistinctNotes wraps r so that events differing in their note are not
// merged. The events library merges the events of one object, type,
// reason and action into a series that keeps its first note, so a failure
// that changed would go on showing the first message. Each note gets an
// action of its own ("Sync#1f2e3d4c"); repeats of one note still form a
// series.
func DistinctNotes(r EventRecorder) EventRecorder { return distinctNotes{r} }

type distinctNotes struct{ r EventRecorder }

func (d distinctNotes) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	msg := note
	if len(args) > 0 {
		msg = fmt.Sprintf(note, args...)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(msg))
	d.r.Eventf(regarding, related, eventtype, reason, fmt.Sprintf("%s#%08x", action, h.Sum32()), "%s", msg)
}
