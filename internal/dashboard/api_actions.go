package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appctl"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
)

// appAction serves POST /api/v1/apps/{namespace}/{name}/{sync,refresh,suspend,resume,unpin}
// and rollback?id=N.
func (s *Server) appAction(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.app(ctx, r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	action := r.PathValue("action")
	if need, ok := auth.ActionRole(action); ok && roleIn(r, a.Namespace) < need {
		s.o.Log.Info("dashboard action refused", "action", action, "app", a.Namespace+"/"+a.Name, "user", s.userName(r), "role", roleIn(r, a.Namespace).String())
		s.forbidden(w, r, need, a.Namespace)
		return
	}
	var result map[string]string
	switch action {
	case "sync":
		var token string
		token, err = appctl.RequestSync(ctx, s.o.Client, a, appctl.SyncOptions{Prune: r.URL.Query().Get("prune") == "true"})
		result = map[string]string{"requested": token}
	case "refresh":
		err = appctl.RequestRefresh(ctx, s.o.Client, a)
	case "suspend", "resume":
		err = appctl.SetSuspend(ctx, s.o.Client, a, action == "suspend")
	case "rollback":
		id, perr := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
		if perr != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "rollback needs id, the number of a sync in the App's history"})
			return
		}
		var rec *tendv1.SyncRecord
		if rec, err = appctl.Rollback(ctx, s.o.Client, a, id); err == nil {
			action = fmt.Sprintf("rollback to sync %d (%s)", id, rec.Revision)
			result = map[string]string{"revision": rec.Revision}
		}
	case "unpin":
		err = appctl.Unpin(ctx, s.o.Client, a)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("action %q: want sync, refresh, suspend, resume, rollback or unpin", action)})
		return
	}
	var invalid *appctl.InvalidRequest
	switch {
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	case apierrors.IsForbidden(err):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	s.audit(ctx, a, "App", action, s.userName(r))
	if result == nil {
		result = map[string]string{}
	}
	result["action"] = action
	writeJSON(w, http.StatusAccepted, result)
}

// audit records an action on obj (an App or a Stage, named by kind): one
// log line and one event on it, both naming who asked.
func (s *Server) audit(ctx context.Context, obj client.Object, kind, action, user string) {
	key := obj.GetNamespace() + "/" + obj.GetName()
	s.o.Log.Info("dashboard action", "action", action, strings.ToLower(kind), key, "user", user)
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: obj.GetName() + ".", Namespace: obj.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{APIVersion: tendv1.GroupVersion.String(), Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
		Reason:         "DashboardAction",
		Message:        fmt.Sprintf("%s requested by %s from the dashboard", action, user),
		Type:           corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "tend-dashboard"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := s.o.Kube.CoreV1().Events(obj.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		s.o.Log.Warn("dashboard: audit event not recorded", strings.ToLower(kind), key, "error", err)
	}
}
