// Package appctl holds the requests people make of Apps — sync now, fetch
// the Source now, suspend, resume, roll back — as the CLI and the dashboard both make
// them: each is one patch of the App or its Source that the controller acts
// on, so there is one path per action whoever asks.
package appctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// SyncOptions of a requested sync.
type SyncOptions struct {
	// Prune deletes objects that left git, even when the App does not
	// prune on its own.
	Prune bool
	// Force replaces objects whose changes cannot be applied in place.
	Force bool
}

// RequestSync asks the controller to sync the App now and returns the
// request's token: the App's status.lastHandledRequest equals it once the
// controller handled the request. A suspended App is refused.
func RequestSync(ctx context.Context, c client.Client, app *tendv1.App, o SyncOptions) (string, error) {
	if app.Spec.Suspend {
		return "", &InvalidRequest{fmt.Sprintf("the App %s/%s is suspended (spec.suspend): the controller does not sync it; resume it first", app.Namespace, app.Name)}
	}
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	var opts any
	var names []string
	if o.Prune {
		names = append(names, "prune")
	}
	if o.Force {
		names = append(names, "force")
	}
	if len(names) > 0 {
		opts = strings.Join(names, ",")
	}
	obj := &tendv1.App{}
	obj.Namespace, obj.Name = app.Namespace, app.Name
	if err := annotate(ctx, c, obj, map[string]any{tendv1.AnnotationRequestedAt: requested, tendv1.AnnotationSyncOptions: opts}); err != nil {
		return "", fmt.Errorf("request a sync of App %s/%s: %w", app.Namespace, app.Name, err)
	}
	return requested, nil
}

// RequestRefresh asks the controller to fetch the App's Source now (a
// push webhook does the same); the App renders the new revision when
// there is one.
func RequestRefresh(ctx context.Context, c client.Client, app *tendv1.App) error {
	ns := app.Spec.SourceRef.Namespace
	if ns == "" {
		ns = app.Namespace
	}
	obj := &tendv1.Source{}
	obj.Namespace, obj.Name = ns, app.Spec.SourceRef.Name
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	if err := annotate(ctx, c, obj, map[string]any{tendv1.AnnotationRequestedAt: requested}); err != nil {
		return fmt.Errorf("request a fetch of Source %s/%s: %w", ns, obj.Name, err)
	}
	return nil
}

// SetSuspend suspends (nothing is applied or pruned) or resumes the App.
func SetSuspend(ctx context.Context, c client.Client, app *tendv1.App, suspend bool) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"suspend": suspend}})
	if err != nil {
		return err
	}
	obj := &tendv1.App{}
	obj.Namespace, obj.Name = app.Namespace, app.Name
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		verb := "resume"
		if suspend {
			verb = "suspend"
		}
		return fmt.Errorf("%s App %s/%s: %w", verb, app.Namespace, app.Name, err)
	}
	return nil
}

func annotate(ctx context.Context, c client.Client, obj client.Object, annotations map[string]any) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return err
	}
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// InvalidRequest is a request the App's state refuses: a sync of a
// suspended App, a rollback to a sync that is not in its history. Nothing
// was changed.
type InvalidRequest struct{ Msg string }

func (e *InvalidRequest) Error() string { return e.Msg }

// Rollback pins the App to the revision of sync id of its history
// (spec.targetRevision): tend applies that revision and keeps it until
// Unpin. It returns the history entry pinned to.
func Rollback(ctx context.Context, c client.Client, app *tendv1.App, id int64) (*tendv1.SyncRecord, error) {
	name := app.Namespace + "/" + app.Name
	var rec *tendv1.SyncRecord
	var ids []string
	for i, r := range app.Status.History {
		ids = append(ids, strconv.FormatInt(r.ID, 10))
		if r.ID == id {
			rec = &app.Status.History[i]
		}
	}
	switch {
	case len(app.Spec.Sources) > 0:
		return nil, &InvalidRequest{fmt.Sprintf("the App %s renders %d Sources (spec.sources), and a rollback pins one revision; roll back by reverting in git, or pin each Source's own ref (spec.git.ref)", name, len(app.Spec.Sources)+1)}
	case rec == nil && len(ids) == 0:
		return nil, &InvalidRequest{fmt.Sprintf("the App %s has no sync history yet", name)}
	case rec == nil:
		return nil, &InvalidRequest{fmt.Sprintf("the App %s has no sync %d in its history (IDs: %s)", name, id, strings.Join(ids, ", "))}
	case !IsCommit(rec.Revision):
		return nil, &InvalidRequest{fmt.Sprintf("sync %d applied %q, not a git commit; only Apps of git Sources can be pinned (set spec.chart.version to pin a chart)", id, rec.Revision)}
	}
	if err := setTargetRevision(ctx, c, app, rec.Revision); err != nil {
		return nil, err
	}
	return rec, nil
}

// Unpin clears spec.targetRevision: the App follows its Source again.
func Unpin(ctx context.Context, c client.Client, app *tendv1.App) error {
	return setTargetRevision(ctx, c, app, nil)
}

// IsCommit says whether rev is a full git commit hash.
func IsCommit(rev string) bool {
	return len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == ""
}

func setTargetRevision(ctx context.Context, c client.Client, app *tendv1.App, rev any) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"targetRevision": rev}})
	if err != nil {
		return err
	}
	obj := &tendv1.App{}
	obj.Namespace, obj.Name = app.Namespace, app.Name
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("update App %s/%s: %w", app.Namespace, app.Name, err)
	}
	return nil
}
