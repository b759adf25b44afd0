package health

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// failedWaitingReasons are reasons a container waits for that need a person
// to fix the image, the configuration or the program; the kubelet only backs
// off and retries.
var failedWaitingReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// checkPod: a Pod that Succeeded (a Job's pod) or runs and is Ready is
// Healthy; one that Failed, or has a container stuck in CrashLoopBackOff,
// an image pull error or a configuration error, is Degraded; anything else
// is on its way.
func checkPod(p *corev1.Pod) status {
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		return status{Healthy, "Succeeded", "completed"}
	case corev1.PodFailed:
		if p.Status.Reason != "" || p.Status.Message != "" {
			return status{Degraded, reasonOr(p.Status.Reason, "Failed"), explain("failed", "", p.Status.Message)}
		}
		return status{Degraded, "Failed", "failed: " + terminatedSummary(p)}
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil && failedWaitingReasons[w.Reason] {
				return status{Degraded, w.Reason, explain("container "+cs.Name, w.Reason, w.Message)}
			}
		}
	}
	var ready, scheduled *corev1.PodCondition
	for i, c := range p.Status.Conditions {
		switch c.Type {
		case corev1.PodReady:
			ready = &p.Status.Conditions[i]
		case corev1.PodScheduled:
			scheduled = &p.Status.Conditions[i]
		}
	}
	if p.Status.Phase == corev1.PodRunning {
		if ready != nil && ready.Status == corev1.ConditionTrue {
			return status{Healthy, "Ready", "running and ready"}
		}
		msg := ""
		if ready != nil {
			msg = ready.Message
		}
		return status{Progressing, "NotReady", explain("running, not ready", "", msg)}
	}
	if scheduled != nil && scheduled.Status == corev1.ConditionFalse {
		return status{Progressing, reasonOr(scheduled.Reason, "Unschedulable"), explain("not scheduled", "", scheduled.Message)}
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				return status{Progressing, "Pending", fmt.Sprintf("pending: container %s: %s", cs.Name, w.Reason)}
			}
		}
	}
	return status{Progressing, "Pending", "pending"}
}

// terminatedSummary describes the first container that exited with an
// error, for a failed Pod that gives no reason of its own.
func terminatedSummary(p *corev1.Pod) string {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				s := fmt.Sprintf("container %s exited with code %d", cs.Name, t.ExitCode)
				if t.Reason != "" {
					s += " (" + t.Reason + ")"
				}
				return s
			}
		}
	}
	return "no container reported why"
}

// checkJob: Complete is Healthy; Failed, or FailureTarget (failure decided,
// pods still terminating), is Degraded with the Job's own reason, e.g.
// BackoffLimitExceeded or DeadlineExceeded; a suspended Job is Healthy since
// it waits for someone to resume it; anything else is running.
func checkJob(j *batchv1.Job) status {
	var complete, suspended bool
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			return status{Degraded, reasonOr(c.Reason, "Failed"), explain("failed", "", c.Message)}
		case batchv1.JobComplete:
			complete = true
		case batchv1.JobSuspended:
			suspended = true
		}
	}
	switch {
	case complete:
		return status{Healthy, "Complete", fmt.Sprintf("completed: %d succeeded", j.Status.Succeeded)}
	case suspended || (j.Spec.Suspend != nil && *j.Spec.Suspend):
		return status{Healthy, "Suspended", "suspended"}
	}
	return status{Progressing, "Running", fmt.Sprintf("%d active, %d succeeded, %d failed", j.Status.Active, j.Status.Succeeded, j.Status.Failed)}
}
