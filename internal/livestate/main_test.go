package livestate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	configMapGVK  = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	secretGVK     = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	configMapGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// newCache returns a Cache for env's cluster that is closed when t ends.
func newCache(t *testing.T, cfg *rest.Config, opts livestate.Options) *livestate.Cache {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	}
	c, err := livestate.New(cfg, mapper, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func watch(t *testing.T, c *livestate.Cache, gvk schema.GroupVersionKind) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Watch(ctx, gvk); err != nil {
		t.Fatalf("Watch(%s): %v", gvk, err)
	}
}

func dynamicClient(t *testing.T, cfg *rest.Config) *dynamic.DynamicClient {
	t.Helper()
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// apply server-side applies obj as manager, forcing conflicts, and returns
// the API server's response.
func apply(t *testing.T, dc dynamic.Interface, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, manager string) *unstructured.Unstructured {
	t.Helper()
	out, err := dc.Resource(gvr).Namespace(obj.GetNamespace()).Apply(context.Background(), obj.GetName(), obj,
		metav1.ApplyOptions{FieldManager: manager, Force: true})
	if err != nil {
		t.Fatalf("apply %s/%s as %s: %v", obj.GetNamespace(), obj.GetName(), manager, err)
	}
	return out
}

func configMap(ns, name string, data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"data":       data,
	}}
}

// eventually polls cond until it returns "" or 20 seconds pass.
func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event is one handler call, reduced to what tests check.
type event struct {
	kind    schema.GroupVersionKind
	op      string // add, update, delete
	name    string
	oldData string // data["k"] of old
	newData string // data["k"] of new
}

// recorder is a Handler that keeps the events of one namespace.
type recorder struct {
	ns     string
	mu     sync.Mutex
	events []event
}

var _ livestate.Handler = (*recorder)(nil)

func (r *recorder) OnChange(gvk schema.GroupVersionKind, old, new *unstructured.Unstructured) {
	obj := new
	if obj == nil {
		obj = old
	}
	if obj.GetNamespace() != r.ns {
		return
	}
	e := event{kind: gvk, name: obj.GetName()}
	switch {
	case old == nil:
		e.op = "add"
	case new == nil:
		e.op = "delete"
	default:
		e.op = "update"
	}
	if old != nil {
		e.oldData, _, _ = unstructured.NestedString(old.Object, "data", "k")
	}
	if new != nil {
		e.newData, _, _ = unstructured.NestedString(new.Object, "data", "k")
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// waitFor waits for an event equal to want and returns the events seen.
func (r *recorder) waitFor(t *testing.T, want event) {
	t.Helper()
	eventually(t, func() string {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.events {
			if e == want {
				return ""
			}
		}
		return fmt.Sprintf("no event %+v among %+v", want, r.events)
	})
}
