package dashboard

import (
	"net/http"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/apply"
)

// hookRun is a hook Job of an App as the cluster has it: the Job of its
// last run (a hook's default delete policy, before-create, deletes the
// previous run's Job as the next run starts).
type hookRun struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	State     string     `json:"state"`
	Active    int32      `json:"active"`
	Succeeded int32      `json:"succeeded"`
	Failed    int32      `json:"failed"`
	Created   time.Time  `json:"created"`
	Started   *time.Time `json:"started,omitempty"`
	// Completed is when it finished, succeeded or failed.
	Completed *time.Time `json:"completed,omitempty"`
	Message   string     `json:"message,omitempty"`
}

// hookPhase is the hook runs of one phase.
type hookPhase struct {
	Phase string    `json:"phase"`
	Hooks []hookRun `json:"hooks"`
}

// hookPhases are the phases in the order a sync runs them.
var hookPhases = []apply.Phase{apply.PreSync, apply.PostSync, apply.SyncFail, apply.PostDelete}

// appHooks serves GET /api/v1/apps/{namespace}/{name}/hooks: the App's
// hook Jobs by phase, each with its state. Nothing records hook runs
// besides the Jobs themselves, so these are the Jobs in the App's
// namespaces that carry its owner annotation and a hook annotation; a
// hook deleted by its policy (on-success) after it ran no longer shows.
func (s *Server) appHooks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.app(ctx, r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := map[string]any{"phases": []hookPhase{}}
	if ref := a.Spec.Destination.ClusterRef; ref != nil {
		out["note"] = "This App deploys to Cluster " + ref.Name + ": its hooks run there, and the dashboard reads the cluster it runs against only."
		writeJSON(w, http.StatusOK, out)
		return
	}
	namespaces := map[string]bool{a.Namespace: true}
	if ns := a.Spec.Destination.Namespace; ns != "" {
		namespaces[ns] = true
	}
	inv, err := (&apply.SecretStore{Client: s.o.Kube}).Load(ctx, apply.AppRef{Namespace: a.Namespace, Name: a.Name})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	for ref := range inv.Entries {
		if ref.Namespace != "" {
			namespaces[ref.Namespace] = true
		}
	}
	owner := a.Namespace + "/" + a.Name
	byPhase := map[apply.Phase][]hookRun{}
	for ns := range namespaces {
		jobs, err := s.o.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		for i := range jobs.Items {
			j := &jobs.Items[i]
			if j.Annotations[apply.AnnotationOwner] != owner {
				continue
			}
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("batch/v1")
			u.SetKind("Job")
			u.SetName(j.Name)
			u.SetAnnotations(j.Annotations)
			for _, ph := range apply.HookPhases(u) {
				byPhase[ph] = append(byPhase[ph], jobRun(j))
			}
		}
	}
	var phases []hookPhase
	for _, ph := range hookPhases {
		runs := byPhase[ph]
		if len(runs) == 0 {
			continue
		}
		sort.Slice(runs, func(i, j int) bool {
			if !runs[i].Created.Equal(runs[j].Created) {
				return runs[i].Created.After(runs[j].Created)
			}
			return runs[i].Namespace+"/"+runs[i].Name < runs[j].Namespace+"/"+runs[j].Name
		})
		phases = append(phases, hookPhase{Phase: string(ph), Hooks: runs})
	}
	if phases != nil {
		out["phases"] = phases
	}
	writeJSON(w, http.StatusOK, out)
}

// jobRun reads a Job's state: Succeeded or Failed once it has finished
// (with the reason it failed), Suspended, Running while a pod runs, else
// Pending.
func jobRun(j *batchv1.Job) hookRun {
	h := hookRun{
		Namespace: j.Namespace, Name: j.Name, Active: j.Status.Active, Succeeded: j.Status.Succeeded, Failed: j.Status.Failed,
		Created: j.CreationTimestamp.Time, Started: timePtr(j.Status.StartTime), Completed: timePtr(j.Status.CompletionTime),
	}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			h.State, h.Message = "Succeeded", c.Message
			return h
		case batchv1.JobFailed:
			h.State, h.Message = "Failed", c.Message
			if h.Message == "" {
				h.Message = c.Reason
			}
			if h.Completed == nil {
				t := c.LastTransitionTime.Time
				h.Completed = &t
			}
			return h
		case batchv1.JobSuspended:
			h.State, h.Message = "Suspended", c.Message
			return h
		}
	}
	if j.Status.Active > 0 {
		h.State = "Running"
	} else {
		h.State = "Pending"
	}
	return h
}
