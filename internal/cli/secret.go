package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/apply/secret"
	"github.com/tend-gitops/tend/internal/controller"
)

// fieldManagerCLI is the field manager of the CLI's own writes.
const fieldManagerCLI = "tend-cli"

func (m *Main) secretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Work with Secrets whose values tend generates",
		Long: `Work with Secrets whose values tend generates: a Secret in git annotated
tend.dev/generate gets random values for the keys it lists at its first sync,
and keeps them at every later sync. docs/secrets.md explains the annotations.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(m.secretRotateCommand())
	return cmd
}

// rotateOptions are the flags of `tend secret rotate`.
type rotateOptions struct {
	keys    []string
	wait    bool
	timeout time.Duration
}

func (m *Main) secretRotateCommand() *cobra.Command {
	var (
		kf kubeFlags
		o  = rotateOptions{wait: true, timeout: 5 * time.Minute}
	)
	cmd := &cobra.Command{
		Use:         "rotate [NAMESPACE/]NAME",
		Short:       "Give a Secret's generated keys new values at its App's next sync",
		Annotations: map[string]string{annotationExit1: "when the sync that should rotate fails, or does not rotate"},
		Long: `Ask tend for new values of the keys it generates in a Secret (those listed in
its tend.dev/generate annotation and not set in git): every such key, or only
those named with --key.

The command records the request on the live Secret (annotations
tend.dev/rotate-requested-at and tend.dev/rotate-keys), then asks the
controller to sync the App that applied the Secret, as ` + "`tend sync APP`" + ` does, and
waits until the sync has rotated the values (the Secret's tend.dev/rotated-at
then equals the request). Values are never printed. Syncs rotate nothing
unless asked; workloads that read the Secret at start need a restart to use
the new values.

NAME is looked up in -n (default: the context's namespace) unless given as
NAMESPACE/NAME.`,
		Example: `  tend secret rotate db-credentials -n shop
  tend secret rotate shop/db-credentials --key password
  tend secret rotate shop/api-keys --key stripe,github --wait=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kf.connect()
			if err != nil {
				return err
			}
			ns, name := k.ns, args[0]
			if before, after, ok := strings.Cut(args[0], "/"); ok {
				if before == "" || after == "" || strings.Contains(after, "/") {
					return &exitError{code: ExitUsage, err: fmt.Errorf("%q: want NAME or NAMESPACE/NAME", args[0])}
				}
				ns, name = before, after
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			return m.rotate(ctx, k, ns, name, o)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.StringSliceVar(&o.keys, "key", nil, "rotate only these generated keys (repeat or separate with commas; default: every generated key)")
	f.BoolVar(&o.wait, "wait", o.wait, "wait until the controller has rotated the values")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "how long to wait for the rotation")
	return cmd
}

// rotate requests new values for the generated keys of Secret ns/name
// and, with o.wait, syncs its App until they are rotated.
func (m *Main) rotate(ctx context.Context, k *kube, ns, name string, o rotateOptions) error {
	ref := ns + "/" + name
	sec, err := k.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("no Secret %s in the cluster", ref)}
	}
	if err != nil {
		return k.wrap(fmt.Errorf("read Secret %s: %w", ref, err))
	}
	spec, err := secret.ParseSpec(sec.Annotations)
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the Secret %s: %w", ref, err)}
	}
	if spec == nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the Secret %s has no %s annotation: tend generates none of its values, so it has nothing to rotate (change values you manage in git)", ref, secret.AnnotationGenerate)}
	}
	var keys []string
	for _, key := range o.keys {
		key = strings.TrimSpace(key)
		if key == "" {
			continue
		}
		if !spec.Has(key) {
			return &exitError{code: ExitUsage, err: fmt.Errorf("the Secret %s: tend does not generate key %q; it generates %s", ref, key, strings.Join(spec.Names(), ", "))}
		}
		keys = append(keys, key)
	}
	owner, ok := secretOwner(sec)
	if !ok {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the Secret %s has no %s annotation: no App applied it, so no sync can rotate its values", ref, apply.AnnotationOwner)}
	}
	var app tendv1.App
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: owner.Namespace, Name: owner.Name}, &app); err != nil {
		if apierrors.IsNotFound(err) {
			return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s that applied Secret %s is not in this cluster (an App that deploys to a remote Cluster: point --kubeconfig at the cluster its Secrets are in, and sync it from there)", owner, ref)}
		}
		return k.wrap(err)
	}
	if app.Spec.Suspend {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s that applied Secret %s is suspended (spec.suspend): the controller does not sync it; resume it first", owner, ref)}
	}

	requested := time.Now().UTC().Format(time.RFC3339Nano)
	var keyList any // null removes an earlier request's list
	if len(keys) > 0 {
		keyList = strings.Join(keys, ",")
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		secret.AnnotationRotateRequestedAt: requested,
		secret.AnnotationRotateKeys:        keyList,
	}}})
	if err != nil {
		return err
	}
	if _, err := k.cs.CoreV1().Secrets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManagerCLI}); err != nil {
		return k.wrap(fmt.Errorf("request the rotation of Secret %s: %w", ref, err))
	}
	which := "every generated key"
	switch len(keys) {
	case 0:
	case 1:
		which = "key " + keys[0]
	default:
		which = "keys " + strings.Join(keys, ", ")
	}
	fmt.Fprintf(m.Stdout, "► asked for new values of %s of Secret %s\n", which, ref)

	// The controller sees the request through its watch of the Secret; a
	// sync it starts before the watch event arrives does not rotate, so a
	// sync that did not is asked for again.
	const attempts = 3
	for i := 0; i < attempts; i++ {
		handled, err := requestSync(ctx, k, &app)
		if err != nil {
			return err
		}
		if i == 0 {
			fmt.Fprintf(m.Stdout, "► asked the controller to sync App %s\n", owner)
		}
		if !o.wait {
			fmt.Fprintf(m.Stdout, "`kubectl get secret -n %s %s -o jsonpath='{.metadata.annotations.tend\\.dev/rotated-at}'` shows %s once rotated\n", ns, name, requested)
			return nil
		}
		a, err := waitApp(ctx, k, &app, func(a *tendv1.App) bool { return a.Status.LastHandledRequest == handled })
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{code: ExitDiff, err: fmt.Errorf("the controller did not sync App %s within %s; is it running? `tend logs %s -n %s` shows its logs", owner, o.timeout, owner.Name, owner.Namespace)}
			}
			return err
		}
		if len(a.Status.History) > 0 && a.Status.History[0].Result != "Succeeded" {
			return &exitError{code: ExitDiff, err: fmt.Errorf("the sync of App %s failed, Secret %s was not rotated: %s", owner, ref, a.Status.History[0].Message)}
		}
		cur, err := k.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return k.wrap(fmt.Errorf("read Secret %s: %w", ref, err))
		}
		if cur.Annotations[secret.AnnotationRotatedAt] == requested {
			fmt.Fprintf(m.Stdout, "rotated %s of Secret %s; restart the workloads that read it at start\n", which, ref)
			if kept := keptKeys(sec, cur, spec, keys); len(kept) > 0 {
				fmt.Fprintf(m.Stderr, "warning: not rotated, git sets their values (tend rotates only the values it generates): %s\n", strings.Join(kept, ", "))
			}
			return nil
		}
		if cur.Annotations[secret.AnnotationRotateRequestedAt] != requested {
			return &exitError{code: ExitDiff, err: fmt.Errorf("the Secret %s: another rotation was requested meanwhile (%s); its request replaces this one", ref, cur.Annotations[secret.AnnotationRotateRequestedAt])}
		}
		app = *a
	}
	return &exitError{code: ExitDiff, err: fmt.Errorf("the controller synced App %s %d times without rotating Secret %s; is the Secret still in the App's directory in git? `tend logs %s -n %s` shows the controller's logs", owner, attempts, ref, owner.Name, owner.Namespace)}
}

// keptKeys returns the keys asked to rotate (all of spec's when keys is
// empty) whose values did not change from before to after: keys git sets.
func keptKeys(before, after *corev1.Secret, spec *secret.Spec, keys []string) []string {
	if len(keys) == 0 {
		keys = spec.Names()
	}
	var out []string
	for _, k := range keys {
		if old, ok := before.Data[k]; ok && bytes.Equal(old, after.Data[k]) {
			out = append(out, k)
		}
	}
	return out
}

// requestSync sets the App's tend.dev/requested-at (and clears sync
// options an earlier `tend sync` left) and returns the value set.
func requestSync(ctx context.Context, k *kube, app *tendv1.App) (string, error) {
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		controller.AnnotationRequestedAt: requested,
		controller.AnnotationSyncOptions: nil,
	}}})
	if err != nil {
		return "", err
	}
	obj := &tendv1.App{}
	obj.Namespace, obj.Name = app.Namespace, app.Name
	if err := k.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return "", k.wrap(fmt.Errorf("request a sync of App %s/%s: %w", app.Namespace, app.Name, err))
	}
	return requested, nil
}

// secretOwner returns the App that applied s.
func secretOwner(s *corev1.Secret) (apply.AppRef, bool) {
	ns, name, ok := strings.Cut(s.Annotations[apply.AnnotationOwner], "/")
	if !ok || ns == "" || name == "" {
		return apply.AppRef{}, false
	}
	return apply.AppRef{Namespace: ns, Name: name}, true
}
