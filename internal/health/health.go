// Package health owns the answer to "is this Kubernetes object healthy?".
//
// The apply engine asks it before moving from one wave to the next, and the
// App status reports it for every object an App manages. It knows the
// built-in kinds (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod,
// PersistentVolumeClaim, Service, Ingress, Namespace, CustomResourceDefinition,
// APIService, HorizontalPodAutoscaler), reads the kstatus conventions
// (observedGeneration, Ready, Reconciling and Stalled conditions) for every
// other kind, and lets an App override both with CEL rules per kind.
//
// A check looks only at the object it is given: it sends no request and keeps
// no state, so it is cheap enough to run on every watch event. Messages name
// the object and what is wrong with it, and are built only from metadata and
// status fields, never from spec or data: Secrets are never read.
package health

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// State is the health of one object.
type State string

const (
	// Healthy: the object does what it was asked to do.
	Healthy State = "Healthy"
	// Progressing: the object is on its way to Healthy (a rollout, a Job
	// running, a volume being bound, a controller that has not caught up).
	Progressing State = "Progressing"
	// Degraded: the object failed and will not become Healthy by waiting.
	Degraded State = "Degraded"
	// Missing: the object does not exist.
	Missing State = "Missing"
	// Unknown: the health could not be determined, e.g. a CEL rule failed.
	Unknown State = "Unknown"
)

// Reasons callers may want to match on. Kind-specific checks use further
// reasons, documented in docs/health.md.
const (
	// ReasonNotFound: the object does not exist (State Missing).
	ReasonNotFound = "NotFound"
	// ReasonTerminating: the object has a deletionTimestamp (State Progressing).
	ReasonTerminating = "Terminating"
	// ReasonTimeout: the object was Progressing for longer than the timeout
	// given to CheckWithTimeout (State Degraded).
	ReasonTimeout = "Timeout"
	// ReasonGenerationNotObserved: the object's controller has not yet seen
	// its latest spec (State Progressing).
	ReasonGenerationNotObserved = "GenerationNotObserved"
	// ReasonRuleError: a CEL health rule failed to evaluate (State Unknown).
	ReasonRuleError = "HealthRuleError"
)

// Result is the health of one object at one moment.
type Result struct {
	State State
	// Reason is a short CamelCase word for machines and filters, e.g.
	// "ReplicasUnavailable" or "BackoffLimitExceeded".
	Reason string
	// Message is for people. It names the object and what is wrong, e.g.
	// "Deployment web: 1 of 3 replicas unavailable".
	Message string
}

// String formats r for logs and test failures.
func (r Result) String() string {
	return fmt.Sprintf("%s (%s): %s", r.State, r.Reason, r.Message)
}

// Checker computes the health of objects. The zero value and a nil *Checker
// use the built-in checks only; NewChecker adds CEL rules. A Checker is safe
// for concurrent use.
type Checker struct {
	rules map[schema.GroupKind]*compiledRule
}

// status is what a kind-specific check decides; Check turns it into a Result
// by naming the object in front of detail.
type status struct {
	state  State
	reason string
	detail string
}

// Check returns the health of obj. A nil obj is Missing.
func (c *Checker) Check(obj *unstructured.Unstructured) Result {
	if obj == nil {
		return Result{State: Missing, Reason: ReasonNotFound, Message: "object not found"}
	}
	return result(obj, c.check(obj))
}

// CheckWithTimeout is Check for a caller that has waited since since for obj
// to become healthy: once timeout or more has passed at now, a Progressing
// object is Degraded with reason Timeout and a message saying how long it has
// been progressing and why. A timeout of zero or less never expires.
func (c *Checker) CheckWithTimeout(obj *unstructured.Unstructured, since time.Time, timeout time.Duration, now time.Time) Result {
	if obj == nil {
		return c.Check(nil)
	}
	s := c.check(obj)
	elapsed := now.Sub(since)
	if s.state != Progressing || timeout <= 0 || elapsed < timeout {
		return result(obj, s)
	}
	return result(obj, status{
		state:  Degraded,
		reason: ReasonTimeout,
		detail: fmt.Sprintf("still progressing after %s (timeout %s): %s", roundDuration(elapsed), timeout, s.detail),
	})
}

func (c *Checker) check(obj *unstructured.Unstructured) status {
	if obj.GetDeletionTimestamp() != nil {
		return status{Progressing, ReasonTerminating, "being deleted"}
	}
	gk := obj.GroupVersionKind().GroupKind()
	if c != nil {
		if r := c.rules[gk]; r != nil {
			return r.check(obj)
		}
	}
	return builtin(gk, obj)
}

// builtin is the health of obj without CEL rules.
func builtin(gk schema.GroupKind, obj *unstructured.Unstructured) status {
	if gk == (schema.GroupKind{Kind: "Secret"}) {
		// Never look further: a Secret has no status, and its data must
		// never reach a message.
		return status{Healthy, "Exists", "exists"}
	}
	if check := kindChecks[gk]; check != nil {
		return check(obj)
	}
	if s, lagging := generationLag(obj); lagging {
		return s
	}
	return checkConditions(obj)
}

// kindCheck is the health check of one built-in kind.
type kindCheck func(*unstructured.Unstructured) status

var kindChecks = map[schema.GroupKind]kindCheck{
	{Group: "apps", Kind: "Deployment"}:                               typed(checkDeployment),
	{Group: "apps", Kind: "StatefulSet"}:                              typed(checkStatefulSet),
	{Group: "apps", Kind: "DaemonSet"}:                                checkDaemonSet,
	{Group: "apps", Kind: "ReplicaSet"}:                               typed(checkReplicaSet),
	{Group: "batch", Kind: "Job"}:                                     typed(checkJob),
	{Kind: "Pod"}:                                                     typed(checkPod),
	{Kind: "PersistentVolumeClaim"}:                                   typed(checkPVC),
	{Kind: "Service"}:                                                 typed(checkService),
	{Kind: "Namespace"}:                                               typed(checkNamespace),
	{Group: "networking.k8s.io", Kind: "Ingress"}:                     checkExists,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: checkCRD,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:             checkAPIService,
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}:           checkHPA,
}

// typed adapts a check written against a k8s.io/api type.
func typed[T any](check func(*T) status) kindCheck {
	return func(obj *unstructured.Unstructured) status {
		var t T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &t); err != nil {
			return status{Unknown, "InvalidObject", fmt.Sprintf("cannot read as %s: %v", obj.GroupVersionKind().GroupKind(), err)}
		}
		return check(&t)
	}
}

// checkExists is the check of kinds whose status says nothing about health
// (an Ingress's load balancer address is often empty on small clusters).
func checkExists(*unstructured.Unstructured) status {
	return status{Healthy, "Exists", "exists"}
}

// generationLag reports whether obj's controller has not yet observed its
// latest generation, going by status.observedGeneration when it is set.
func generationLag(obj *unstructured.Unstructured) (status, bool) {
	observed, ok := nestedInt(obj.Object, "status", "observedGeneration")
	if !ok || observed >= obj.GetGeneration() {
		return status{}, false
	}
	return generationNotObserved(observed, obj.GetGeneration()), true
}

func generationNotObserved(observed, generation int64) status {
	return status{Progressing, ReasonGenerationNotObserved,
		fmt.Sprintf("controller has observed generation %d, latest is %d", observed, generation)}
}

func result(obj *unstructured.Unstructured, s status) Result {
	return Result{State: s.state, Reason: s.reason, Message: fmt.Sprintf("%s %s: %s", obj.GetKind(), obj.GetName(), s.detail)}
}

// roundDuration keeps messages short: whole seconds from one second up.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return d.Round(time.Millisecond)
}
