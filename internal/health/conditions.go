package health

import (
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// condition is one entry of status.conditions, read leniently from an
// unstructured object.
type condition struct {
	Type, Status, Reason, Message string
	// ObservedGeneration is the condition's own observedGeneration, 0 when
	// unset.
	ObservedGeneration int64
}

// conditions returns status.conditions of obj, skipping malformed entries.
func conditions(obj *unstructured.Unstructured) []condition {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	var out []condition
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		c := condition{
			Type:    stringField(m, "type"),
			Status:  stringField(m, "status"),
			Reason:  stringField(m, "reason"),
			Message: stringField(m, "message"),
		}
		c.ObservedGeneration, _ = nestedInt(m, "observedGeneration")
		if c.Type != "" {
			out = append(out, c)
		}
	}
	return out
}

func findCondition(conds []condition, typ string) (condition, bool) {
	for _, c := range conds {
		if c.Type == typ {
			return c, true
		}
	}
	return condition{}, false
}

// isTrue reports whether conds has a condition typ with status True.
func isTrue(conds []condition, typ string) bool {
	c, ok := findCondition(conds, typ)
	return ok && c.Status == "True"
}

// explain is prefix followed by c's reason and message, when it has them:
// "not ready: InstallFailed: chart not found".
func (c condition) explain(prefix string) string {
	return explain(prefix, c.Reason, c.Message)
}

// reasonOr returns c's reason, or fallback when it has none.
func (c condition) reasonOr(fallback string) string {
	return reasonOr(c.Reason, fallback)
}

// explain is prefix followed by whichever of reason and message are set.
func explain(prefix, reason, message string) string {
	switch {
	case reason != "" && message != "":
		return prefix + ": " + reason + ": " + message
	case message != "":
		return prefix + ": " + message
	case reason != "":
		return prefix + ": " + reason
	}
	return prefix
}

func reasonOr(reason, fallback string) string {
	if reason != "" {
		return reason
	}
	return fallback
}

func stringField(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// nestedInt reads an integer field however it was decoded: int64 from the
// API machinery's JSON decoder, float64 from encoding/json, int from Go code.
func nestedInt(obj map[string]any, fields ...string) (int64, bool) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, fields...)
	if !found || err != nil {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	}
	return 0, false
}

// inProgressReasons are reasons of a Ready=False condition that mean "not
// ready yet" rather than "failed", as used by common controllers.
var inProgressReasons = map[string]bool{
	"Progressing":        true,
	"Reconciling":        true,
	"Pending":            true,
	"InProgress":         true,
	"Creating":           true,
	"Updating":           true,
	"Provisioning":       true,
	"Initializing":       true,
	"Waiting":            true,
	"DependencyNotReady": true,
}

// checkConditions is the health of a kind tend has no specific check for,
// following the kstatus conventions: Stalled=True is Degraded,
// Reconciling=True is Progressing, then the Ready condition decides; an
// object without a Ready condition (or without status at all: ConfigMap,
// ServiceAccount, RBAC) is Healthy.
func checkConditions(obj *unstructured.Unstructured) status {
	conds := conditions(obj)
	if c, ok := findCondition(conds, "Stalled"); ok && c.Status == "True" {
		return status{Degraded, c.reasonOr("Stalled"), c.explain("stalled")}
	}
	if c, ok := findCondition(conds, "Reconciling"); ok && c.Status == "True" {
		return status{Progressing, c.reasonOr("Reconciling"), c.explain("reconciling")}
	}
	ready, ok := findCondition(conds, "Ready")
	if !ok {
		if len(conds) == 0 {
			return status{Healthy, "Exists", "exists"}
		}
		return status{Healthy, "NoReadyCondition", "exists; no Ready, Reconciling or Stalled condition"}
	}
	if g := obj.GetGeneration(); ready.ObservedGeneration != 0 && ready.ObservedGeneration < g {
		return generationNotObserved(ready.ObservedGeneration, g)
	}
	switch ready.Status {
	case "True":
		return status{Healthy, ready.reasonOr("Ready"), ready.explain("ready")}
	case "False":
		if inProgressReasons[ready.Reason] || isTrue(conds, "Progressing") {
			return status{Progressing, ready.reasonOr("NotReady"), ready.explain("not ready yet")}
		}
		return status{Degraded, ready.reasonOr("NotReady"), ready.explain("not ready")}
	}
	return status{Progressing, ready.reasonOr("ReadyUnknown"), ready.explain("readiness unknown")}
}

// checkCRD: a CustomResourceDefinition is Healthy once the API server
// serves it (Established) and Degraded when its names conflict.
func checkCRD(obj *unstructured.Unstructured) status {
	conds := conditions(obj)
	if c, ok := findCondition(conds, "NamesAccepted"); ok && c.Status == "False" {
		return status{Degraded, c.reasonOr("NamesNotAccepted"), c.explain("names not accepted")}
	}
	if isTrue(conds, "Established") {
		return status{Healthy, "Established", "established"}
	}
	return status{Progressing, "NotEstablished", "waiting for the API server to establish it"}
}

// checkAPIService: an aggregated APIService is Healthy when Available. Not
// available is Progressing, because a freshly installed one waits for its
// backend; a timeout turns a permanent failure into Degraded.
func checkAPIService(obj *unstructured.Unstructured) status {
	c, ok := findCondition(conditions(obj), "Available")
	switch {
	case !ok:
		return status{Progressing, "NotAvailable", "waiting for the Available condition"}
	case c.Status == "True":
		return status{Healthy, "Available", "available"}
	}
	return status{Progressing, c.reasonOr("NotAvailable"), c.explain("not available")}
}

// checkHPA: a HorizontalPodAutoscaler is Degraded only when it cannot read
// or update its target's scale. The Backoff* reasons of AbleToScale=False are
// the normal stabilization window, and ScalingActive=False (no metrics
// server, or scaled to zero) is common on small clusters, so both stay
// Healthy, the latter with a message saying so.
func checkHPA(obj *unstructured.Unstructured) status {
	if s, lagging := generationLag(obj); lagging {
		return s
	}
	conds := conditions(obj)
	if c, ok := findCondition(conds, "AbleToScale"); ok && c.Status == "False" && !strings.HasPrefix(c.Reason, "Backoff") {
		return status{Degraded, c.reasonOr("NotAbleToScale"), c.explain("cannot scale")}
	}
	if c, ok := findCondition(conds, "ScalingActive"); ok && c.Status == "False" {
		return status{Healthy, "ScalingInactive", c.explain("scaling inactive")}
	}
	if len(conds) == 0 {
		return status{Healthy, "Exists", "exists"}
	}
	return status{Healthy, "AbleToScale", "able to scale"}
}
