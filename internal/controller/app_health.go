package controller

import (
	"encoding/json"
	"errors"
	"fmt"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/health"
)

// HealthChecker compiles an App's spec.health.rules into a checker that
// replaces the built-in checks of their kinds. It returns nil (use the
// engine's default checker) when the App has no rules. The error names the
// rule (spec.health.rules[i]) and the CEL problem.
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

// healthChecker returns the App's own checker, compiled once per change of
// its rules; nil means the engine's default.
func (st *appState) healthChecker(app *tendv1.App) (apply.HealthChecker, error) {
	key := ""
	if len(app.Spec.Health.Rules) > 0 {
		b, _ := json.Marshal(app.Spec.Health.Rules)
		key = string(b)
	}
	if key != st.checkerKey || (key != "" && st.checker == nil) {
		c, err := HealthChecker(app)
		if err != nil {
			return nil, err
		}
		st.checker, st.checkerKey = c, key
	}
	if st.checker == nil {
		return nil, nil
	}
	return st.checker, nil
}

// health is the checker healthChecker last compiled, as an interface that
// is nil when the App has no rules.
func (st *appState) health() apply.HealthChecker {
	if st.checker == nil {
		return nil
	}
	return st.checker
}
