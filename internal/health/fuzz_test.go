package health

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// FuzzHealthRule compiles a health rule's CEL expressions (spec.health.rules
// of an App) and checks an object with it. A rule that does not compile is
// an error naming the kind; one that compiles decides one of Healthy,
// Progressing, Degraded or Unknown with a message, the same every time it
// checks the same object (a message that changed between checks would
// rewrite the App's status on every reconcile). `make fuzz-smoke` runs it
// briefly; see docs/development.md for longer runs.
func FuzzHealthRule(f *testing.F) {
	const widget = "spec: {replicas: 2}\nstatus: {phase: Running, readyWidgets: 2, message: ok, conditions: [{type: Ready, status: 'True'}]}\n"
	f.Add(`object.?status.?phase.orValue("") == "Failed"`, `has(object.status) && object.status.phase == "Running" && object.status.readyWidgets >= object.spec.replicas`, `true`, `object.?status.?message.orValue("")`, []byte(widget))
	f.Add(``, `object.status.conditions.exists(c, c.type == "Ready" && c.status == "True")`, ``, ``, []byte(widget))
	f.Add(`object.status.ready`, `object.status.broken`, ``, `object.status.phase + ": " + string(object.spec.replicas)`, []byte("{}"))
	f.Add(`1 == 1.0`, `size(object) > 3`, `"a".matches("[")`, `string(object)`, []byte("status: {message: [1, 2]}"))
	f.Add(`[1,2,3].map(x, [1,2,3].map(y, x*y)).size() > 0`, ``, ``, `object.metadata.name.upperAscii()`, []byte(widget))
	f.Fuzz(func(t *testing.T, degraded, healthy, progressing, message string, object []byte) {
		c, err := NewChecker([]Rule{{Group: "example.com", Kind: "Widget", Degraded: degraded, Healthy: healthy, Progressing: progressing, Message: message}})
		if err != nil {
			if !strings.Contains(err.Error(), "Widget.example.com") {
				t.Fatalf("error does not name the rule's kind: %v", err)
			}
			return
		}
		var m map[string]any
		if yaml.Unmarshal(object, &m) != nil || m == nil {
			m = map[string]any{}
		}
		m["apiVersion"], m["kind"] = "example.com/v1", "Widget"
		m["metadata"] = map[string]any{"name": "w", "namespace": "ns"}
		obj := &unstructured.Unstructured{Object: m}
		res := c.Check(obj)
		switch res.State {
		case Healthy, Progressing, Degraded, Unknown:
		default:
			t.Fatalf("state %q", res.State)
		}
		if res.Message == "" || res.Reason == "" {
			t.Fatalf("result without reason or message: %+v", res)
		}
		if again := c.Check(obj); again != res {
			t.Fatalf("two checks of one object differ:\n%+v\n%+v", res, again)
		}
	})
}
