package health

import (
	corev1 "k8s.io/api/core/v1"
)

// checkPVC: Bound is Healthy, Lost (its volume is gone) is Degraded, and
// Pending is Progressing. A claim whose StorageClass binds on first consumer
// stays Pending until a Pod uses it; see docs/health.md.
func checkPVC(pvc *corev1.PersistentVolumeClaim) status {
	switch pvc.Status.Phase {
	case corev1.ClaimBound:
		return status{Healthy, "Bound", "bound"}
	case corev1.ClaimLost:
		return status{Degraded, "Lost", "its PersistentVolume is lost"}
	}
	return status{Progressing, "Pending", "waiting for a volume to be bound"}
}

// checkService: a LoadBalancer Service is Healthy once the load balancer
// has an address; every other Service is Healthy when it exists.
func checkService(svc *corev1.Service) status {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return status{Healthy, "Exists", "exists"}
	}
	if len(svc.Status.LoadBalancer.Ingress) == 0 {
		return status{Progressing, "LoadBalancerPending", "waiting for the load balancer to get an address"}
	}
	return status{Healthy, "LoadBalancerReady", "load balancer has an address"}
}

// checkNamespace: Active is Healthy, Terminating is Progressing.
func checkNamespace(ns *corev1.Namespace) status {
	if ns.Status.Phase == corev1.NamespaceTerminating {
		return status{Progressing, "Terminating", "terminating"}
	}
	return status{Healthy, "Active", "active"}
}
