package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/project"
	"github.com/tend-gitops/tend/internal/replicate"
)

// replicaWriters says who writes the copies of a replicated Secret
// (replicate.Reconciler.WriterFor): the ServiceAccount the Secret's App
// acts as (spec.serviceAccountName or --default-service-account),
// impersonated, and the App's Project, so that an App copies a Secret
// only into namespaces it could apply one to.
type replicaWriters struct {
	mgr  ctrl.Manager
	apps *AppReconciler

	mu      sync.Mutex
	clients map[string]client.Client // by impersonated user
}

func (w *replicaWriters) writerFor(ctx context.Context, src *corev1.Secret) (*replicate.Writer, error) {
	ns, name, ok := strings.Cut(src.Annotations[apply.AnnotationOwner], "/")
	if !ok {
		return nil, nil
	}
	var app tendv1.App
	if err := w.mgr.GetClient().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &app); err != nil {
		if apierrors.IsNotFound(err) {
			// The App is gone and left its Secret (deletion policy
			// Orphan): nobody's rights to act with, so no copy is
			// made or updated; those made stay.
			return &replicate.Writer{Client: w.mgr.GetClient(), Allowed: func(string) error {
				return fmt.Errorf("the App %s/%s that applied it is gone; Secrets are copied only for an App", ns, name)
			}}, nil
		}
		return nil, err
	}
	out := &replicate.Writer{Client: w.mgr.GetClient()}
	if sa := w.apps.serviceAccount(&app); sa != "" {
		out.As = cluster.ServiceAccountUser(app.Namespace, sa)
		c, err := w.client(out.As)
		if err != nil {
			return nil, err
		}
		out.Client = c
	}
	rules, err := project.Load(ctx, w.mgr.GetClient(), &app)
	switch {
	case errors.Is(err, project.ErrNotFound):
		out.Allowed = func(string) error { return fmt.Errorf("the App %s/%s: %v", app.Namespace, app.Name, err) }
	case err != nil:
		return nil, err
	case rules != nil:
		out.Allowed = func(namespace string) error {
			cp := &unstructured.Unstructured{}
			cp.SetAPIVersion("v1")
			cp.SetKind("Secret")
			cp.SetNamespace(namespace)
			cp.SetName(src.Name)
			return rules.CheckObjects(&app, []*unstructured.Unstructured{cp}, func(schema.GroupVersionKind) (bool, bool) { return true, true })
		}
	}
	return out, nil
}

// client returns a client impersonating user, made once per user.
func (w *replicaWriters) client(user string) (client.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.clients[user]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(w.mgr.GetConfig())
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: w.mgr.GetScheme(), Mapper: w.mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("acting as %s: %w", user, err)
	}
	if w.clients == nil {
		w.clients = map[string]client.Client{}
	}
	w.clients[user] = c
	return c, nil
}
