package health

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// replicasOrDefault is spec.replicas, which the API server defaults to 1.
func replicasOrDefault(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// workloadGenerationLag reports whether the controller of a workload has not
// yet observed its latest spec. Workload controllers always write
// status.observedGeneration, so an unset one (0) means "not yet".
func workloadGenerationLag(observed, generation int64) (status, bool) {
	if observed >= generation {
		return status{}, false
	}
	return generationNotObserved(observed, generation), true
}

// checkDeployment follows `kubectl rollout status`: the new generation is
// observed, every replica is updated, old replicas are gone and every
// replica is available. A rollout past its progressDeadlineSeconds, or a
// ReplicaSet that cannot create pods, is Degraded; a paused Deployment is
// Healthy, since it will not progress until someone resumes it.
func checkDeployment(d *appsv1.Deployment) status {
	if s, lagging := workloadGenerationLag(d.Status.ObservedGeneration, d.Generation); lagging {
		return s
	}
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded":
			return status{Degraded, "ProgressDeadlineExceeded", explain("rollout exceeded its progress deadline", "", c.Message)}
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return status{Degraded, reasonOr(c.Reason, "ReplicaFailure"), explain("cannot create replicas", "", c.Message)}
		}
	}
	if d.Spec.Paused {
		return status{Healthy, "Paused", "rollout is paused"}
	}
	want := replicasOrDefault(d.Spec.Replicas)
	st := d.Status
	switch {
	case st.UpdatedReplicas < want:
		return status{Progressing, "RolloutInProgress", fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)}
	case st.Replicas > st.UpdatedReplicas:
		return status{Progressing, "OldReplicasPending", fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)}
	case st.AvailableReplicas < want:
		return status{Progressing, "ReplicasUnavailable", fmt.Sprintf("%d of %d replicas unavailable", want-st.AvailableReplicas, want)}
	case want == 0:
		return status{Healthy, "ScaledToZero", "scaled to zero"}
	}
	return status{Healthy, "Available", fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, want)}
}

// checkReplicaSet: every replica available and no extra ones left.
func checkReplicaSet(rs *appsv1.ReplicaSet) status {
	if s, lagging := workloadGenerationLag(rs.Status.ObservedGeneration, rs.Generation); lagging {
		return s
	}
	for _, c := range rs.Status.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
			return status{Degraded, reasonOr(c.Reason, "ReplicaFailure"), explain("cannot create replicas", "", c.Message)}
		}
	}
	want := replicasOrDefault(rs.Spec.Replicas)
	st := rs.Status
	switch {
	case st.Replicas > want:
		return status{Progressing, "ReplicasPendingTermination", fmt.Sprintf("%d extra replicas pending termination", st.Replicas-want)}
	case st.AvailableReplicas < want:
		return status{Progressing, "ReplicasUnavailable", fmt.Sprintf("%d of %d replicas unavailable", want-st.AvailableReplicas, want)}
	}
	return status{Healthy, "Available", fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, want)}
}

// checkStatefulSet: every replica exists and is ready, and the rollout is
// done: with a partition, every pod at or above the partition ordinal is
// updated; without one, every pod runs the update revision. With the OnDelete
// strategy pods change only when someone deletes them, so only readiness
// counts.
func checkStatefulSet(s *appsv1.StatefulSet) status {
	if st, lagging := workloadGenerationLag(s.Status.ObservedGeneration, s.Generation); lagging {
		return st
	}
	want := replicasOrDefault(s.Spec.Replicas)
	st := s.Status
	switch {
	case st.Replicas < want:
		return status{Progressing, "ReplicasPending", fmt.Sprintf("%d of %d replicas created", st.Replicas, want)}
	case st.ReadyReplicas < want:
		return status{Progressing, "ReplicasNotReady", fmt.Sprintf("%d of %d replicas not ready", want-st.ReadyReplicas, want)}
	case st.Replicas > want:
		return status{Progressing, "ReplicasPendingTermination", fmt.Sprintf("%d extra replicas pending termination", st.Replicas-want)}
	}
	ready := fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, want)
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return status{Healthy, "Ready", ready + " (OnDelete update strategy)"}
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
		toUpdate := max(want-*ru.Partition, 0)
		if st.UpdatedReplicas < toUpdate {
			return status{Progressing, "RolloutInProgress", fmt.Sprintf("%d of %d replicas above partition %d updated", st.UpdatedReplicas, toUpdate, *ru.Partition)}
		}
		return status{Healthy, "PartitionRolledOut", fmt.Sprintf("%s; %d above partition %d updated", ready, st.UpdatedReplicas, *ru.Partition)}
	}
	if st.UpdatedReplicas < want {
		return status{Progressing, "RolloutInProgress", fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)}
	}
	if st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision {
		return status{Progressing, "RolloutInProgress", fmt.Sprintf("waiting for revision %s to become current", st.UpdateRevision)}
	}
	return status{Healthy, "Ready", ready}
}

// checkDaemonSet: a pod is scheduled, updated and available on every node
// that should run one. It reads the unstructured object because a missing
// status.desiredNumberScheduled (not yet observed) must differ from 0 (no
// node matches, which is Healthy).
func checkDaemonSet(obj *unstructured.Unstructured) status {
	return typed(func(ds *appsv1.DaemonSet) status {
		if s, lagging := workloadGenerationLag(ds.Status.ObservedGeneration, ds.Generation); lagging {
			return s
		}
		if _, ok := nestedInt(obj.Object, "status", "desiredNumberScheduled"); !ok {
			return status{Progressing, "NotObserved", "waiting for the controller to schedule it"}
		}
		st := ds.Status
		want := st.DesiredNumberScheduled
		switch {
		case st.CurrentNumberScheduled < want:
			return status{Progressing, "PodsNotScheduled", fmt.Sprintf("%d of %d pods scheduled", st.CurrentNumberScheduled, want)}
		case ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType && st.UpdatedNumberScheduled < want:
			return status{Progressing, "RolloutInProgress", fmt.Sprintf("%d of %d pods updated", st.UpdatedNumberScheduled, want)}
		case st.NumberAvailable < want:
			return status{Progressing, "PodsUnavailable", fmt.Sprintf("%d of %d pods unavailable", want-st.NumberAvailable, want)}
		}
		return status{Healthy, "Available", fmt.Sprintf("%d of %d pods available", st.NumberAvailable, want)}
	})(obj)
}
