package appspec

import (
	"context"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/render"
)

// varName is what Flux accepts as a substitution variable's name.
var varName = regexp.MustCompile(`^[_[:alpha:]][_[:alpha:][:digit:]]*$`)

// postBuild reads an App's spec.postBuild: the variables of its
// substituteFrom objects in order, then its substitute map over them.
func (r *optionsReader) postBuild(ctx context.Context, ns string, pb *tendv1.PostBuild) (*render.PostBuild, error) {
	out := &render.PostBuild{Vars: map[string]string{}, Strict: pb.Strict}
	switch pb.SubstituteStrategy {
	case "", "WithVariables":
	case "Always":
		out.Always = true
	default:
		return nil, objstatus.Permanentf("spec.postBuild.substituteStrategy %q: want WithVariables or Always", pb.SubstituteStrategy)
	}
	for i, ref := range pb.SubstituteFrom {
		field := fmt.Sprintf("spec.postBuild.substituteFrom[%d]", i)
		vars, err := r.substituteFrom(ctx, ns, ref)
		if err != nil {
			return nil, fieldError(field, err)
		}
		for k, v := range vars {
			if !varName.MatchString(k) {
				return nil, objstatus.Permanentf("%s: %s %s/%s key %q is not a variable name (letters, digits and _, not starting with a digit)", field, ref.Kind, ns, ref.Name, k)
			}
			out.Vars[k] = v
		}
	}
	for k, v := range pb.Substitute {
		if !varName.MatchString(k) {
			return nil, objstatus.Permanentf("spec.postBuild.substitute: %q is not a variable name (letters, digits and _, not starting with a digit)", k)
		}
		out.Vars[k] = v
	}
	return out, nil
}

// substituteFrom reads every key of a ConfigMap or Secret as a variable.
func (r *optionsReader) substituteFrom(ctx context.Context, ns string, ref tendv1.SubstituteReference) (map[string]string, error) {
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	vars := map[string]string{}
	switch ref.Kind {
	case "Secret":
		var sec corev1.Secret
		if err := r.Client.Get(ctx, key, &sec); err != nil {
			switch {
			case apierrors.IsNotFound(err) && ref.Optional:
				return nil, nil
			case apierrors.IsNotFound(err):
				return nil, objstatus.Permanentf("the Secret %s was not found", key)
			}
			return nil, fmt.Errorf("read Secret %s: %w", key, err)
		}
		for k, v := range sec.Data {
			vars[k] = string(v)
		}
	case "ConfigMap":
		var cm corev1.ConfigMap
		if err := r.Client.Get(ctx, key, &cm); err != nil {
			switch {
			case apierrors.IsNotFound(err) && ref.Optional:
				return nil, nil
			case apierrors.IsNotFound(err):
				return nil, objstatus.Permanentf("the ConfigMap %s was not found", key)
			}
			return nil, fmt.Errorf("read ConfigMap %s: %w", key, err)
		}
		for k, v := range cm.Data {
			vars[k] = v
		}
	default:
		return nil, objstatus.Permanentf("kind %q: want ConfigMap or Secret", ref.Kind)
	}
	return vars, nil
}
