package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// An App tend migrate made from an Argo CD Application still in the
// cluster starts with the inventory Argo CD recorded (status.resources),
// as the --compat takeover does: at its first sync the object Argo CD
// applied and git still holds is taken over unchanged, and the one that
// left git since is pruned. An App naming an object that is gone syncs
// without one and says so in an event; one whose annotation cannot be
// read is stalled, naming it.
func TestMigratedAppStartsWithTheOldToolsInventory(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := compatCRDs(t, cl)
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("apps", map[string]string{
		"apps/web/cfg.yaml":    configMapYAML("cfg", "1"),
		"apps/other/cfg.yaml":  configMapYAML("other", "1"),
		"apps/broken/cfg.yaml": configMapYAML("broken", "1"),
	})

	// Without Argo CD's resources finalizer, which nobody would remove
	// here: tend's Apps prune what leaves git either way.
	application := func(name string) string {
		doc := strings.Replace(argoApplication(name, repo.URL, "apps/"+name, ns), "namespace: argocd", "namespace: "+ns, 1)
		return strings.Replace(doc, "  finalizers: [resources-finalizer.argocd.argoproj.io]\n", "", 1)
	}
	before := leftByArgoCD(t, cl, dyn, application("web"))
	app, err := dyn.Resource(argoApplications).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// kubectl get applications -o yaml | tend migrate -
	exported, err := sigsyaml.Marshal(app.Object)
	if err != nil {
		t.Fatal(err)
	}
	input := string(exported) + "---\n" + application("other") + "---\n" + application("broken")
	m := &Main{Stdout: new(strings.Builder), Stderr: new(strings.Builder), Stdin: strings.NewReader(input)}
	if code := m.Run(ctx, []string{"migrate", "-"}); code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, m.Stderr)
	}
	out := m.Stdout.(*strings.Builder).String()
	for _, o := range objectsOf(t, out) {
		switch o.GetName() {
		case "web", "other":
			if want := "Application.argoproj.io/" + ns + "/" + o.GetName(); o.GetAnnotations()[tendv1.AnnotationAdoptFrom] != want {
				t.Errorf("App %s: annotation %s = %q, want %q", o.GetName(), tendv1.AnnotationAdoptFrom, o.GetAnnotations()[tendv1.AnnotationAdoptFrom], want)
			}
		case "broken":
			// As if edited by hand.
			o.SetAnnotations(map[string]string{tendv1.AnnotationAdoptFrom: "Application/" + ns})
		}
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	// Application "other" was never in the cluster, and Argo CD is gone:
	// the controller runs without --compat.
	cl.startController(t)

	eventually(t, "web-gone pruned and App web synced", 2*time.Minute, func() bool {
		_, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-gone", metav1.GetOptions{})
		var a tendv1.App
		return apierrors.IsNotFound(err) && cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &a) == nil &&
			a.Status.Sync == tendv1.SyncSynced
	})
	after, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-cfg", metav1.GetOptions{})
	if err != nil || after.UID != before.UID || after.Data["value"] != "1" {
		t.Fatalf("web-cfg after the first sync: %v %v, want the same object and value", err, after)
	}
	if !hasEvent(t, cl, "web", controller.ReasonAdopted, "2 objects") {
		t.Errorf("App web has no %s event naming the 2 objects taken over", controller.ReasonAdopted)
	}
	eventually(t, "App other synced, with an event saying its Application is gone", time.Minute, func() bool {
		_, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "other-other", metav1.GetOptions{})
		return err == nil && hasEvent(t, cl, "other", controller.ReasonAdoptFromNotFound, "Application.argoproj.io/"+ns+"/other")
	})
	eventually(t, "App broken stalled naming the annotation", time.Minute, func() bool {
		var a tendv1.App
		if cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "broken"}, &a) != nil {
			return false
		}
		c := meta.FindStatusCondition(a.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Reason == controller.ReasonInvalidAnnotation && strings.Contains(c.Message, tendv1.AnnotationAdoptFrom)
	})
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "broken-broken", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("App broken applied its objects (%v) with an annotation it cannot read", err)
	}
}
