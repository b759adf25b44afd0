package cluster

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// Clusters hands out connections: the local cluster, and remote ones named
// by Cluster objects (rebuilt when their kubeconfig Secret changes).
type Clusters struct {
	Local  *Conn
	Client client.Reader // reads Cluster objects
	// ReadSecret reads the kubeconfig Secret key of the Cluster named
	// cluster; nil reads it with Client. The controller reads it from a
	// watch, so an App's reconcile sends no request for it and a new
	// kubeconfig reconciles the Cluster's Apps.
	ReadSecret func(ctx context.Context, cluster, key types.NamespacedName, sec *corev1.Secret) error
	Opts       ConnOptions

	mu     sync.Mutex
	remote map[types.NamespacedName]*Conn
}

// Get returns the connection for an App in namespace ns with destination
// ref (nil: the local cluster).
func (cs *Clusters) Get(ctx context.Context, ns string, ref *tendv1.LocalObjectReference) (*Conn, error) {
	if ref == nil || ref.Name == "" {
		return cs.Local, nil
	}
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	var cl tendv1.Cluster
	if err := cs.Client.Get(ctx, key, &cl); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("the Cluster %s does not exist; create it or fix spec.destination.clusterRef", key)
		}
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	if cl.Spec.Suspend {
		return nil, objstatus.Permanentf("cluster %s is suspended (its spec.suspend)", key)
	}
	secKey := cl.Spec.KubeconfigSecretRef
	var sec corev1.Secret
	if err := cs.readSecret(ctx, key, types.NamespacedName{Namespace: ns, Name: secKey.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("cluster %s: the kubeconfig Secret %s does not exist; create it or fix the Cluster's kubeconfigSecretRef", key, secKey.Name)
		}
		return nil, fmt.Errorf("cluster %s: kubeconfig Secret %s: %w", key, secKey.Name, err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.remote[key]; ok && c.secretVers == sec.ResourceVersion {
		return c, nil
	}
	cfg, _, err := ConfigFromSecret(&sec, secKey)
	if err != nil {
		return nil, objstatus.Permanentf("cluster %s: %v", key, err)
	}
	c, err := NewConn(key.String(), cfg, cs.Opts)
	if err != nil {
		return nil, err
	}
	c.secretVers = sec.ResourceVersion
	if old, ok := cs.remote[key]; ok {
		old.Close()
	}
	if cs.remote == nil {
		cs.remote = map[types.NamespacedName]*Conn{}
	}
	cs.remote[key] = c
	return c, nil
}

func (cs *Clusters) readSecret(ctx context.Context, cluster, key types.NamespacedName, sec *corev1.Secret) error {
	if cs.ReadSecret != nil {
		return cs.ReadSecret(ctx, cluster, key, sec)
	}
	return cs.Client.Get(ctx, key, sec)
}

// Drop closes and forgets the connection to a deleted Cluster, so its
// watches stop.
func (cs *Clusters) Drop(key types.NamespacedName) {
	cs.mu.Lock()
	c, ok := cs.remote[key]
	delete(cs.remote, key)
	cs.mu.Unlock()
	if ok {
		c.Close()
	}
}

// All lists the live connections.
func (cs *Clusters) All() []*Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := []*Conn{cs.Local}
	for _, c := range cs.remote {
		out = append(out, c)
	}
	return out
}
