package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestFinishKeepsBothErrors: when a reconcile failed and its status could
// not be written either, finish returns both errors, and no result to
// requeue by (the error's backoff decides).
func TestFinishKeepsBothErrors(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := gitSource("repo", "https://127.0.0.1:9/repo.git")
	src.Namespace = env.Namespace
	if err := c.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	before := src.DeepCopy()
	// A status the apiserver refuses: the reason is not a valid one.
	setCondition(&src.Status.Conditions, src.Generation, tendv1.ConditionReady, metav1.ConditionFalse, "not valid!", "x")
	reconcileErr := errors.New("the git server did not answer")
	res, err := finish(ctx, objstatus.Writer{Client: c}, src, before, ctrl.Result{RequeueAfter: time.Hour}, reconcileErr)
	if !errors.Is(err, reconcileErr) {
		t.Errorf("error %v does not hold the reconcile's error", err)
	}
	if err == nil || !strings.Contains(err.Error(), "write status of Source "+env.Namespace+"/repo") {
		t.Errorf("error %v does not hold the status write's error", err)
	}
	if res != (ctrl.Result{}) {
		t.Errorf("result = %+v with an error, want none", res)
	}

	// The reconcile's error alone: returned as it is, without the result.
	res, err = finish(ctx, objstatus.Writer{Client: c}, before.DeepCopy(), before, ctrl.Result{RequeueAfter: time.Hour}, reconcileErr)
	if err != reconcileErr || res != (ctrl.Result{}) {
		t.Errorf("finish = %+v, %v; want no result and the reconcile's error", res, err)
	}
}
