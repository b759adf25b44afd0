package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/diff"
)

// objectDiff is one object's difference. Unified is the diff package's:
// Secret values in it are masks, never values.
type objectDiff struct {
	// Key is group/kind/namespace/name, what ?object= selects.
	Key       string `json:"key"`
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	Unified   string `json:"unified,omitempty"`
}

// diffView is what a sync of an App would change.
type diffView struct {
	App      string `json:"app"`
	Revision string `json:"revision"`
	// Summary reads "1 to update, 4 unchanged".
	Summary string `json:"summary"`
	// Changed counts the objects a sync would create, update or delete.
	Changed int `json:"changed"`
	// Objects are sorted: creations, updates, deletions, then unchanged.
	Objects  []objectDiff `json:"objects"`
	Notes    []string     `json:"notes"`
	Warnings []string     `json:"warnings"`
	// Errors are objects a sync would fail on.
	Errors []string `json:"errors"`
	// Hooks counts hooks, which run during a sync and are not compared.
	Hooks int `json:"hooks"`
}

func objectKey(group, kind, ns, name string) string {
	return group + "/" + kind + "/" + ns + "/" + name
}

// appDiff serves GET /api/v1/apps/{namespace}/{name}/diff[?object=group/kind/namespace/name]:
// what a sync would change, object by object, as `tend diff APP` shows it
// (package appdiff: the App rendered at the revision its Source last
// fetched, the engine's server-side apply dry run). It is computed on
// request, never on a live update: it fetches the Source and asks the API
// server for a dry run of every object.
func (s *Server) appDiff(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.app(ctx, r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if s.o.Differ == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "diffs are not available on this dashboard: it was started without a connection to compare with"})
		return
	}
	release, ok := s.diffTurn(w)
	if !ok {
		return
	}
	defer release()
	var want [4]string
	if o := r.URL.Query().Get("object"); o != "" {
		parts := strings.Split(o, "/")
		if len(parts) != 4 || parts[1] == "" || parts[3] == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("object %q: want group/kind/namespace/name (group and namespace may be empty: /Secret/web/db)", o)})
			return
		}
		copy(want[:], parts)
	}
	var src tendv1.Source
	srcKey := types.NamespacedName{Namespace: a.Spec.SourceRef.Namespace, Name: a.Spec.SourceRef.Name}
	if srcKey.Namespace == "" {
		srcKey.Namespace = a.Namespace
	}
	if err := s.o.Cache.Get(ctx, srcKey, &src); err != nil {
		if apierrors.IsNotFound(err) {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": fmt.Sprintf("the App's Source %s does not exist: create it, or correct spec.sourceRef", srcKey)})
			return
		}
		s.apiError(w, r, err)
		return
	}
	res, err := s.o.Differ.Diff(ctx, a, &src, appdiff.Options{})
	if err != nil {
		s.diffError(w, err)
		return
	}
	v := diffView{
		App: a.Namespace + "/" + a.Name, Revision: res.Revision, Summary: diff.Summary(res.Objects), Hooks: res.Hooks,
		Objects: []objectDiff{}, Notes: nonNil(res.Notes), Warnings: nonNil(res.Warnings), Errors: nonNil(res.Errors),
	}
	for _, d := range res.Objects {
		if d.Action != diff.ActionUnchanged {
			v.Changed++
		}
		if want[3] != "" && (d.Group != want[0] || d.Kind != want[1] || d.Namespace != want[2] || d.Name != want[3]) {
			continue
		}
		v.Objects = append(v.Objects, objectDiff{
			Key: objectKey(d.Group, d.Kind, d.Namespace, d.Name), Group: d.Group, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name,
			Action: d.Action, Unified: d.Unified,
		})
	}
	if want[3] != "" && len(v.Objects) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("%s is not among the objects App %s renders or would prune", refString(want[0], want[1], want[2], want[3]), v.App)})
		return
	}
	sort.SliceStable(v.Objects, func(i, j int) bool {
		a, b := v.Objects[i], v.Objects[j]
		if ra, rb := diff.ActionRank(a.Action), diff.ActionRank(b.Action); ra != rb {
			return ra < rb
		}
		return a.Key < b.Key
	})
	sort.Strings(v.Errors)
	writeJSON(w, http.StatusOK, v)
}

// diffError answers a failed diff: what the user must fix (the App, its
// Source or objects the API server refuses), an App of another Cluster,
// missing permissions, or a failure to reach the cluster or the Source.
// diffTurn takes one of the dashboard's diff turns (maxDiffs), or answers
// 429 with Retry-After. A diff renders the App and dry-runs every object:
// a few at a time, whoever asks, so that viewers cannot keep the
// controller busy.
func (s *Server) diffTurn(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case s.diffs <- struct{}{}:
		return func() { <-s.diffs }, true
	default:
		w.Header().Set("Retry-After", "2")
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": fmt.Sprintf("%d diffs are being computed already: try again in a moment", cap(s.diffs))})
		return nil, false
	}
}

func (s *Server) diffError(w http.ResponseWriter, err error) {
	var (
		ie *appdiff.InputError
		oc *appdiff.OtherClusterError
	)
	switch {
	case errors.As(err, &oc):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": fmt.Sprintf(
			"No diff for this App: it deploys to Cluster %s, and the dashboard compares with the cluster it runs against only. "+
				"To see what a sync would change there, run `tend diff` on the App's directory with a kubeconfig of that cluster.", oc.Cluster),
			"reason": "OtherCluster"})
	case errors.As(err, &ie):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
	case apierrors.IsForbidden(err):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
