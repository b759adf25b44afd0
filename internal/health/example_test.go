package health_test

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/health"
)

func ExampleChecker_Check() {
	deploy := &unstructured.Unstructured{}
	_ = deploy.UnmarshalJSON([]byte(`{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": {"name": "web", "generation": 2},
		"spec": {"replicas": 3},
		"status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}
	}`))

	var c health.Checker // the zero Checker has the built-in checks
	fmt.Println(c.Check(deploy))

	applied := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fmt.Println(c.CheckWithTimeout(deploy, applied, 5*time.Minute, applied.Add(10*time.Minute)))
	// Output:
	// Progressing (ReplicasUnavailable): Deployment web: 1 of 3 replicas unavailable
	// Degraded (Timeout): Deployment web: still progressing after 10m0s (timeout 5m0s): 1 of 3 replicas unavailable
}

func ExampleNewChecker() {
	c, err := health.NewChecker([]health.Rule{{
		Group:    "example.com",
		Kind:     "Database",
		Degraded: `object.?status.?phase.orValue("") == "Failed"`,
		Healthy:  `object.?status.?phase.orValue("") == "Running"`,
		Message:  `object.?status.?message.orValue("")`,
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	db := &unstructured.Unstructured{}
	_ = db.UnmarshalJSON([]byte(`{
		"apiVersion": "example.com/v1", "kind": "Database",
		"metadata": {"name": "orders"},
		"status": {"phase": "Failed", "message": "volume full"}
	}`))
	fmt.Println(c.Check(db))

	_, err = health.NewChecker([]health.Rule{{Group: "example.com", Kind: "Database", Healthy: `object.status.phase = "Running"`}})
	fmt.Println(err != nil)
	// Output:
	// Degraded (HealthRule): Database orders: volume full
	// true
}
