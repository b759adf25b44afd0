package apply

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Annotations tend reads and writes on the objects it applies.
const (
	// AnnotationOwner records the App ("namespace/name") that applied an object.
	AnnotationOwner = tendv1.AnnotationOwner
	// AnnotationWave orders objects into waves (an integer, default 0).
	AnnotationWave = tendv1.AnnotationWave
	// AnnotationHook makes an object a hook: pre-sync, post-sync, sync-fail
	// or post-delete.
	AnnotationHook = tendv1.AnnotationHook
	// AnnotationHookDeletePolicy is a comma list of before-create, on-success, on-failure.
	AnnotationHookDeletePolicy = tendv1.AnnotationHookDeletePolicy
	// AnnotationPrune set to "disabled" keeps an object when it leaves git.
	AnnotationPrune = tendv1.AnnotationPrune
	// AnnotationForceConflicts set to "true" takes over fields other managers own.
	AnnotationForceConflicts = tendv1.AnnotationForceConflicts

	argoWave       = "argocd.argoproj.io/sync-wave"
	argoHook       = "argocd.argoproj.io/hook"
	argoHookDelete = "argocd.argoproj.io/hook-delete-policy"
	argoOptions    = "argocd.argoproj.io/sync-options"
	helmHook       = "helm.sh/hook"
	helmHookDelete = "helm.sh/hook-delete-policy"
	helmHookWeight = "helm.sh/hook-weight"
)

// Phase says when a hook runs.
type Phase string

const (
	PreSync  Phase = "pre-sync"
	PostSync Phase = "post-sync"
	SyncFail Phase = "sync-fail"
	// PostDelete hooks run when the App is deleted, after its objects
	// are gone (see Engine.PostDelete); a sync neither applies nor runs
	// them.
	PostDelete Phase = "post-delete"
)

// DeletePolicy says when a hook object is deleted.
type DeletePolicy string

const (
	BeforeCreate DeletePolicy = "before-create"
	OnSuccess    DeletePolicy = "on-success"
	OnFailure    DeletePolicy = "on-failure"
)

// Hook is an object that runs at a sync phase instead of being applied with
// the main set.
type Hook struct {
	Object *unstructured.Unstructured
	Phase  Phase
	Weight int
	Delete map[DeletePolicy]bool
}

// Plan is a sync's objects sorted into hooks and ordered steps.
type Plan struct {
	// PreSync, PostSync, SyncFail and PostDelete hooks, each ordered by
	// weight.
	PreSync, PostSync, SyncFail, PostDelete []Hook
	// Steps are applied in order; each waits for its objects to be healthy
	// before the next starts. Step 0 holds Namespaces and CRDs.
	Steps []Step
	// Skipped are objects neither applied nor run (Helm test hooks, hooks of
	// phases that do not apply to this sync, Argo CD Skip hooks).
	Skipped []*unstructured.Unstructured
}

// Step is a group of objects applied together.
type Step struct {
	Wave    int
	Name    string // for messages: "namespaces and CRDs", "wave 0", ...
	Objects []*unstructured.Unstructured
	// Prerequisites is set on the Namespace/CRD step: after it, discovery
	// must know the new kinds.
	Prerequisites bool
}

// All returns every object the plan applies in its steps, in order.
func (p *Plan) All() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, s := range p.Steps {
		out = append(out, s.Objects...)
	}
	return out
}

// NewPlan sorts objects into hooks and steps. upgrade says whether the App
// was applied before (it selects Helm's pre-upgrade over pre-install hooks).
func NewPlan(objs []*unstructured.Unstructured, upgrade bool) (*Plan, error) {
	p := &Plan{}
	var prereq []*unstructured.Unstructured
	waves := map[int][]*unstructured.Unstructured{}
	for _, o := range objs {
		h, phases, skip, err := hookOf(o, upgrade)
		if err != nil {
			return nil, err
		}
		switch {
		case skip:
			p.Skipped = append(p.Skipped, o)
			continue
		case len(phases) > 0:
			// A hook of several phases (Argo CD's "PreSync,PostSync",
			// Helm's "pre-install,post-install") runs in each.
			for _, ph := range phases {
				h.Phase = ph
				switch ph {
				case PreSync:
					p.PreSync = append(p.PreSync, h)
				case PostSync:
					p.PostSync = append(p.PostSync, h)
				case SyncFail:
					p.SyncFail = append(p.SyncFail, h)
				case PostDelete:
					p.PostDelete = append(p.PostDelete, h)
				}
			}
			continue
		}
		if isPrerequisite(o) {
			prereq = append(prereq, o)
			continue
		}
		w, err := waveOf(o)
		if err != nil {
			return nil, err
		}
		waves[w] = append(waves[w], o)
	}
	if len(prereq) > 0 {
		sortByKind(prereq)
		p.Steps = append(p.Steps, Step{Name: "namespaces and CRDs", Objects: prereq, Prerequisites: true})
	}
	var ws []int
	for w := range waves {
		ws = append(ws, w)
	}
	sort.Ints(ws)
	for _, w := range ws {
		sortByKind(waves[w])
		p.Steps = append(p.Steps, Step{Wave: w, Name: fmt.Sprintf("wave %d", w), Objects: waves[w]})
	}
	for _, hs := range [][]Hook{p.PreSync, p.PostSync, p.SyncFail, p.PostDelete} {
		sort.SliceStable(hs, func(i, j int) bool { return hs[i].Weight < hs[j].Weight })
	}
	return p, nil
}

func isPrerequisite(o *unstructured.Unstructured) bool {
	gk := o.GroupVersionKind().GroupKind()
	return gk == (schema.GroupKind{Kind: "Namespace"}) ||
		gk == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"})
}

func waveOf(o *unstructured.Unstructured) (int, error) {
	a := o.GetAnnotations()
	for _, key := range []string{AnnotationWave, argoWave} {
		if v, ok := a[key]; ok {
			w, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("%s: annotation %s=%q is not an integer", describe(o), key, v)
			}
			return w, nil
		}
	}
	return 0, nil
}

// HookPhases returns the phases o runs in as a hook, read from tend's,
// Argo CD's and Helm's annotations as NewPlan reads them, for a first sync
// and for an upgrade alike (Helm's pre-install and pre-upgrade hooks are
// both pre-sync); none when o is not a hook or its annotations are invalid.
func HookPhases(o *unstructured.Unstructured) []Phase {
	var out []Phase
	for _, upgrade := range []bool{false, true} {
		_, phases, _, err := hookOf(o, upgrade)
		if err != nil {
			return nil
		}
		for _, ph := range phases {
			if !slices.Contains(out, ph) {
				out = append(out, ph)
			}
		}
	}
	return out
}

// hookOf reads the hook annotations of tend, Argo CD and Helm, in that order
// of precedence: the phases o runs in as a hook (none: o is applied with
// the main set), or skip when o is neither applied nor run.
func hookOf(o *unstructured.Unstructured, upgrade bool) (h Hook, phases []Phase, skip bool, err error) {
	a := o.GetAnnotations()
	h = Hook{Object: o, Delete: map[DeletePolicy]bool{}}
	add := func(ph Phase) {
		if !slices.Contains(phases, ph) {
			phases = append(phases, ph)
		}
	}
	var policies []string
	switch {
	case a[AnnotationHook] != "":
		switch v := strings.TrimSpace(a[AnnotationHook]); v {
		case string(PreSync), string(PostSync), string(SyncFail), string(PostDelete):
			add(Phase(v))
		default:
			return h, nil, false, fmt.Errorf("%s: annotation %s=%q: want pre-sync, post-sync, sync-fail or post-delete", describe(o), AnnotationHook, v)
		}
		policies = splitList(a[AnnotationHookDeletePolicy])
	case a[argoHook] != "":
		for _, v := range splitList(a[argoHook]) {
			switch v {
			case "PreSync":
				add(PreSync)
			case "PostSync":
				add(PostSync)
			case "SyncFail":
				add(SyncFail)
			case "PostDelete":
				add(PostDelete)
			case "Sync":
				// Applied with the main set, in its wave.
			case "Skip":
				return h, nil, true, nil
			default:
				return h, nil, false, fmt.Errorf("%s: annotation %s=%q: want PreSync, Sync, PostSync, SyncFail, PostDelete or Skip", describe(o), argoHook, v)
			}
		}
		if len(phases) == 0 {
			return h, nil, false, nil
		}
		policies = mapArgoPolicies(splitList(a[argoHookDelete]))
	case a[helmHook] != "":
		for _, v := range splitList(a[helmHook]) {
			switch v {
			case "pre-install", "pre-upgrade":
				if (v == "pre-upgrade") == upgrade {
					add(PreSync)
				}
			case "post-install", "post-upgrade":
				if (v == "post-upgrade") == upgrade {
					add(PostSync)
				}
			case "post-delete":
				// Run when the App is deleted, as `helm uninstall` runs
				// them (Argo CD runs them as PostDelete hooks too).
				add(PostDelete)
			}
		}
		if len(phases) == 0 {
			// test, pre-delete and rollback hooks, and the install/upgrade
			// hook that does not apply to this sync: not run.
			return h, nil, true, nil
		}
		if w := a[helmHookWeight]; w != "" {
			if h.Weight, err = strconv.Atoi(strings.TrimSpace(w)); err != nil {
				return h, nil, false, fmt.Errorf("%s: annotation %s=%q is not an integer", describe(o), helmHookWeight, w)
			}
		}
		policies = mapHelmPolicies(splitList(a[helmHookDelete]))
	default:
		return h, nil, false, nil
	}
	if h.Weight == 0 {
		if h.Weight, err = waveOf(o); err != nil {
			return h, nil, false, err
		}
	}
	if len(policies) == 0 {
		policies = []string{string(BeforeCreate)}
	}
	for _, p := range policies {
		switch DeletePolicy(p) {
		case BeforeCreate, OnSuccess, OnFailure:
			h.Delete[DeletePolicy(p)] = true
		default:
			return h, nil, false, fmt.Errorf("%s: unknown hook delete policy %q: want before-create, on-success or on-failure", describe(o), p)
		}
	}
	return h, phases, false, nil
}

func mapArgoPolicies(in []string) []string {
	m := map[string]string{"BeforeHookCreation": string(BeforeCreate), "HookSucceeded": string(OnSuccess), "HookFailed": string(OnFailure)}
	return mapPolicies(in, m)
}

func mapHelmPolicies(in []string) []string {
	m := map[string]string{"before-hook-creation": string(BeforeCreate), "hook-succeeded": string(OnSuccess), "hook-failed": string(OnFailure)}
	return mapPolicies(in, m)
}

func mapPolicies(in []string, m map[string]string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if mv, ok := m[v]; ok {
			out = append(out, mv)
		} else {
			out = append(out, v)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// kindOrder is the apply order within a step, like Helm's install order:
// what others depend on first.
var kindOrder = func() map[string]int {
	kinds := []string{
		"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
		"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
		"StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition",
		"ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList",
		"Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
		"ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
		"StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
	}
	m := make(map[string]int, len(kinds))
	for i, k := range kinds {
		m[k] = i
	}
	return m
}()

// sortByKind orders a step: cluster-scoped RBAC, then other cluster-scoped
// objects (those without a namespace), then namespaced objects, each by
// kind order and then name, keeping it deterministic.
func sortByKind(objs []*unstructured.Unstructured) {
	rank := func(o *unstructured.Unstructured) (int, int) {
		k := o.GetKind()
		group := 2
		if o.GetNamespace() == "" {
			group = 1
			if k == "ClusterRole" || k == "ClusterRoleBinding" {
				group = 0
			}
		}
		if isPrerequisite(o) {
			group = -1
		}
		ko, ok := kindOrder[k]
		if !ok {
			ko = len(kindOrder) // unknown kinds (custom resources) last
		}
		return group, ko
	}
	sort.SliceStable(objs, func(i, j int) bool {
		gi, ki := rank(objs[i])
		gj, kj := rank(objs[j])
		if gi != gj {
			return gi < gj
		}
		if ki != kj {
			return ki < kj
		}
		if objs[i].GetKind() != objs[j].GetKind() {
			return objs[i].GetKind() < objs[j].GetKind()
		}
		if objs[i].GetNamespace() != objs[j].GetNamespace() {
			return objs[i].GetNamespace() < objs[j].GetNamespace()
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}

// describe names an object for messages: "apps/Deployment ns/name".
func describe(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	kind := gvk.Kind
	if gvk.Group != "" {
		kind = gvk.Group + "/" + kind
	}
	if ns := o.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + o.GetName()
	}
	return kind + " " + o.GetName()
}
