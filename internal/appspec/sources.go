package appspec

import (
	"errors"
	"fmt"
	"strings"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/render"
)

// RevisionSeparator joins the revisions of an App's Sources (spec.sourceRef,
// then each of spec.sources) into the App's revision.
const RevisionSeparator = ", "

// JoinRevisions is the revision of an App rendered from several Sources,
// their revisions in order.
func JoinRevisions(revs []string) string { return strings.Join(revs, RevisionSeparator) }

// CheckSources refuses what an App with spec.sources cannot do: be pinned
// to one revision (spec.targetRevision, which `tend rollback` and
// spec.sync.autoRollback set), since its revision is several Sources'.
// The error is permanent and names the field.
func CheckSources(app *tendv1.App) error {
	if len(app.Spec.Sources) == 0 {
		return nil
	}
	if app.Spec.TargetRevision != "" {
		return objstatus.Permanentf("spec.targetRevision pins the revision of one Source, and this App renders %d (spec.sources): clear it, and pin each Source's own ref (spec.git.ref) instead", len(app.Spec.Sources)+1)
	}
	if app.Spec.Sync.AutoRollback {
		return objstatus.Permanentf("spec.sync.autoRollback rolls back by pinning one Source's revision, and this App renders %d (spec.sources): unset it, and roll back by reverting in git", len(app.Spec.Sources)+1)
	}
	return nil
}

// SourceView is app as it renders its i-th entry of spec.sources: that
// entry's Source, path, chart, Helm and kustomize options in place of the
// App's own, everything else (name, namespace, destination, post-build,
// decryption) the App's. The entry's fields are copied one for one, so
// each means what the App's field of the same name means.
func SourceView(app *tendv1.App, i int) *tendv1.App {
	s := &app.Spec.Sources[i]
	v := app.DeepCopy()
	v.Spec.Sources = nil
	v.Spec.TargetRevision = ""
	v.Spec.SourceRef = s.SourceRef
	v.Spec.Path = s.Path
	v.Spec.Recursive = s.Recursive
	v.Spec.Include = s.Include
	v.Spec.Exclude = s.Exclude
	v.Spec.Chart = s.Chart
	v.Spec.Helm = s.Helm
	v.Spec.Kustomize = s.Kustomize
	return v
}

// SourceField names spec.sources[i] and its Source in errors.
func SourceField(app *tendv1.App, i int) string {
	return fmt.Sprintf("spec.sources[%d] (Source %s)", i, app.Spec.Sources[i].SourceRef.Name)
}

// SourceError names the entry of spec.sources an error of its render
// options or render came from; it stays permanent if it was.
func SourceError(app *tendv1.App, i int, err error) error {
	return fieldError(SourceField(app, i), err)
}

// MergeRenders joins what an App's Sources rendered (spec.sourceRef's
// first) into one set. An object rendered by two of them is an error
// naming both: which one should win is the user's to say.
func MergeRenders(app *tendv1.App, parts []*render.Result) (*render.Result, error) {
	res, err := render.Merge(parts)
	var dup *render.DuplicateError
	if errors.As(err, &dup) {
		return nil, fmt.Errorf("%s is rendered by both %s and %s; keep it in one of them", dup.Object, partName(app, dup.First), partName(app, dup.Second))
	}
	return res, err
}

func partName(app *tendv1.App, i int) string {
	if i == 0 {
		return fmt.Sprintf("spec.sourceRef (Source %s)", app.Spec.SourceRef.Name)
	}
	return SourceField(app, i-1)
}
