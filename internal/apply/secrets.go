package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/apply/secret"
)

// Secrets with generated values (tend.dev/generate, see package secret) are
// applied like any object, with the generated keys added at apply time:
//
//   - The inventory hash is of the object as git declares it (plus the
//     owner annotation and replication label), never of the values, so a
//     re-sync with nothing changed in git compares equal and sends nothing.
//   - prepare reads the watch cache (where values are hashes) to see whether
//     a generated key is missing or a rotation was requested; only then, or
//     when git changed the Secret, is it applied.
//   - An apply reads the live Secret from the API server (the cache has no
//     values) and carries every existing value forward, so applying never
//     rotates; keys it lacks, and keys a pending rotation names, get new
//     random values.
//
// Values go only into the apply request. Messages name keys, never values,
// and an apply error is scrubbed of the values it carried.

// refuseReplica returns why tend does not apply over live, a copy that
// replication keeps, or "".
func refuseReplica(live *unstructured.Unstructured) string {
	if live == nil || live.GetLabels()[secret.LabelReplicate] != secret.ReplicateCopy {
		return ""
	}
	return fmt.Sprintf("is a copy of Secret %s kept by tend's replication (%s); an App cannot apply it too: rename it in git, or stop replicating %s into namespace %s",
		live.GetAnnotations()[secret.AnnotationReplicaOf], secret.AnnotationReplicateTo, live.GetAnnotations()[secret.AnnotationReplicaOf], live.GetNamespace())
}

// withValues returns a copy of the Secret o with its generated values, read
// from the live Secret or created, and what was generated. For other
// objects it returns o and nil.
func (e *Engine) withValues(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, *secret.Filled, error) {
	if !secret.IsSecret(o) || len(secret.Generated(o)) == 0 {
		return o, nil, nil
	}
	ri, _, err := e.resourceFor(o)
	if err != nil {
		return nil, nil, err
	}
	live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, nil, fmt.Errorf("%s: read the live Secret for its generated values: %s", describe(o), serverMessage(err))
	}
	cp := o.DeepCopy()
	filled, err := secret.Fill(cp, live)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", describe(o), err)
	}
	return cp, filled, nil
}
