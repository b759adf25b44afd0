package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tend-gitops/tend/internal/apply"
)

// ServiceAccountUser is the user name the API server knows the
// ServiceAccount namespace/name by.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// impersonation holds a Conn's engines acting as ServiceAccounts.
type impersonation struct {
	mu      sync.Mutex
	engines map[string]*apply.Engine
	kube    kubernetes.Interface
}

// As returns the engine that acts as the ServiceAccount namespace/name on
// this cluster: its applies, prunes and hooks go through a client that
// impersonates the account, so the account's RBAC decides; it shares the
// connection's watch cache and limits. Engines are kept per account (their
// clients share the connection's TLS transport).
func (c *Conn) As(namespace, name string) (*apply.Engine, error) {
	user := ServiceAccountUser(namespace, name)
	c.imp.mu.Lock()
	defer c.imp.mu.Unlock()
	if e, ok := c.imp.engines[user]; ok {
		return e, nil
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: acting as %s: %w", c.Name, user, err)
	}
	if c.imp.engines == nil {
		c.imp.engines = map[string]*apply.Engine{}
	}
	e := c.Engine.As(dyn)
	c.imp.engines[user] = e
	return e, nil
}

// Access is one thing a ServiceAccount must be allowed to do.
type Access struct {
	Verb      string
	Resource  schema.GroupResource
	Namespace string
	// Object names what needs it, for the message ("ClusterRole admin").
	Object string
}

func (a Access) String() string {
	where := "at the cluster scope"
	if a.Namespace != "" {
		where = "in namespace " + a.Namespace
	}
	return fmt.Sprintf("%s %s %s (%s)", a.Verb, a.Resource, where, a.Object)
}

// ServiceAccountExists says whether namespace/name exists on this
// cluster.
func (c *Conn) ServiceAccountExists(ctx context.Context, namespace, name string) (bool, error) {
	kube, err := c.kube()
	if err != nil {
		return false, err
	}
	_, err = kube.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Denied asks the API server (SubjectAccessReviews) whether the
// ServiceAccount namespace/name may do each of need, and returns what it
// may not, sorted. Requests are asked once per verb, resource and
// namespace, without object names: a grant limited by resourceNames does
// not count.
func (c *Conn) Denied(ctx context.Context, namespace, name string, need []Access) ([]Access, error) {
	kube, err := c.kube()
	if err != nil {
		return nil, err
	}
	user := ServiceAccountUser(namespace, name)
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	type key struct {
		verb, ns string
		res      schema.GroupResource
	}
	asked := map[key]bool{}
	var denied []Access
	for _, a := range need {
		k := key{a.Verb, a.Namespace, a.Resource}
		allowed, ok := asked[k]
		if !ok {
			r, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: a.Namespace, Verb: a.Verb, Group: a.Resource.Group, Resource: a.Resource.Resource,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				return nil, fmt.Errorf("cluster %s: asking what %s may do: %w", c.Name, user, err)
			}
			allowed = r.Status.Allowed
			asked[k] = allowed
		}
		if !allowed {
			denied = append(denied, a)
		}
	}
	sort.Slice(denied, func(i, j int) bool { return denied[i].String() < denied[j].String() })
	return denied, nil
}

// DeniedMessage words denials for a condition: the first few, and how
// many more.
func DeniedMessage(user string, denied []Access) string {
	const shown = 3
	var parts []string
	for i, a := range denied {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(denied)-shown))
			break
		}
		parts = append(parts, a.String())
	}
	return fmt.Sprintf("%s may not %s", user, strings.Join(parts, "; "))
}

func (c *Conn) kube() (kubernetes.Interface, error) {
	c.imp.mu.Lock()
	defer c.imp.mu.Unlock()
	if c.imp.kube == nil {
		k, err := kubernetes.NewForConfig(c.Config)
		if err != nil {
			return nil, err
		}
		c.imp.kube = k
	}
	return c.imp.kube, nil
}
