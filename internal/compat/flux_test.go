package compat

import (
	"testing"

	"github.com/tend-gitops/tend/internal/apply"
)

func TestParseFluxID(t *testing.T) {
	for id, want := range map[string]apply.ObjectRef{
		"apps_web_apps_Deployment": {Group: "apps", Kind: "Deployment", Namespace: "apps", Name: "web"},
		"apps_cfg__ConfigMap":      {Kind: "ConfigMap", Namespace: "apps", Name: "cfg"},
		"_system__controller__ops_rbac.authorization.k8s.io_ClusterRole": {Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:controller:ops"},
		"_flux-system__Namespace": {Kind: "Namespace", Name: "flux-system"},
	} {
		got, ok := parseFluxID(id)
		if !ok || got != want {
			t.Errorf("parseFluxID(%q) = %+v, %v; want %+v", id, got, ok, want)
		}
	}
	for _, bad := range []string{"", "nounderscore", "ns_name", "ns__Kind"} {
		if got, ok := parseFluxID(bad); ok {
			t.Errorf("parseFluxID(%q) = %+v, want refused", bad, got)
		}
	}
}
