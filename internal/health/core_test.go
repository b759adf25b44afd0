package health

import "testing"

func TestCheckPVC(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name:     "bound",
		manifest: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data}, status: {phase: Bound}}`,
		state:    Healthy, reason: "Bound", message: "PersistentVolumeClaim data: bound",
	}, {
		name:     "pending",
		manifest: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data}, status: {phase: Pending}}`,
		state:    Progressing, reason: "Pending",
	}, {
		name:     "no status",
		manifest: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data}}`,
		state:    Progressing, reason: "Pending",
	}, {
		name:     "lost",
		manifest: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data}, status: {phase: Lost}}`,
		state:    Degraded, reason: "Lost", message: "PersistentVolumeClaim data: its PersistentVolume is lost",
	}})
}

func TestCheckService(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name:     "ClusterIP",
		manifest: `{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: ClusterIP}}`,
		state:    Healthy, reason: "Exists",
	}, {
		name:     "default type",
		manifest: `{apiVersion: v1, kind: Service, metadata: {name: web}}`,
		state:    Healthy, reason: "Exists",
	}, {
		name:     "LoadBalancer waiting for an address",
		manifest: `{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: LoadBalancer}, status: {loadBalancer: {}}}`,
		state:    Progressing, reason: "LoadBalancerPending", message: "Service web: waiting for the load balancer to get an address",
	}, {
		name:     "LoadBalancer with an address",
		manifest: `{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: LoadBalancer}, status: {loadBalancer: {ingress: [{ip: 192.0.2.10}]}}}`,
		state:    Healthy, reason: "LoadBalancerReady",
	}})
}

func TestCheckNamespaceAndIngress(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name:     "active Namespace",
		manifest: `{apiVersion: v1, kind: Namespace, metadata: {name: apps}, status: {phase: Active}}`,
		state:    Healthy, reason: "Active",
	}, {
		name:     "terminating Namespace",
		manifest: `{apiVersion: v1, kind: Namespace, metadata: {name: apps}, status: {phase: Terminating}}`,
		state:    Progressing, reason: "Terminating",
	}, {
		name:     "Ingress without a load balancer address",
		manifest: `{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: web}, status: {loadBalancer: {}}}`,
		state:    Healthy, reason: "Exists", message: "Ingress web: exists",
	}})
}

func TestCheckCRD(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "established",
		manifest: `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
status:
  conditions:
  - {type: NamesAccepted, status: "True", reason: NoConflicts}
  - {type: Established, status: "True", reason: InitialNamesAccepted}
`,
		state: Healthy, reason: "Established", message: "CustomResourceDefinition widgets.example.com: established",
	}, {
		name:     "not yet established",
		manifest: `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: widgets.example.com}}`,
		state:    Progressing, reason: "NotEstablished",
	}, {
		name: "names conflict",
		manifest: `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
status:
  conditions:
  - {type: NamesAccepted, status: "False", reason: ListKindConflict, message: '"WidgetList" is already in use'}
  - {type: Established, status: "False", reason: NotAccepted}
`,
		state: Degraded, reason: "ListKindConflict", message: `names not accepted: ListKindConflict: "WidgetList" is already in use`,
	}})
}

func TestCheckAPIService(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "available",
		manifest: `
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
status:
  conditions: [{type: Available, status: "True", reason: Passed}]
`,
		state: Healthy, reason: "Available",
	}, {
		name: "backend missing",
		manifest: `
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
status:
  conditions: [{type: Available, status: "False", reason: MissingEndpoints, message: endpoints for service/metrics-server in "kube-system" have no addresses}]
`,
		state: Progressing, reason: "MissingEndpoints", message: "not available: MissingEndpoints: endpoints for service/metrics-server",
	}, {
		name:     "no status yet",
		manifest: `{apiVersion: apiregistration.k8s.io/v1, kind: APIService, metadata: {name: v1beta1.metrics.k8s.io}}`,
		state:    Progressing, reason: "NotAvailable",
	}})
}

func TestCheckHPA(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "able to scale",
		manifest: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
status:
  conditions:
  - {type: AbleToScale, status: "True", reason: ReadyForNewScale}
  - {type: ScalingActive, status: "True", reason: ValidMetricFound}
`,
		state: Healthy, reason: "AbleToScale",
	}, {
		name: "backoff is normal",
		manifest: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
status:
  conditions:
  - {type: AbleToScale, status: "False", reason: BackoffBoth}
  - {type: ScalingActive, status: "True", reason: ValidMetricFound}
`,
		state: Healthy, reason: "AbleToScale",
	}, {
		name: "cannot get the target's scale",
		manifest: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
status:
  conditions:
  - {type: AbleToScale, status: "False", reason: FailedGetScale, message: deployments/scale.apps "webb" not found}
`,
		state: Degraded, reason: "FailedGetScale", message: `HorizontalPodAutoscaler web: cannot scale: FailedGetScale: deployments/scale.apps "webb" not found`,
	}, {
		name: "no metrics is not Degraded",
		manifest: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
status:
  conditions:
  - {type: AbleToScale, status: "True", reason: SucceededGetScale}
  - {type: ScalingActive, status: "False", reason: FailedGetResourceMetric, message: unable to get metrics for resource cpu}
`,
		state: Healthy, reason: "ScalingInactive", message: "scaling inactive: FailedGetResourceMetric",
	}, {
		name:     "autoscaling/v1 without conditions",
		manifest: `{apiVersion: autoscaling/v1, kind: HorizontalPodAutoscaler, metadata: {name: web}, status: {currentReplicas: 1, desiredReplicas: 1}}`,
		state:    Healthy, reason: "Exists",
	}})
}
