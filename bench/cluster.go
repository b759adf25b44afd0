package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/config"
)

// cluster is the benchmark's admin view of the control plane.
type cluster struct {
	Kubeconfig string
	Config     *rest.Config
	Clientset  kubernetes.Interface
	Client     client.Client
	Dynamic    dynamic.Interface
}

// benchClusterDir is where the benchmark starts (or reuses) its own local
// control plane when no -kubeconfig is given: beside the one `make test`
// uses, never inside the work tree.
func benchClusterDir() string {
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, _ := os.UserHomeDir()
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "tend", "cluster", "bench")
}

// clusterUp starts or reuses the local control plane in dir with
// tools/cluster and returns its kubeconfig.
func clusterUp(ctx context.Context, root, dir string, logf func(string, ...any)) (string, error) {
	logf("starting (or reusing) the local control plane in %s", dir)
	cmd := exec.CommandContext(ctx, "go", "run", ".", "up", "--dir", dir)
	cmd.Dir = filepath.Join(root, "tools", "cluster")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tools/cluster up --dir %s: %w\n%s", dir, err, stderr.String())
	}
	return filepath.Join(dir, "kubeconfig"), nil
}

// moduleRoot finds the directory of tend's go.mod above the working
// directory (go run ./bench runs in the root; go test in bench/).
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/tend-gitops/tend\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cannot find tend's go.mod above %s: run the benchmark inside the repository", wd)
		}
	}
}

func newCluster(kubeconfig string) (*cluster, error) {
	// controller-runtime's informer logs nothing the benchmark needs.
	ctrllog.SetLogger(logr.Discard())
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	// The benchmark's own requests must never be what limits a phase.
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := tendv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &cluster{Kubeconfig: kubeconfig, Config: cfg, Clientset: cs, Client: cl, Dynamic: dyn}, nil
}

// ensureCRDs installs tend's CRDs when one is missing and waits until all
// are Established. CRDs that exist are left alone: other users of a shared
// cluster may depend on them.
func (c *cluster) ensureCRDs(ctx context.Context) error {
	ext, err := apiextclient.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	files, err := fs.Glob(config.CRDs, "crd/*.yaml")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs embedded from config/crd (%v)", err)
	}
	gvr := apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	for _, f := range files {
		raw, err := fs.ReadFile(config.CRDs, f)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, u.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = c.Dynamic.Resource(gvr).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "tend-bench", Force: true})
		}
		if err != nil {
			return fmt.Errorf("CRD %s: %w", u.GetName(), err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, u.GetName(), metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not Established after a minute (%v)", u.GetName(), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *apiextv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
			return true
		}
	}
	return false
}

// benchLabel marks the namespaces the benchmark creates, so leftovers of an
// interrupted run are easy to find: kubectl get ns -l tend.dev/bench.
const benchLabel = "tend.dev/bench"

func randomID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *cluster) createNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: "true"}}}
	if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// deleteNamespace deletes a namespace and waits until it is gone (its
// content deleted by the namespace controller), up to timeout. Apps that
// still carry tend's prune finalizer are released first: the controller
// that would remove it is stopped by then.
func (c *cluster) deleteNamespace(ctx context.Context, name string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.releaseApps(ctx, name); err != nil {
		return 0, err
	}
	err := c.Clientset.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("delete namespace %s: %w", name, err)
	}
	for {
		_, err := c.Clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("namespace %s still terminating after %s", name, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(time.Second):
		}
		// A finalizer added by a reconcile that raced the stop.
		if err := c.releaseApps(ctx, name); err != nil {
			return time.Since(start), err
		}
	}
}

// releaseApps removes finalizers from the Apps in ns.
func (c *cluster) releaseApps(ctx context.Context, ns string) error {
	var apps tendv1.AppList
	if err := c.Client.List(ctx, &apps, client.InNamespace(ns)); err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, context.Canceled) {
			return nil
		}
		return fmt.Errorf("list Apps in %s: %w", ns, err)
	}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
	for i := range apps.Items {
		a := &apps.Items[i]
		if len(a.Finalizers) == 0 {
			continue
		}
		if err := c.Client.Patch(ctx, a, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("release App %s/%s: %w", ns, a.Name, err)
		}
	}
	return nil
}

// leftoverNamespaces lists namespaces an earlier benchmark run left behind.
func (c *cluster) leftoverNamespaces(ctx context.Context) ([]string, error) {
	list, err := c.Clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: benchLabel})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ns := range list.Items {
		if strings.HasPrefix(ns.Name, "bench-") {
			names = append(names, ns.Name)
		}
	}
	return names, nil
}
