// Package appspec maps an App's spec onto what the apply engine takes. It is
// the one place the controller, `tend sync --local` and `tend diff` get an
// App's sync options from, so that the three behave alike: prune,
// allowEmpty, forceConflicts, the health timeout and rules, and
// ignoreDifferences.
package appspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/diff"
	"github.com/tend-gitops/tend/internal/health"
)

// DefaultHealthTimeout is spec.health.timeout's default.
const DefaultHealthTimeout = 5 * time.Minute

// Compiled holds the parts of an App's spec that are compiled before use:
// health rules (CEL), health checks and ignore rules (JSON pointers, jq).
// Nil fields mean the App has none.
type Compiled struct {
	Health *health.Checker
	Checks []apply.Checked
	Ignore *diff.Ignore
	key    string
}

// Compile checks and compiles app's health and ignore rules. Errors name
// the field (spec.health.rules[i], spec.ignoreDifferences[i]....) and are
// the user's to fix: retrying does not help.
func Compile(app *tendv1.App) (Compiled, error) {
	c := Compiled{key: key(app)}
	var errs []error
	h, err := HealthChecker(app)
	if err != nil {
		errs = append(errs, err)
	}
	c.Health = h
	checks, err := HealthChecks(app)
	if err != nil {
		errs = append(errs, err)
	}
	c.Checks = checks
	ig, err := diff.NewIgnore(IgnoreRules(app))
	if err != nil {
		errs = append(errs, err)
	}
	c.Ignore = ig
	return c, errors.Join(errs...)
}

// Current reports whether c was compiled from app's current rules.
func (c Compiled) Current(app *tendv1.App) bool { return c.key == key(app) }

func key(app *tendv1.App) string {
	if len(app.Spec.Health.Rules) == 0 && len(app.Spec.IgnoreDifferences) == 0 && len(app.Spec.Health.Checks) == 0 {
		return ""
	}
	b, _ := json.Marshal([]any{app.Spec.Health.Rules, app.Spec.IgnoreDifferences, app.Spec.Health.Checks})
	return string(b)
}

// HealthChecks returns app's spec.health.checks for the engine. The error
// names each entry whose apiVersion does not parse.
func HealthChecks(app *tendv1.App) ([]apply.Checked, error) {
	var (
		out  []apply.Checked
		errs []error
	)
	for i, c := range app.Spec.Health.Checks {
		gv, err := schema.ParseGroupVersion(c.APIVersion)
		if err != nil || gv.Version == "" {
			errs = append(errs, fmt.Errorf("spec.health.checks[%d].apiVersion %q: not an API version; write group/version (apps/v1) or v1 for the core group", i, c.APIVersion))
			continue
		}
		out = append(out, apply.Checked{
			Ref:     apply.ObjectRef{Group: gv.Group, Kind: c.Kind, Namespace: c.Namespace, Name: c.Name},
			Version: gv.Version,
		})
	}
	return out, errors.Join(errs...)
}

// Request returns the apply.Request app's spec asks for, with c's compiled
// rules; the caller adds the revision, the objects and the inventory.
func Request(app *tendv1.App, c Compiled) apply.Request {
	req := apply.Request{
		App:            apply.AppRef{Namespace: app.Namespace, Name: app.Name},
		Prune:          app.Spec.Sync.Prune,
		AllowEmpty:     app.Spec.Sync.AllowEmpty,
		ForceConflicts: app.Spec.Sync.ForceConflicts,
		Recreate:       app.Spec.Sync.Recreate,
		HealthTimeout:  HealthTimeout(app),
		Ignore:         c.Ignore,
		// Fields Argo CD, Flux, Helm or kubectl apply set before tend
		// become tend's at the first apply, values unchanged, so that the
		// next git change to them applies (a takeover without a blip).
		// Objects tend made itself carry none of those managers: no
		// extra write.
		TakeOver: &apply.TakeOver{Managers: apply.DefaultTakeOverManagers()},
	}
	if d := app.Spec.Destination; d.CreateNamespace {
		req.CreateNamespace = d.Namespace
		if m := d.NamespaceMetadata; m != nil {
			req.NamespaceLabels, req.NamespaceAnnotations = m.Labels, m.Annotations
		}
	}
	if c.Health != nil {
		req.Health = c.Health
	}
	req.HealthChecks = c.Checks
	req.Owners = Owners(app)
	return req
}

// Owners are the UIDs of app's owners (apply.Request.Owners).
func Owners(app *tendv1.App) []types.UID {
	var out []types.UID
	for _, o := range app.OwnerReferences {
		out = append(out, o.UID)
	}
	return out
}

// HealthTimeout is spec.health.timeout, or its default.
func HealthTimeout(app *tendv1.App) time.Duration {
	if d := app.Spec.Health.Timeout.Duration; d > 0 {
		return d
	}
	return DefaultHealthTimeout
}

// IgnoreRules returns app's spec.ignoreDifferences as diff rules.
func IgnoreRules(app *tendv1.App) []diff.IgnoreRule {
	var out []diff.IgnoreRule
	for _, r := range app.Spec.IgnoreDifferences {
		out = append(out, diff.IgnoreRule{
			Group: r.Group, Kind: r.Kind, Name: r.Name, Namespace: r.Namespace,
			JSONPointers: r.JSONPointers, JQPathExpressions: r.JQPathExpressions, Managers: r.Managers,
		})
	}
	return out
}

// HealthChecker compiles an App's spec.health.rules into a checker that
// falls back to the built-in assessments; it returns nil (use the
// engine's default checker) when the App has no rules. The error names the
// broken rules.
func HealthChecker(app *tendv1.App) (*health.Checker, error) {
	if len(app.Spec.Health.Rules) == 0 {
		return nil, nil
	}
	rules := make([]health.Rule, 0, len(app.Spec.Health.Rules))
	var errs []error
	for i, r := range app.Spec.Health.Rules {
		rule := health.Rule{
			Group: r.Group, Kind: r.Kind,
			Healthy: r.Healthy, Degraded: r.Degraded, Progressing: r.Progressing, Message: r.Message,
		}
		// Compile each rule alone first so that the error names its index;
		// every broken rule is reported at once.
		if _, err := health.NewChecker([]health.Rule{rule}); err != nil {
			errs = append(errs, fmt.Errorf("spec.health.rules[%d] (kind %q): %w", i, r.Kind, err))
		}
		rules = append(rules, rule)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w; fix the CEL expressions", errors.Join(errs...))
	}
	c, err := health.NewChecker(rules)
	if err != nil {
		return nil, fmt.Errorf("spec.health.rules: %w", err)
	}
	return c, nil
}
