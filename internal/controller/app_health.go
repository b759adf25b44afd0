package controller

import (
	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
)

// compiled returns the App's health and ignore rules, compiled once per
// change of them.
func (st *appState) compiled(app *tendv1.App) (appspec.Compiled, error) {
	if st.rules.Current(app) {
		return st.rules, nil
	}
	c, err := appspec.Compile(app)
	if err != nil {
		return appspec.Compiled{}, err
	}
	st.rules = c
	return c, nil
}

// health is the App's own health checker as compiled last, as an interface
// that is nil when the App has no rules.
func (st *appState) health() apply.HealthChecker {
	if st.rules.Health == nil {
		return nil
	}
	return st.rules.Health
}
