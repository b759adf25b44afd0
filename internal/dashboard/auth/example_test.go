package auth_test

import (
	"fmt"

	"github.com/tend-gitops/tend/internal/dashboard/auth"
)

func ExampleParseGrants() {
	grants, err := auth.ParseGrants(map[string]string{auth.PolicyKey: `
- groups: [team-a]
  role: operator
  namespaces: ["team-a-*"]
- groups: ["*"]
  role: viewer
`})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range grants {
		fmt.Println(g.Groups, g.Role, g.Namespaces)
	}
	_, err = auth.ParseGrants(map[string]string{auth.PolicyKey: "- groups: [dev]\n  role: operater\n"})
	fmt.Println(err)
	// Output:
	// [team-a] operator [team-a-*]
	// [*] viewer []
	// dashboard policy policy.yaml: entry 1 (line 1): role "operater" is not one of viewer, operator, admin
}
