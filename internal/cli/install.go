package cli

import (
	"context"
	"fmt"
	"io"
	"regexp"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/tend-gitops/tend/internal/install"
)

// installOptions are the flags of `tend install`.
type installOptions struct {
	install.Options
	LocalController bool
	Export          bool
}

func (m *Main) installCommand() *cobra.Command {
	var (
		kf kubeFlags
		o  installOptions
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install tend (CRDs, RBAC, controller) into a cluster",
		Long: `Install tend's CRDs, RBAC, Service and controller Deployment into the cluster
with server-side apply, or print them (--export). Safe to re-run; running it
with a newer tend upgrades the install.

--compat argo,flux also installs the CRDs of the Argo CD and Flux kinds tend
reconciles as they are (Argo CD Applications and ApplicationSets; Flux GitRepositories,
HelmRepositories, Kustomizations and HelmReleases), lets the controller
write them, and starts it with --compat. A CRD that Argo CD or Flux
installed is left as it is. See docs/adopt.md.`,
		Example: `  tend install
  tend install --compat argo,flux
  tend install --compat flux --export > tend.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Version = m.releaseVersion()
			objs, err := install.Manifests(o.Options)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			if o.LocalController {
				objs = withoutController(objs)
			}
			if o.Export {
				b, err := renderManifests(objs)
				if err != nil {
					return err
				}
				_, err = m.Stdout.Write(b)
				return err
			}
			cfg, err := kf.restConfig()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			return installInto(cmd.Context(), cfg, objs, m.Stdout)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.StringVar(&o.Namespace, "tend-namespace", install.DefaultNamespace, "namespace tend runs in")
	f.BoolVar(&o.ClusterAdmin, "cluster-admin", false, "bind tend to cluster-admin instead of its least-privilege role")
	f.StringSliceVar(&o.Compat, "compat", nil, "also reconcile Argo CD (argo) and Flux (flux) objects as they are, and install their CRDs")
	f.StringVar(&o.ArgoDecryptionSecret, "argo-decryption-secret", "", "with --compat argo: the controller's --argo-decryption-secret (the Secret with the SOPS keys Argo CD's repo-server has)")
	f.StringVar(&o.Image, "image", "", "controller image (default "+install.DefaultImageRepo+":<version>)")
	f.IntVar(&o.Replicas, "replicas", install.DefaultReplicas, "controller replicas (one leads, the others stand by)")
	f.BoolVar(&o.LocalController, "local-controller", false, "install everything but the controller Deployment; run `tend controller` yourself")
	f.BoolVar(&o.Export, "export", false, "print the manifests instead of applying them")
	return cmd
}

// installInto applies objs, keeping compat CRDs that Argo CD or Flux
// installed, and waits for the CRDs to be served.
func installInto(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, out io.Writer) error {
	dyn, mapper, err := dynamicClients(cfg)
	if err != nil {
		return err
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	applied := 0
	var kept []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "CustomResourceDefinition" && obj.GetLabels()[install.CompatLabel] != "" {
			live, err := dyn.Resource(crdGVR).Get(ctx, obj.GetName(), metav1.GetOptions{})
			switch {
			case err == nil && live.GetLabels()[install.CompatLabel] != obj.GetLabels()[install.CompatLabel]:
				fmt.Fprintf(out, "  kept CustomResourceDefinition %s: installed by %s\n", obj.GetName(), orDash(live.GetLabels()["app.kubernetes.io/part-of"], "another tool"))
				kept = append(kept, obj)
				continue
			case err != nil && !apierrors.IsNotFound(err):
				return bootstrapUnreachable(cfg, err)
			}
		}
		if err := bootstrapApply(ctx, dyn, mapper, obj); err != nil {
			return err
		}
		applied++
	}
	if err := waitCRDs(ctx, dyn, objs); err != nil {
		return err
	}
	fmt.Fprintf(out, "► installed tend: %d objects applied", applied)
	if len(kept) > 0 {
		fmt.Fprintf(out, ", %d CRDs kept as they were", len(kept))
	}
	fmt.Fprintln(out)
	return nil
}

// releaseTag matches the versions of releases (v1.2.3, v1.2.3-rc.1), not
// those of builds between them (v1.2.3-4-gabcdef0, -dirty, dev).
var releaseTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)(\.?[0-9]+)*)?$`)

// releaseVersion is the version the install manifests label and tag the
// image with: this binary's, when it is a release; "" (latest) otherwise.
func (m *Main) releaseVersion() string {
	if releaseTag.MatchString(m.Build.Version) {
		return m.Build.Version
	}
	return ""
}
