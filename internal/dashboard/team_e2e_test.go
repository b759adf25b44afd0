package dashboard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestTeamDashboardInBrowser signs in to the controller's dashboard in
// headless Chromium through an OIDC provider on loopback: an operator
// syncs an App (recorded with its name) and signs out; a viewer sees the
// App without action buttons, and a sync it forges from the page, with
// its session's CSRF token, is refused and changes nothing; a wrong admin
// token is refused with a page saying what to do.
func TestTeamDashboardInBrowser(t *testing.T) {
	env := teamEnv(t)
	other := testenv.New(t).Namespace
	ctx := context.Background()
	newApp(t, env, env.Namespace, "web")
	for i := range 5 {
		newApp(t, env, env.Namespace, fmt.Sprintf("svc-%d", i))
	}

	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	name := dashboard.DefaultTeamName
	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace},
		Data: map[string][]byte{dashboard.SecretOIDCClientSecret: []byte(m.ClientSecret)}})
	if _, err := dashboard.AdminTokenPatch(ctx, env.Clientset, env.Namespace, name); err != nil {
		t.Fatal(err)
	}
	setPolicy(t, env, name, "- groups: [dev]\n  role: operator\n- groups: [\"*\"]\n  role: viewer\n")
	tm := startTeam(t, env, other, name, m)
	m.QueueUser(&mockoidc.MockUser{Subject: "u-otto", Email: "otto@example.com", EmailVerified: true, PreferredUsername: "otto", Groups: []string{"dev"}})

	cfg := map[string]any{"url": tm.url, "namespace": env.Namespace, "app": "web", "operator": "otto", "viewer": "vera"}
	requested := func() string {
		var a tendv1.App
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &a); err != nil {
			t.Fatal(err)
		}
		return a.Annotations[tendv1.AnnotationRequestedAt]
	}
	var synced string
	browserScript(t, "team.mjs", cfg, func(step string) {
		switch step {
		case "synced":
			if synced = requested(); synced == "" {
				t.Error("the operator's Sync did not request a sync of the App")
			}
			evs, err := env.Clientset.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=DashboardAction"})
			if err != nil || len(evs.Items) != 1 || !strings.Contains(evs.Items[0].Message, "sync requested by otto") {
				t.Errorf("audit events of App web: %v %v, want one naming otto", evs, err)
			}
		case "viewer":
			m.QueueUser(&mockoidc.MockUser{Subject: "u-vera", Email: "vera@example.com", EmailVerified: true, PreferredUsername: "vera", Groups: []string{"qa"}})
		case "forged":
			if got := requested(); got != synced {
				t.Errorf("the viewer's forged sync changed the App's request from %q to %q", synced, got)
			}
		default:
			t.Errorf("the browser script asked for an unknown step %q", step)
		}
	})
}
