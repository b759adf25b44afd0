package health

import "testing"

func TestCheckPod(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "running and ready",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Running
  conditions:
  - {type: PodScheduled, status: "True"}
  - {type: Ready, status: "True"}
`,
		state: Healthy, reason: "Ready", message: "Pod web-1: running and ready",
	}, {
		name: "running, not ready",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Running
  conditions:
  - {type: Ready, status: "False", reason: ContainersNotReady, message: "containers with unready status: [app]"}
`,
		state: Progressing, reason: "NotReady", message: "running, not ready: containers with unready status: [app]",
	}, {
		name: "succeeded, owned by a Job",
		manifest: `
apiVersion: v1
kind: Pod
metadata:
  name: migrate-x
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: migrate, uid: "1", controller: true}]
status: {phase: Succeeded}
`,
		state: Healthy, reason: "Succeeded",
	}, {
		name: "failed with a reason",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {phase: Failed, reason: Evicted, message: "The node was low on resource: memory."}
`,
		state: Degraded, reason: "Evicted", message: "Pod web-1: failed: The node was low on resource: memory.",
	}, {
		name: "failed container",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: migrate-x}
status:
  phase: Failed
  containerStatuses:
  - {name: migrate, ready: false, restartCount: 0, image: m, imageID: "", state: {terminated: {exitCode: 2, reason: Error}}}
`,
		state: Degraded, reason: "Failed", message: "failed: container migrate exited with code 2 (Error)",
	}, {
		name: "crash loop",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Running
  conditions: [{type: Ready, status: "False"}]
  containerStatuses:
  - name: app
    ready: false
    restartCount: 5
    image: web
    imageID: ""
    state: {waiting: {reason: CrashLoopBackOff, message: back-off 2m40s restarting failed container}}
`,
		state: Degraded, reason: "CrashLoopBackOff", message: "Pod web-1: container app: CrashLoopBackOff: back-off 2m40s restarting failed container",
	}, {
		name: "image pull error in an init container",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Pending
  initContainerStatuses:
  - {name: init, ready: false, restartCount: 0, image: nope, imageID: "", state: {waiting: {reason: ImagePullBackOff}}}
`,
		state: Degraded, reason: "ImagePullBackOff", message: "container init: ImagePullBackOff",
	}, {
		name: "config error",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Pending
  containerStatuses:
  - {name: app, ready: false, restartCount: 0, image: web, imageID: "", state: {waiting: {reason: CreateContainerConfigError, message: configmap "cfg" not found}}}
`,
		state: Degraded, reason: "CreateContainerConfigError", message: `configmap "cfg" not found`,
	}, {
		name: "container creating",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Pending
  conditions: [{type: PodScheduled, status: "True"}]
  containerStatuses:
  - {name: app, ready: false, restartCount: 0, image: web, imageID: "", state: {waiting: {reason: ContainerCreating}}}
`,
		state: Progressing, reason: "Pending", message: "pending: container app: ContainerCreating",
	}, {
		name: "unschedulable",
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Pending
  conditions:
  - {type: PodScheduled, status: "False", reason: Unschedulable, message: "0/3 nodes are available: 3 Insufficient cpu."}
`,
		state: Progressing, reason: "Unschedulable", message: "not scheduled: 0/3 nodes are available",
	}, {
		name:     "no status",
		manifest: `{apiVersion: v1, kind: Pod, metadata: {name: web-1}}`,
		state:    Progressing, reason: "Pending", message: "Pod web-1: pending",
	}})
}

func TestCheckJob(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "running",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status: {active: 1, failed: 1}
`,
		state: Progressing, reason: "Running", message: "Job migrate: 1 active, 0 succeeded, 1 failed",
	}, {
		name: "complete",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status:
  succeeded: 1
  conditions:
  - {type: SuccessCriteriaMet, status: "True"}
  - {type: Complete, status: "True"}
`,
		state: Healthy, reason: "Complete", message: "Job migrate: completed: 1 succeeded",
	}, {
		name: "failed",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status:
  failed: 1
  conditions:
  - {type: FailureTarget, status: "True", reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit}
  - {type: Failed, status: "True", reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit}
`,
		state: Degraded, reason: "BackoffLimitExceeded", message: "Job migrate: failed: Job has reached the specified backoff limit",
	}, {
		name: "failure decided, pods terminating",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status:
  conditions:
  - {type: FailureTarget, status: "True", reason: DeadlineExceeded, message: Job was active longer than specified deadline}
`,
		state: Degraded, reason: "DeadlineExceeded",
	}, {
		name: "suspended",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: nightly}
spec: {suspend: true}
status:
  conditions: [{type: Suspended, status: "True", reason: JobSuspended}]
`,
		state: Healthy, reason: "Suspended",
	}, {
		name: "suspend requested, condition not yet set",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: nightly}
spec: {suspend: true}
`,
		state: Healthy, reason: "Suspended",
	}, {
		name: "resumed: Suspended condition False",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: nightly}
spec: {suspend: false}
status:
  active: 1
  conditions: [{type: Suspended, status: "False", reason: JobResumed}]
`,
		state: Progressing, reason: "Running",
	}})
}
