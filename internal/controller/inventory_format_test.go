package controller

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
)

// TestInventoryOfNewerTendStallsApp: after tend is rolled back, an App
// whose inventory a newer tend wrote is Stalled with a reason and a message
// saying to upgrade; nothing is applied and the inventory stays as the newer
// tend left it.
func TestInventoryOfNewerTendStallsApp(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app", map[string]string{"app/cm.yaml": configMapYAML("rolled-back", "1")})

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, "tend-inventory v%d\nsomething only a newer tend reads\n", apply.InventoryFormat+1)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	newer := buf.Bytes()
	if _, err := e.Clientset.CoreV1().Secrets(e.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tend-inventory-web", Namespace: e.Namespace},
		Type:       "tend.dev/inventory",
		Data:       map[string][]byte{"inventory": newer},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.create(t, gitSource("repo", repo.URL), newApp("web", "repo", "app", e.Namespace))
	e.waitApp(t, "web", "stalled on the newer inventory format", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonInventoryFormat && strings.Contains(c.Message, "upgrade tend")
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "rolled-back", metav1.GetOptions{}); err == nil {
		t.Error("the App was applied over an inventory this tend cannot read")
	}
	sec, err := e.Clientset.CoreV1().Secrets(e.Namespace).Get(ctx, "tend-inventory-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sec.Data["inventory"], newer) {
		t.Error("the newer tend's inventory was rewritten")
	}
}
