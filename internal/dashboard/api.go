package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
	"github.com/tend-gitops/tend/internal/health"
)

// appSummary is one row of the App list.
type appSummary struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Sync      string            `json:"sync"`
	Health    string            `json:"health"`
	Ready     string            `json:"ready"`
	Message   string            `json:"message,omitempty"`
	Revision  string            `json:"revision,omitempty"`
	Subject   string            `json:"subject,omitempty"`
	LastSync  *time.Time        `json:"lastSync,omitempty"`
	Result    string            `json:"result,omitempty"`
	Source    string            `json:"source"`
	DependsOn []string          `json:"dependsOn,omitempty"`
	Origin    string            `json:"origin"`
	Suspended bool              `json:"suspended,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// appList is a page of the App list.
type appList struct {
	Items    []appSummary `json:"items"`
	Total    int          `json:"total"`
	Page     int          `json:"page"`
	PageSize int          `json:"pageSize"`
	// Counts are of the Apps the namespace, source, label and search
	// filters select, by sync and by health state (the summary; the state
	// filters narrow Items only).
	Counts     map[string]map[string]int `json:"counts"`
	Namespaces []string                  `json:"namespaces"`
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func unknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// origin says who made the App: tend itself, an AppSet, or the Argo CD or
// Flux object tend runs as it is.
func origin(a *tendv1.App) string {
	for _, o := range a.OwnerReferences {
		group, _, _ := strings.Cut(o.APIVersion, "/")
		switch {
		case group == "argoproj.io":
			return "Argo CD " + o.Kind + " " + o.Name
		case strings.HasSuffix(group, ".toolkit.fluxcd.io"):
			return "Flux " + o.Kind + " " + o.Name
		}
	}
	if set := a.Labels[tendv1.LabelAppSet]; set != "" {
		return "AppSet " + set
	}
	return "tend"
}

func sourceKey(a *tendv1.App) string {
	ns := a.Spec.SourceRef.Namespace
	if ns == "" {
		ns = a.Namespace
	}
	return ns + "/" + a.Spec.SourceRef.Name
}

func summarize(a *tendv1.App, sources map[string]*tendv1.Source) appSummary {
	s := appSummary{
		Namespace: a.Namespace, Name: a.Name,
		Sync: unknown(a.Status.Sync), Health: unknown(a.Status.Health), Ready: "Unknown",
		Revision: a.Status.Revision, Source: sourceKey(a), Origin: origin(a),
		Suspended: a.Spec.Suspend, Labels: a.Labels,
	}
	if c := meta.FindStatusCondition(a.Status.Conditions, tendv1.ConditionReady); c != nil {
		s.Ready = string(c.Status)
		if c.Status != metav1.ConditionTrue {
			s.Message = c.Message
		}
	}
	if src := sources[s.Source]; src != nil && src.Status.Artifact != nil && src.Status.Artifact.Revision == a.Status.Revision {
		s.Subject = src.Status.Artifact.Subject
	}
	if len(a.Status.History) > 0 {
		t := a.Status.History[0].StartedAt.Time
		s.LastSync, s.Result = &t, a.Status.History[0].Result
	}
	for _, d := range a.Spec.DependsOn {
		ns := d.Namespace
		if ns == "" {
			ns = a.Namespace
		}
		s.DependsOn = append(s.DependsOn, ns+"/"+d.Name)
	}
	return s
}

func (s *Server) sources(ctx context.Context) (map[string]*tendv1.Source, error) {
	var list tendv1.SourceList
	if err := s.o.Cache.List(ctx, &list); err != nil {
		return nil, err
	}
	out := make(map[string]*tendv1.Source, len(list.Items))
	for i := range list.Items {
		src := &list.Items[i]
		out[src.Namespace+"/"+src.Name] = src
	}
	return out, nil
}

// listApps serves GET /api/v1/apps?namespace=&source=&sync=&health=&label=&q=&sort=&page=&pageSize=.
func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sel := labels.Everything()
	if l := q.Get("label"); l != "" {
		var err error
		if sel, err = labels.Parse(l); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("label filter %q: %v (want key=value, key!=value or key)", l, err)})
			return
		}
	}
	page, size := atoi(q.Get("page"), 1), atoi(q.Get("pageSize"), defaultPageSize)
	if page < 1 || size < 1 || size > maxPageSize {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("page must be 1 or more and pageSize between 1 and %d", maxPageSize)})
		return
	}
	sortBy := q.Get("sort")
	switch sortBy {
	case "", "name", "namespace", "sync", "health", "lastSync":
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("sort %q: want name, namespace, sync, health or lastSync", sortBy)})
		return
	}
	ctx := r.Context()
	var apps tendv1.AppList
	if err := s.o.Cache.List(ctx, &apps); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	sources, err := s.sources(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	search := strings.ToLower(q.Get("q"))
	out := appList{Page: page, PageSize: size, Counts: map[string]map[string]int{"sync": {}, "health": {}}, Items: []appSummary{}, Namespaces: []string{}}
	nsSeen := map[string]bool{}
	var rows []appSummary
	for i := range apps.Items {
		a := &apps.Items[i]
		if !canView(r, a.Namespace) {
			continue
		}
		nsSeen[a.Namespace] = true
		if ns := q.Get("namespace"); ns != "" && a.Namespace != ns {
			continue
		}
		if src := q.Get("source"); src != "" && sourceKey(a) != src && a.Spec.SourceRef.Name != src {
			continue
		}
		if !sel.Matches(labels.Set(a.Labels)) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(a.Namespace+"/"+a.Name), search) {
			continue
		}
		row := summarize(a, sources)
		out.Counts["sync"][row.Sync]++
		out.Counts["health"][row.Health]++
		if v := q.Get("sync"); v != "" && row.Sync != v {
			continue
		}
		if v := q.Get("health"); v != "" && row.Health != v {
			continue
		}
		rows = append(rows, row)
	}
	for ns := range nsSeen {
		out.Namespaces = append(out.Namespaces, ns)
	}
	sort.Strings(out.Namespaces)
	key := func(a appSummary) string {
		switch sortBy {
		case "namespace":
			return a.Namespace
		case "sync":
			return a.Sync
		case "health":
			return a.Health
		}
		return a.Name
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if sortBy == "lastSync" {
			var ta, tb time.Time
			if a.LastSync != nil {
				ta = *a.LastSync
			}
			if b.LastSync != nil {
				tb = *b.LastSync
			}
			if !ta.Equal(tb) {
				return ta.After(tb)
			}
		} else if ka, kb := key(a), key(b); ka != kb {
			return ka < kb
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Namespace < b.Namespace
	})
	out.Total = len(rows)
	// page is bounded by the rows, so (page-1)*size cannot overflow.
	if page <= len(rows)/size+1 {
		if start := (page - 1) * size; start < len(rows) {
			out.Items = rows[start:min(start+size, len(rows))]
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func atoi(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// conditionView is a condition in plain words with what to do about it.
type conditionView struct {
	Type    string    `json:"type"`
	Status  string    `json:"status"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
	Advice  string    `json:"advice,omitempty"`
}

// advice says what to do about an App condition's reason.
var advice = map[string]string{
	"RenderFailed":               "Fix the files named in the message and push; tend renders the next commit on its own.",
	"SyncFailed":                 "Read the message: the apiserver's refusal names the object. Fix it in git, or press Sync to retry now.",
	"SourceNotFound":             "Create the Source the App names (spec.sourceRef), or correct the reference.",
	"DependencyNotReady":         "Waiting on the Apps in spec.dependsOn; open them to see why they are not Healthy.",
	"DependencyCycle":            "spec.dependsOn forms a cycle: remove one of the dependencies.",
	"SyncWindowBlocked":          "A sync window forbids syncing now; tend syncs when it opens.",
	"OutOfSync":                  "The cluster differs from git: press Sync, or enable spec.sync.selfHeal.",
	"RolledBack":                 "tend rolled back to the last healthy revision; fix the newer commit in git.",
	"RetryLimitReached":          "tend stopped retrying; fix the cause and press Sync.",
	"Degraded":                   "An object the App applied is failing: open the tree to see which.",
	"OwnershipConflict":          "Another App declares the same object: remove it from one of them.",
	"InvalidObjects":             "The rendered objects are not valid: fix them in git.",
	"ProjectNotFound":            "Create the Project the App names, or correct spec.project.",
	"ProjectDenied":              "The App's Project forbids what the message names: change the App or ask for the Project to allow it.",
	"InventoryFormatUnsupported": "A newer tend wrote this App's inventory: upgrade tend again.",
}

type historyView struct {
	ID       int64     `json:"id"`
	Revision string    `json:"revision"`
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Result   string    `json:"result"`
	Changed  int32     `json:"changed"`
	Message  string    `json:"message,omitempty"`
	Healthy  bool      `json:"healthy"`
}

type eventView struct {
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count"`
	Last    time.Time `json:"last"`
}

type appDetail struct {
	appSummary
	Path        string          `json:"path,omitempty"`
	Destination string          `json:"destination,omitempty"`
	Project     string          `json:"project,omitempty"`
	Attempted   string          `json:"attempted,omitempty"`
	Pinned      string          `json:"pinned,omitempty"`
	Objects     int32           `json:"objects"`
	OutOfSync   []string        `json:"outOfSync,omitempty"`
	Conditions  []conditionView `json:"conditions"`
	History     []historyView   `json:"history"`
	Events      []eventView     `json:"events"`
	// CanAct says whether the user may sync, refresh, roll back, suspend
	// and resume the App (the operator role); the page shows the buttons
	// only then.
	CanAct bool `json:"canAct"`
}

// errNoView is app's error for an App the user may not see.
var errNoView = errors.New("no view")

func (s *Server) app(ctx context.Context, r *http.Request) (*tendv1.App, error) {
	var a tendv1.App
	key := types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	// Before the lookup: whether an App exists is not told either.
	if !canView(r, key.Namespace) {
		return nil, errNoView
	}
	if err := s.o.Cache.Get(ctx, key, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errNoView) {
		s.forbidden(w, r, auth.Viewer, r.PathValue("namespace"))
		return
	}
	if apierrors.IsNotFound(err) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("App %s/%s not found", r.PathValue("namespace"), r.PathValue("name"))})
		return
	}
	if apierrors.IsForbidden(err) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

// getApp serves GET /api/v1/apps/{namespace}/{name}.
func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.app(ctx, r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	sources, err := s.sources(ctx)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d := appDetail{
		appSummary: summarize(a, sources), Path: a.Spec.Path, Project: a.Spec.Project,
		Attempted: a.Status.LastAttemptedRevision, Pinned: a.Spec.TargetRevision, Objects: a.Status.Objects,
		Conditions: []conditionView{}, History: []historyView{}, Events: []eventView{},
		CanAct: roleIn(r, a.Namespace) >= auth.Operator,
	}
	d.Destination = a.Spec.Destination.Namespace
	for _, o := range a.Status.OutOfSync {
		d.OutOfSync = append(d.OutOfSync, refString(o.Group, o.Kind, o.Namespace, o.Name))
	}
	for _, c := range a.Status.Conditions {
		cv := conditionView{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.Time}
		if c.Status != metav1.ConditionTrue || c.Type == tendv1.ConditionStalled {
			cv.Advice = advice[c.Reason]
		}
		d.Conditions = append(d.Conditions, cv)
	}
	for _, h := range a.Status.History {
		d.History = append(d.History, historyView{
			ID: h.ID, Revision: h.Revision, Started: h.StartedAt.Time, Duration: h.Duration.Duration.Round(time.Millisecond).String(),
			Result: h.Result, Changed: h.Changed, Message: h.Message, Healthy: h.Healthy,
		})
	}
	evs, err := s.o.Kube.CoreV1().Events(a.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + a.Name + ",involvedObject.kind=App",
	})
	if err == nil {
		items := evs.Items
		sort.Slice(items, func(i, j int) bool { return eventTime(items[i]).After(eventTime(items[j])) })
		for i, e := range items {
			if i == 50 {
				break
			}
			d.Events = append(d.Events, eventView{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, Last: eventTime(e)})
		}
	}
	writeJSON(w, http.StatusOK, d)
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func refString(group, kind, ns, name string) string {
	if group != "" {
		kind = group + "/" + kind
	}
	if ns != "" {
		return kind + " " + ns + "/" + name
	}
	return kind + " " + name
}

// node is one object of an App's resource tree.
type node struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Health    string `json:"health"`
	Message   string `json:"message,omitempty"`
	// OutOfSync says the App's status lists the object as differing from
	// git (the controller's view): the page links it to its diff.
	OutOfSync bool    `json:"outOfSync,omitempty"`
	Children  []*node `json:"children,omitempty"`
}

// childKinds are the kinds whose objects hang under what the App applied
// through ownerReferences: a Deployment's ReplicaSets and their Pods, a
// CronJob's Jobs and theirs, a StatefulSet's or DaemonSet's Pods.
var childKinds = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Version: "v1", Resource: "pods"},
}

// appTree serves GET /api/v1/apps/{namespace}/{name}/tree: the objects
// in the App's inventory, live, with their health and the objects they
// own. Only kinds, names and health leave the server: no Secret data.
func (s *Server) appTree(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.app(ctx, r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	inv, err := (&apply.SecretStore{Client: s.o.Kube}).Load(ctx, apply.AppRef{Namespace: a.Namespace, Name: a.Name})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	var checker *health.Checker
	roots := []*node{}
	byUID := map[types.UID]*node{}
	namespaces := map[string]bool{}
	outOfSync := map[apply.ObjectRef]bool{}
	for _, o := range a.Status.OutOfSync {
		outOfSync[apply.ObjectRef{Group: o.Group, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}] = true
	}
	for _, ref := range inv.Refs() {
		e := inv.Entries[ref]
		n := &node{Group: ref.Group, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, Health: string(health.Missing), OutOfSync: outOfSync[ref]}
		roots = append(roots, n)
		if s.o.Dynamic == nil || s.o.Mapper == nil {
			continue
		}
		m, err := s.o.Mapper.RESTMapping(schema.GroupKind{Group: ref.Group, Kind: ref.Kind}, versionOf(e.Version))
		if err != nil {
			n.Health, n.Message = "Unknown", err.Error()
			continue
		}
		var ri = s.o.Dynamic.Resource(m.Resource)
		var obj *unstructured.Unstructured
		if ref.Namespace != "" {
			obj, err = ri.Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		} else {
			obj, err = ri.Get(ctx, ref.Name, metav1.GetOptions{})
		}
		if err != nil {
			if !apierrors.IsNotFound(err) {
				n.Health, n.Message = "Unknown", err.Error()
			}
			continue
		}
		res := checker.Check(obj)
		n.Health, n.Message = string(res.State), res.Message
		byUID[obj.GetUID()] = n
		if ref.Namespace != "" {
			namespaces[ref.Namespace] = true
		}
	}
	if s.o.Dynamic != nil {
		s.attachChildren(ctx, checker, byUID, namespaces)
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": a.Namespace + "/" + a.Name, "revision": inv.Revision, "nodes": roots})
}

// versionOf is the API version part of "group/version" or "version".
func versionOf(apiVersion string) string {
	if _, v, ok := strings.Cut(apiVersion, "/"); ok {
		return v
	}
	return apiVersion
}

// attachChildren adds, level by level, the ReplicaSets, Jobs and Pods
// the tree's objects own.
func (s *Server) attachChildren(ctx context.Context, checker *health.Checker, byUID map[types.UID]*node, namespaces map[string]bool) {
	var objs []unstructured.Unstructured
	for ns := range namespaces {
		for _, gvr := range childKinds {
			list, err := s.o.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			objs = append(objs, list.Items...)
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].GetName() < objs[j].GetName() })
	for depth := 0; depth < 3; depth++ {
		added := false
		for i := range objs {
			o := &objs[i]
			if _, done := byUID[o.GetUID()]; done {
				continue
			}
			for _, ref := range o.GetOwnerReferences() {
				parent := byUID[ref.UID]
				if parent == nil {
					continue
				}
				res := checker.Check(o)
				gv, _ := schema.ParseGroupVersion(o.GetAPIVersion())
				n := &node{Group: gv.Group, Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Health: string(res.State), Message: res.Message}
				parent.Children = append(parent.Children, n)
				byUID[o.GetUID()] = n
				added = true
				break
			}
		}
		if !added {
			return
		}
	}
}

type sourceView struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Type      string     `json:"type"`
	URL       string     `json:"url"`
	Revision  string     `json:"revision,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	FetchedAt *time.Time `json:"fetchedAt,omitempty"`
	Ready     string     `json:"ready"`
	Message   string     `json:"message,omitempty"`
}

// redactURL drops credentials written into a URL (user info, the query);
// a URL that does not parse is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func ready(conds []metav1.Condition) (string, string) {
	c := meta.FindStatusCondition(conds, tendv1.ConditionReady)
	if c == nil {
		return "Unknown", ""
	}
	if c.Status == metav1.ConditionTrue {
		return "True", ""
	}
	return string(c.Status), c.Message
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	var list tendv1.SourceList
	if err := s.o.Cache.List(r.Context(), &list); err != nil {
		s.apiError(w, r, err)
		return
	}
	out := []sourceView{}
	for _, src := range list.Items {
		if !canView(r, src.Namespace) {
			continue
		}
		v := sourceView{Namespace: src.Namespace, Name: src.Name}
		switch {
		case src.Spec.Git != nil:
			v.Type, v.URL = "git", src.Spec.Git.URL
		case src.Spec.Helm != nil:
			v.Type, v.URL = "helm", src.Spec.Helm.URL
		case src.Spec.OCI != nil:
			v.Type, v.URL = "oci", src.Spec.OCI.URL
		}
		v.URL = redactURL(v.URL)
		if art := src.Status.Artifact; art != nil {
			t := art.FetchedAt.Time
			v.Revision, v.Subject, v.FetchedAt = art.Revision, art.Subject, &t
		}
		v.Ready, v.Message = ready(src.Status.Conditions)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

type notifierView struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	Provider    string     `json:"provider"`
	Sent        int64      `json:"sent"`
	Failed      int64      `json:"failed"`
	LastSent    *time.Time `json:"lastSent,omitempty"`
	LastFailure *time.Time `json:"lastFailure,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	Ready       string     `json:"ready"`
	Message     string     `json:"message,omitempty"`
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time
	return &v
}

func (s *Server) listNotifiers(w http.ResponseWriter, r *http.Request) {
	var list tendv1.NotifierList
	if err := s.o.Cache.List(r.Context(), &list); err != nil {
		s.apiError(w, r, err)
		return
	}
	out := []notifierView{}
	for _, n := range list.Items {
		if !canView(r, n.Namespace) {
			continue
		}
		// The address is left out: webhook URLs often carry a token.
		v := notifierView{Namespace: n.Namespace, Name: n.Name, Provider: n.Spec.Provider, Sent: n.Status.Sent, Failed: n.Status.Failed,
			LastSent: timePtr(n.Status.LastSentAt), LastFailure: timePtr(n.Status.LastFailureAt), LastError: n.Status.LastError}
		v.Ready, v.Message = ready(n.Status.Conditions)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

type clusterView struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	KubeVersion string `json:"kubeVersion,omitempty"`
	Ready       string `json:"ready"`
	Message     string `json:"message,omitempty"`
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request) {
	var list tendv1.ClusterList
	if err := s.o.Cache.List(r.Context(), &list); err != nil {
		s.apiError(w, r, err)
		return
	}
	out := []clusterView{}
	for _, c := range list.Items {
		if !canView(r, c.Namespace) {
			continue
		}
		v := clusterView{Namespace: c.Namespace, Name: c.Name, KubeVersion: c.Status.KubeVersion}
		v.Ready, v.Message = ready(c.Status.Conditions)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

type appSetView struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Apps      []string `json:"apps"`
	Orphaned  []string `json:"orphaned,omitempty"`
	Ready     string   `json:"ready"`
	Message   string   `json:"message,omitempty"`
}

func (s *Server) listAppSets(w http.ResponseWriter, r *http.Request) {
	var list tendv1.AppSetList
	if err := s.o.Cache.List(r.Context(), &list); err != nil {
		s.apiError(w, r, err)
		return
	}
	out := []appSetView{}
	for _, set := range list.Items {
		if !canView(r, set.Namespace) {
			continue
		}
		v := appSetView{Namespace: set.Namespace, Name: set.Name, Apps: append([]string{}, set.Status.Apps...), Orphaned: set.Status.Orphaned}
		v.Ready, v.Message = ready(set.Status.Conditions)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}
