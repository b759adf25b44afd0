package objstatus

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

type recordedEvent struct{ action, note string }

type captureRecorder struct{ got []recordedEvent }

func (c *captureRecorder) Eventf(_, _ runtime.Object, _, _, action, note string, args ...any) {
	if len(args) == 1 && note == "%s" {
		note = args[0].(string)
	}
	c.got = append(c.got, recordedEvent{action, note})
}

// Events whose notes differ get actions of their own, so the events
// library does not merge a changed message into the first one's series;
// a repeated note keeps its action, so repeats still form a series.
func TestDistinctNotes(t *testing.T) {
	c := &captureRecorder{}
	r := DistinctNotes(c)
	r.Eventf(nil, nil, "Warning", "SyncFailed", "Sync", "sync of %s failed: %s", "abc", "timeout")
	r.Eventf(nil, nil, "Warning", "SyncFailed", "Sync", "sync of %s failed: %s", "abc", "forbidden")
	r.Eventf(nil, nil, "Warning", "SyncFailed", "Sync", "sync of %s failed: %s", "abc", "timeout")
	r.Eventf(nil, nil, "Normal", "Synced", "Sync", "all done")
	if len(c.got) != 4 {
		t.Fatalf("recorded %d events, want 4", len(c.got))
	}
	if c.got[0].note != "sync of abc failed: timeout" || c.got[3].note != "all done" {
		t.Errorf("notes = %q, %q", c.got[0].note, c.got[3].note)
	}
	if c.got[0].action == c.got[1].action {
		t.Errorf("two different notes share the action %q", c.got[0].action)
	}
	if c.got[0].action != c.got[2].action {
		t.Errorf("one note repeated got actions %q and %q", c.got[0].action, c.got[2].action)
	}
	if a := c.got[0].action; len(a) != len("Sync#")+8 || a[:5] != "Sync#" {
		t.Errorf("action %q, want Sync#<8 hex digits>", a)
	}
}
