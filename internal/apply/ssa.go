package apply

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/tend-gitops/tend/internal/diff"
)

// applyStep applies the step's objects that need it, concurrently, and
// records each result. An object the apiserver rejects fails the step
// (after every object in it was tried).
func (s *syncRun) applyStep(ctx context.Context, step Step, need map[ObjectRef]string) error {
	// Kinds whose CRDs an earlier step created are watchable now.
	if err := s.watchKinds(ctx, step.Objects, false); err != nil {
		return err
	}
	sem := make(chan struct{}, s.e.Concurrency)
	var (
		wg   sync.WaitGroup
		errs []string
	)
	for _, o := range step.Objects {
		ref := RefOf(o)
		h, ok := need[ref]
		if !ok {
			s.progress(step.Name, ref, Unchanged, "")
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(o *unstructured.Unstructured) {
			defer func() { <-sem; wg.Done() }()
			force := s.req.ForceConflicts || o.GetAnnotations()[AnnotationForceConflicts] == "true"
			live, existed := s.e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
			fail := func(msg string) {
				s.progress(step.Name, ref, Failed, msg)
				s.mu.Lock()
				errs = append(errs, msg)
				s.mu.Unlock()
			}
			// A Secret with generated values is applied with them; o
			// (hashed into the inventory) never holds them.
			withValues, filled, err := s.e.withValues(ctx, o)
			if err != nil {
				fail(err.Error())
				return
			}
			if s.req.Ignore.Matches(o) {
				if withValues, err = s.e.withIgnored(ctx, s.req.Ignore, withValues, existed); err != nil {
					fail(filled.Redact(err.Error()))
					return
				}
			}
			out, warning, err := s.e.applyObject(ctx, withValues, force, s.req.TakeOver, s.req.DryRun)
			var recreated string
			if err != nil && existed && refusedChange(err) && !s.req.DryRun && s.recreates(o) {
				// A field that cannot change changed: delete the
				// object and create it as git has it.
				recreated = "recreated: " + serverMessage(err)
				if err = s.e.recreate(ctx, withValues, live.GetUID()); err == nil {
					out, warning, err = s.e.applyObject(ctx, withValues, force, s.req.TakeOver, false)
				}
			}
			if err != nil {
				fail(filled.Redact(err.Error()))
				return
			}
			// The fingerprint is the apply's: taking fields over
			// changes only other managers' entries.
			fingerprint := s.e.Fingerprint(out, FieldManager)
			var movedFrom []string
			if s.req.TakeOver != nil && !s.req.DryRun {
				if out, movedFrom, err = s.e.takeOver(ctx, s.req.TakeOver, out); err != nil {
					fail(filled.Redact(err.Error()))
					return
				}
			}
			if warning != "" {
				s.mu.Lock()
				s.res.Warnings = append(s.res.Warnings, warning)
				s.mu.Unlock()
			}
			action := Configured
			if !existed {
				action = Created
			}
			msg := warning
			if recreated != "" {
				action = Recreated
				msg = joinMessages(filled.Redact(recreated), msg)
			}
			if len(movedFrom) > 0 {
				took := "fields taken over from " + strings.Join(movedFrom, ", ")
				if msg != "" {
					took += "; " + msg
				}
				msg = took
			}
			if m := filled.Message(); m != "" {
				if msg != "" {
					m += "; " + msg
				}
				msg = m
			}
			s.progress(step.Name, ref, action, msg)
			if s.req.DryRun {
				return
			}
			s.e.Live.Observe(out)
			s.mu.Lock()
			s.next.Entries[ref] = Entry{Version: o.GroupVersionKind().Version, Desired: h, Fingerprint: fingerprint}
			s.mu.Unlock()
		}(o)
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// withIgnored returns o as a sync applies it under the App's ignore rules
// (diff.Ignore.ForApply), reading the live object from the API server when
// it exists: the rules need its every field manager and real Secret values,
// which the watch cache does not keep. Only objects that need applying and
// have rules are read, so the steady state still sends nothing.
func (e *Engine) withIgnored(ctx context.Context, ig *diff.Ignore, o *unstructured.Unstructured, exists bool) (*unstructured.Unstructured, error) {
	var live *unstructured.Unstructured
	if exists {
		ri, _, err := e.resourceFor(o)
		if err != nil {
			return nil, err
		}
		release, err := e.acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(o), err)
		}
		live, err = ri.Get(ctx, o.GetName(), metav1.GetOptions{})
		release()
		switch {
		case apierrors.IsNotFound(err):
			live = nil
		case err != nil:
			return nil, fmt.Errorf("%s: read for ignoreDifferences: %s", describe(o), serverMessage(err))
		}
	}
	out, _, err := ig.ForApply(o, live)
	return out, err
}

// resourceFor returns the dynamic client for o's kind and scope.
func (e *Engine) resourceFor(o *unstructured.Unstructured) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	gvk := o.GroupVersionKind()
	m, err := e.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil, fmt.Errorf("%s: the cluster does not serve %s; install its CRD first (in this App or one it depends on)", describe(o), gvk.GroupVersion().WithKind(gvk.Kind))
		}
		return nil, nil, fmt.Errorf("%s: %w", describe(o), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return nil, nil, fmt.Errorf("%s: namespaced kind without a namespace; set metadata.namespace or the App's destination namespace", describe(o))
		}
		return e.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()), m, nil
	}
	if o.GetNamespace() != "" {
		return nil, nil, fmt.Errorf("%s: cluster-scoped kind with metadata.namespace %q; remove the namespace", describe(o), o.GetNamespace())
	}
	return e.Dynamic.Resource(m.Resource), m, nil
}

// maxTimeoutRetries is how often an apply the apiserver timed out is sent
// again within one sync, after timeoutBackoff times the attempt.
const (
	maxTimeoutRetries = 2
	timeoutBackoff    = time.Second
)

// applyObject server-side applies o. When other managers own fields o
// sets, what happens depends on who they are: a person's edit (kubectl and
// other interactive tools, see humanManager) is drift, and tend takes the
// field back; a controller's field (an autoscaler's replicas, an injector's
// caBundle) is left to it, o is applied without it and a warning says so.
// With force, every field is taken over; with takeOver, the fields of its
// managers are.
func (e *Engine) applyObject(ctx context.Context, o *unstructured.Unstructured, force bool, takeOver *TakeOver, dryRun bool) (out *unstructured.Unstructured, warning string, err error) {
	ri, _, err := e.resourceFor(o)
	if err != nil {
		return nil, "", err
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	desired := o
	timeouts := 0
	for attempt := 0; ; attempt++ {
		release, err := e.acquire(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", describe(o), err)
		}
		out, err = ri.Apply(ctx, o.GetName(), desired, opts)
		release()
		if err == nil {
			return out, warning, nil
		}
		if (apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err)) && timeouts < maxTimeoutRetries && ctx.Err() == nil {
			// The apiserver gave up on a busy moment; an apply is
			// idempotent, so try again rather than fail the sync.
			timeouts++
			attempt--
			select {
			case <-time.After(time.Duration(timeouts) * timeoutBackoff):
			case <-ctx.Done():
				return nil, "", fmt.Errorf("%s: %w", describe(o), serverError{err})
			}
			continue
		}
		conflicts := conflictsOf(err)
		if opts.Force || len(conflicts) == 0 || attempt > 0 {
			return nil, "", fmt.Errorf("%s: %w", describe(o), serverError{err})
		}
		stripped := desired.DeepCopy()
		var left []string
		for _, c := range conflicts {
			if humanManager(c.manager) || c.manager == FieldManager || takeOver.has(c.manager) {
				// Undo a hand edit; or take back a field tend's own
				// controller wrote with an Update (before it patched only
				// finalizers, it took child Apps' durations that way); or
				// take a field over from the tool tend replaces.
				opts.Force = true
				continue
			}
			if !removeFieldPath(stripped.Object, c.path) {
				return nil, "", fmt.Errorf("%s: %s (set tend.dev/force-conflicts: \"true\" on the object or forceConflicts on the App to take these fields over)", describe(o), serverMessage(err))
			}
			left = append(left, c.field+" ("+c.manager+")")
		}
		desired = stripped
		if len(left) > 0 {
			warning = fmt.Sprintf("%s: fields left to the controllers that own them: %s; set tend.dev/force-conflicts: \"true\" to take them over", describe(o), strings.Join(left, ", "))
		}
	}
}

// humanManager reports whether a field manager is a person's tool rather
// than a controller: kubectl's managers (kubectl-edit, kubectl-patch,
// kubectl-client-side-apply, ...), k9s, and the dashboard's browser agents.
// Their changes to fields tend applies are drift.
func humanManager(m string) bool {
	for _, p := range []string{"kubectl", "k9s", "Mozilla", "before-first-apply"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

type conflict struct {
	field, manager string
	path           []pathElem
}

// conflictsOf extracts field-manager conflicts from an apply error.
func conflictsOf(err error) []conflict {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Reason != metav1.StatusReasonConflict || se.Status().Details == nil {
		return nil
	}
	var out []conflict
	for _, c := range se.Status().Details.Causes {
		if c.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		p, ok := parseFieldPath(c.Field)
		if !ok {
			return nil
		}
		mgr := c.Message
		if m := managerRe.FindStringSubmatch(c.Message); m != nil {
			mgr = m[1]
		}
		out = append(out, conflict{field: c.Field, manager: mgr, path: p})
	}
	return out
}

var managerRe = regexp.MustCompile(`conflict with "([^"]+)"`)

// serverError shows an API error as the server's message, still
// recognisable with apierrors' predicates.
type serverError struct{ err error }

func (e serverError) Error() string { return serverMessage(e.err) }
func (e serverError) Unwrap() error { return e.err }

func serverMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}

// pathElem is one step of a field path: a map key, or a list item selected
// by key fields.
type pathElem struct {
	key string
	sel map[string]string
}

var selectorRe = regexp.MustCompile(`^\[(.*)\]`)

// parseFieldPath parses the apiserver's conflict field notation, e.g.
// .spec.replicas or .spec.template.spec.containers[name="web"].image.
func parseFieldPath(s string) ([]pathElem, bool) {
	var out []pathElem
	for len(s) > 0 {
		switch {
		case s[0] == '.':
			s = s[1:]
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return nil, false
			}
			out = append(out, pathElem{key: s[:end]})
			s = s[end:]
		case s[0] == '[':
			m := selectorRe.FindStringSubmatch(s)
			if m == nil {
				return nil, false
			}
			sel := map[string]string{}
			for _, kv := range strings.Split(m[1], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, false
				}
				sel[k] = strings.Trim(v, `"`)
			}
			out = append(out, pathElem{sel: sel})
			s = s[len(m[0]):]
		default:
			return nil, false
		}
	}
	return out, len(out) > 0
}

// removeFieldPath deletes the field at p from obj; it reports false when
// the path does not lead anywhere it can remove.
func removeFieldPath(obj map[string]any, p []pathElem) bool {
	var cur any = obj
	for i, el := range p {
		last := i == len(p)-1
		switch c := cur.(type) {
		case map[string]any:
			if el.sel != nil {
				return false
			}
			if last {
				if _, ok := c[el.key]; !ok {
					return false
				}
				delete(c, el.key)
				return true
			}
			cur = c[el.key]
		case []any:
			if el.sel == nil {
				return false
			}
			idx := -1
			for j, item := range c {
				m, ok := item.(map[string]any)
				if !ok {
					continue
				}
				match := true
				for k, v := range el.sel {
					if fmt.Sprint(m[k]) != v {
						match = false
						break
					}
				}
				if match {
					idx = j
					break
				}
			}
			if idx < 0 || last {
				return false
			}
			cur = c[idx]
		default:
			return false
		}
	}
	return false
}

// joinMessages joins the non-empty ones with "; ".
func joinMessages(msgs ...string) string {
	var out []string
	for _, m := range msgs {
		if m != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, "; ")
}
