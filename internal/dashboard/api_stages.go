package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
	"github.com/tend-gitops/tend/internal/freight"
	"github.com/tend-gitops/tend/internal/promote"
)

// stageView is one row of the Stages page: a Stage of a pipeline.
type stageView struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	Warehouse   string     `json:"warehouse"`
	From        string     `json:"from"`
	Approval    bool       `json:"approval"`
	Freight     string     `json:"freight,omitempty"`
	Versions    string     `json:"versions,omitempty"`
	Revision    string     `json:"revision,omitempty"`
	PromotedAt  *time.Time `json:"promotedAt,omitempty"`
	By          string     `json:"by,omitempty"`
	State       string     `json:"state"`
	PullRequest string     `json:"pullRequest,omitempty"`
	Ready       string     `json:"ready"`
	Message     string     `json:"message,omitempty"`
	// Waiting is the reason of a Ready False (WaitingForApproval, ...).
	Waiting string `json:"waiting,omitempty"`
}

// listStages serves GET /api/v1/stages: every Stage the user may see, by
// Warehouse, upstream before downstream.
func (s *Server) listStages(w http.ResponseWriter, r *http.Request) {
	if s.o.NoStages != "" {
		s.noStages(w)
		return
	}
	var list tendv1.StageList
	if err := s.o.Cache.List(r.Context(), &list); err != nil {
		s.apiError(w, r, err)
		return
	}
	var visible []tendv1.Stage
	for _, st := range list.Items {
		if canView(r, st.Namespace) {
			visible = append(visible, st)
		}
	}
	promote.SortPipeline(visible)
	out := []stageView{}
	for i := range visible {
		st := &visible[i]
		v := stageView{Namespace: st.Namespace, Name: st.Name, Warehouse: st.Spec.Warehouse.Name, From: promote.From(st), Approval: st.Spec.Approval, State: promote.State(st)}
		if p := st.Status.Freight; p != nil {
			v.Freight, v.Versions, v.Revision, v.By = p.Name, p.Versions, p.Revision, p.By
			v.PromotedAt = timePtr(&p.PromotedAt)
			if p.PullRequest != nil {
				v.PullRequest = p.PullRequest.URL
			}
		}
		v.Ready, v.Message = ready(st.Status.Conditions)
		if v.Ready != "True" {
			for _, c := range st.Status.Conditions {
				if c.Type == tendv1.ConditionReady {
					v.Waiting = c.Reason
				}
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

// stageAction serves POST /api/v1/stages/{namespace}/{name}/approve
// [?freight=NAME] (default: what the Stage waits for) and .../rollback,
// for Operators of the namespace.
func (s *Server) stageAction(w http.ResponseWriter, r *http.Request) {
	if s.o.NoStages != "" {
		s.noStages(w)
		return
	}
	ctx := r.Context()
	key := types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	if !canView(r, key.Namespace) {
		s.apiError(w, r, errNoView)
		return
	}
	action := r.PathValue("action")
	need, ok := auth.ActionRole(action)
	if !ok || action != "approve" && action != "rollback" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("action %q: want approve or rollback", action)})
		return
	}
	if roleIn(r, key.Namespace) < need {
		s.o.Log.Info("dashboard action refused", "action", action, "stage", key.String(), "user", s.userName(r), "role", roleIn(r, key.Namespace).String())
		s.forbidden(w, r, need, key.Namespace)
		return
	}
	var st tendv1.Stage
	if err := s.o.Cache.Get(ctx, key, &st); err != nil {
		if apierrors.IsNotFound(err) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("Stage %s not found", key)})
			return
		}
		s.apiError(w, r, err)
		return
	}
	name := r.URL.Query().Get("freight")
	if action == "rollback" {
		prev, err := promote.Previous(&st)
		if err != nil {
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			return
		}
		name = prev.Name
	}
	user := s.userName(r)
	f, err := promote.Approve(ctx, s.o.Client, &st, name, user)
	var invalid *promote.InvalidRequest
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
	s.audit(ctx, &st, "Stage", fmt.Sprintf("%s of freight %s (%s)", action, f.Name, freight.Describe(f)), user)
	writeJSON(w, http.StatusAccepted, map[string]string{"action": action, "freight": f.Name, "versions": freight.Describe(f)})
}

// noStages answers for Stages the dashboard's credentials may not read.
func (s *Server) noStages(w http.ResponseWriter) {
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "the dashboard's credentials may not " + s.o.NoStages + "; ask for a Role that allows them to see Stages here"})
}
