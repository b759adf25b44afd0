package health

import "testing"

func TestCheckDeployment(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "just created, no status",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 3}
`,
		state: Progressing, reason: ReasonGenerationNotObserved, message: "Deployment web: controller has observed generation 0, latest is 1",
	}, {
		name: "new generation not observed",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 5}
spec: {replicas: 3}
status: {observedGeneration: 4, replicas: 3, updatedReplicas: 3, availableReplicas: 3}
`,
		state: Progressing, reason: ReasonGenerationNotObserved,
	}, {
		name: "rollout in progress",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 4, updatedReplicas: 1, availableReplicas: 3}
`,
		state: Progressing, reason: "RolloutInProgress", message: "Deployment web: 1 of 3 replicas updated",
	}, {
		name: "old replicas terminating",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 4, updatedReplicas: 3, availableReplicas: 3}
`,
		state: Progressing, reason: "OldReplicasPending", message: "1 old replicas pending termination",
	}, {
		name: "replicas unavailable",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, updatedReplicas: 3, readyReplicas: 2, availableReplicas: 2}
`,
		state: Progressing, reason: "ReplicasUnavailable", message: "Deployment web: 1 of 3 replicas unavailable",
	}, {
		name: "replicas unset defaults to 1",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
status: {observedGeneration: 1}
`,
		state: Progressing, reason: "RolloutInProgress", message: "0 of 1 replicas updated",
	}, {
		name: "available",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status:
  observedGeneration: 2
  replicas: 3
  updatedReplicas: 3
  readyReplicas: 3
  availableReplicas: 3
  conditions:
  - {type: Available, status: "True", reason: MinimumReplicasAvailable}
  - {type: Progressing, status: "True", reason: NewReplicaSetAvailable}
`,
		state: Healthy, reason: "Available", message: "Deployment web: 3 of 3 replicas available",
	}, {
		name: "scaled to zero",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 0}
status: {observedGeneration: 2}
`,
		state: Healthy, reason: "ScaledToZero",
	}, {
		name: "progress deadline exceeded",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status:
  observedGeneration: 2
  replicas: 3
  updatedReplicas: 1
  availableReplicas: 2
  conditions:
  - {type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: ReplicaSet "web-7d9f" has timed out progressing.}
`,
		state: Degraded, reason: "ProgressDeadlineExceeded", message: `Deployment web: rollout exceeded its progress deadline: ReplicaSet "web-7d9f" has timed out progressing.`,
	}, {
		name: "replica failure",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 1}
status:
  observedGeneration: 1
  conditions:
  - {type: ReplicaFailure, status: "True", reason: FailedCreate, message: exceeded quota}
`,
		state: Degraded, reason: "FailedCreate", message: "cannot create replicas: exceeded quota",
	}, {
		name: "paused mid-rollout",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 3}
spec: {replicas: 3, paused: true}
status: {observedGeneration: 3, replicas: 3, updatedReplicas: 1, availableReplicas: 3}
`,
		state: Healthy, reason: "Paused", message: "rollout is paused",
	}})
}

func TestCheckReplicaSet(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "available",
		manifest: `
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, replicas: 2, readyReplicas: 2, availableReplicas: 2}
`,
		state: Healthy, reason: "Available", message: "ReplicaSet web-1: 2 of 2 replicas available",
	}, {
		name: "unavailable",
		manifest: `
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, replicas: 2, availableReplicas: 1}
`,
		state: Progressing, reason: "ReplicasUnavailable", message: "1 of 2 replicas unavailable",
	}, {
		name: "scaling down",
		manifest: `
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 2}
spec: {replicas: 1}
status: {observedGeneration: 2, replicas: 3, availableReplicas: 3}
`,
		state: Progressing, reason: "ReplicasPendingTermination",
	}, {
		name: "replica failure",
		manifest: `
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 1}
spec: {replicas: 2}
status:
  observedGeneration: 1
  conditions: [{type: ReplicaFailure, status: "True", reason: FailedCreate, message: 'pods "web-1-x" is forbidden'}]
`,
		state: Degraded, reason: "FailedCreate", message: `pods "web-1-x" is forbidden`,
	}})
}

func TestCheckStatefulSet(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "not observed",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 3}
`,
		state: Progressing, reason: ReasonGenerationNotObserved,
	}, {
		name: "creating replicas",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 3}
status: {observedGeneration: 1, replicas: 1, readyReplicas: 1}
`,
		state: Progressing, reason: "ReplicasPending", message: "StatefulSet db: 1 of 3 replicas created",
	}, {
		name: "replicas not ready",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 3}
status: {observedGeneration: 1, replicas: 3, readyReplicas: 2}
`,
		state: Progressing, reason: "ReplicasNotReady", message: "1 of 3 replicas not ready",
	}, {
		name: "rolling update in progress",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 3, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0}}}
status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 1, currentRevision: db-1, updateRevision: db-2}
`,
		state: Progressing, reason: "RolloutInProgress", message: "1 of 3 replicas updated",
	}, {
		name: "all updated, revision not yet current",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3, currentRevision: db-1, updateRevision: db-2}
`,
		state: Progressing, reason: "RolloutInProgress", message: "waiting for revision db-2",
	}, {
		name: "ready",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, currentReplicas: 3, updatedReplicas: 3, currentRevision: db-2, updateRevision: db-2}
`,
		state: Healthy, reason: "Ready", message: "StatefulSet db: 3 of 3 replicas ready",
	}, {
		name: "partition rollout incomplete",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 5, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 3}}}
status: {observedGeneration: 2, replicas: 5, readyReplicas: 5, updatedReplicas: 1, currentRevision: db-1, updateRevision: db-2}
`,
		state: Progressing, reason: "RolloutInProgress", message: "1 of 2 replicas above partition 3 updated",
	}, {
		name: "partition rollout complete",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 5, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 3}}}
status: {observedGeneration: 2, replicas: 5, readyReplicas: 5, updatedReplicas: 2, currentRevision: db-1, updateRevision: db-2}
`,
		state: Healthy, reason: "PartitionRolledOut",
	}, {
		name: "OnDelete ignores revisions",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 2, updateStrategy: {type: OnDelete}}
status: {observedGeneration: 2, replicas: 2, readyReplicas: 2, updatedReplicas: 0, currentRevision: db-1, updateRevision: db-2}
`,
		state: Healthy, reason: "Ready", message: "OnDelete",
	}, {
		name: "OnDelete still needs ready replicas",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 2, updateStrategy: {type: OnDelete}}
status: {observedGeneration: 2, replicas: 2, readyReplicas: 1}
`,
		state: Progressing, reason: "ReplicasNotReady",
	}})
}

func TestCheckDaemonSet(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "observed but desiredNumberScheduled missing",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 1}
status: {observedGeneration: 1}
`,
		state: Progressing, reason: "NotObserved",
	}, {
		name: "no matching node",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 1}
status: {observedGeneration: 1, desiredNumberScheduled: 0, currentNumberScheduled: 0, numberMisscheduled: 0, numberReady: 0}
`,
		state: Healthy, reason: "Available", message: "0 of 0 pods available",
	}, {
		name: "scheduling",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 1}
status: {observedGeneration: 1, desiredNumberScheduled: 3, currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 2}
`,
		state: Progressing, reason: "PodsNotScheduled", message: "DaemonSet agent: 2 of 3 pods scheduled",
	}, {
		name: "rolling update",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 2}
status: {observedGeneration: 2, desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 3, updatedNumberScheduled: 1, numberAvailable: 3}
`,
		state: Progressing, reason: "RolloutInProgress", message: "1 of 3 pods updated",
	}, {
		name: "unavailable",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 2}
status: {observedGeneration: 2, desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 2, updatedNumberScheduled: 3, numberAvailable: 2}
`,
		state: Progressing, reason: "PodsUnavailable", message: "1 of 3 pods unavailable",
	}, {
		name: "OnDelete ignores updated count",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 2}
spec: {updateStrategy: {type: OnDelete}}
status: {observedGeneration: 2, desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 3, updatedNumberScheduled: 0, numberAvailable: 3}
`,
		state: Healthy, reason: "Available",
	}, {
		name: "available",
		manifest: `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, generation: 2}
status: {observedGeneration: 2, desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 3, updatedNumberScheduled: 3, numberAvailable: 3}
`,
		state: Healthy, reason: "Available", message: "DaemonSet agent: 3 of 3 pods available",
	}})
}

func TestCheckInvalidObject(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "replicas is a string",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: "three"}
`,
		state: Unknown, reason: "InvalidObject", message: "Deployment web: cannot read as Deployment.apps",
	}})
}
