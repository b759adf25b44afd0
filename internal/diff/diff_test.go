package diff_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/diff"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func object(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, doc)
	}
	return &unstructured.Unstructured{Object: m}
}

func compare(t *testing.T, desired, live *unstructured.Unstructured) diff.ObjectDiff {
	t.Helper()
	d, err := diff.Compare(desired, live)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const desiredDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  creationTimestamp: null
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
        resources:
          requests: {cpu: "0.5", memory: 1Gi}
      - name: sidecar
        image: busybox:1.36
status: {}
`

// liveDeployment is desiredDeployment as the API server returns it: server
// defaults, other managers' fields, status, containers in another order.
const liveDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  uid: 0b5c2a1e-0000-4000-8000-000000000001
  resourceVersion: "4711"
  generation: 3
  creationTimestamp: "2025-01-01T00:00:00Z"
  labels: {app: web}
  annotations:
    deployment.kubernetes.io/revision: "3"
  managedFields:
  - manager: tend
    operation: Apply
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          f:app: {}
      f:spec:
        f:replicas: {}
        f:selector: {}
        f:template:
          f:metadata:
            f:labels:
              f:app: {}
          f:spec:
            f:containers:
              'k:{"name":"web"}':
                .: {}
                f:image: {}
                f:name: {}
  - manager: kube-controller-manager
    operation: Update
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:annotations:
          f:deployment.kubernetes.io/revision: {}
spec:
  replicas: 2
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
  template:
    metadata:
      labels: {app: web}
    spec:
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      containers:
      - name: sidecar
        image: busybox:1.36
        imagePullPolicy: IfNotPresent
      - name: web
        image: nginx:1.27
        imagePullPolicy: IfNotPresent
        terminationMessagePath: /dev/termination-log
        ports:
        - {containerPort: 80, protocol: TCP}
        env:
        - {name: B, value: "2"}
        - {name: A, value: "1"}
        resources:
          requests: {cpu: 500m, memory: 1024Mi}
status:
  replicas: 2
  availableReplicas: 2
`

func TestUnchangedDespiteServerDefaults(t *testing.T) {
	d := compare(t, object(t, desiredDeployment), object(t, liveDeployment))
	if d.Action != diff.ActionUnchanged || d.Unified != "" {
		t.Fatalf("Action %s, diff:\n%s", d.Action, d.Unified)
	}
	if got, want := d.Group+" "+d.Kind+" "+d.Namespace+"/"+d.Name, "apps Deployment shop/web"; got != want {
		t.Fatalf("identity %q, want %q", got, want)
	}
}

func TestImageChangeIsAnUpdate(t *testing.T) {
	desired := object(t, strings.Replace(desiredDeployment, "nginx:1.27", "nginx:1.28", 1))
	d := compare(t, desired, object(t, liveDeployment))
	if d.Action != diff.ActionUpdate {
		t.Fatalf("Action %s, want update", d.Action)
	}
	for _, want := range []string{
		"--- live apps/v1 Deployment shop/web\n",
		"+++ desired apps/v1 Deployment shop/web\n",
		"-        image: nginx:1.27\n",
		"+        image: nginx:1.28\n",
	} {
		if !strings.Contains(d.Unified, want) {
			t.Errorf("diff lacks %q:\n%s", want, d.Unified)
		}
	}
	if n := changedLines(d.Unified); n != 2 {
		t.Errorf("%d changed lines, want 2 (only the image):\n%s", n, d.Unified)
	}
}

// changedLines counts the added and removed lines of a unified diff.
func changedLines(unified string) int {
	n := 0
	for _, line := range strings.Split(unified, "\n") {
		if (strings.HasPrefix(line, "-") || strings.HasPrefix(line, "+")) && !strings.HasPrefix(line, "---") && !strings.HasPrefix(line, "+++") {
			n++
		}
	}
	return n
}

func TestNumbersAndQuantitiesCompareByValue(t *testing.T) {
	desired := object(t, desiredDeployment)
	// 2.0 from a float-producing renderer equals the API server's 2.
	if err := unstructured.SetNestedField(desired.Object, float64(2), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	containers, _, _ := unstructured.NestedSlice(desired.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["resources"] = map[string]any{"requests": map[string]any{"cpu": 0.5, "memory": "1073741824"}}
	if err := unstructured.SetNestedSlice(desired.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if d := compare(t, desired, object(t, liveDeployment)); d.Action != diff.ActionUnchanged {
		t.Fatalf("Action %s:\n%s", d.Action, d.Unified)
	}

	// The same strings outside resources are just strings.
	cm := `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"cpu": "%s"}}`
	d := compare(t, object(t, strings.Replace(cm, "%s", "0.5", 1)), object(t, strings.Replace(cm, "%s", "500m", 1)))
	if d.Action != diff.ActionUpdate {
		t.Fatalf("ConfigMap data 0.5 vs 500m: Action %s, want update", d.Action)
	}
}

func TestListsOfNamedItemsMatchByName(t *testing.T) {
	// liveDeployment lists the containers and env in another order.
	desired := object(t, strings.Replace(desiredDeployment, `value: "2"`, `value: "two"`, 1))
	d := compare(t, desired, object(t, liveDeployment))
	if d.Action != diff.ActionUpdate {
		t.Fatalf("Action %s, want update", d.Action)
	}
	// Only B's value changed; the reordered containers and env do not show.
	if !strings.Contains(d.Unified, "-          value: \"2\"\n+          value: two\n") || changedLines(d.Unified) != 2 {
		t.Errorf("diff does not show env B's value changing alone:\n%s", d.Unified)
	}
}

func TestFieldsTendNoLongerDeclaresShowAsRemoved(t *testing.T) {
	live := object(t, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  namespace: ns
  labels: {keep: "1", dropped: "1", theirs: "1"}
  managedFields:
  - manager: tend
    operation: Apply
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata: {f:labels: {f:keep: {}, f:dropped: {}}}
  - manager: other
    operation: Update
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata: {f:labels: {f:theirs: {}}}
`)
	desired := object(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: ns, labels: {keep: "1"}}}`)
	d := compare(t, desired, live)
	if d.Action != diff.ActionUpdate {
		t.Fatalf("Action %s, want update", d.Action)
	}
	if !strings.Contains(d.Unified, "-    dropped: \"1\"\n") {
		t.Errorf("diff does not show the dropped label removed:\n%s", d.Unified)
	}
	if strings.Contains(d.Unified, "theirs") {
		t.Errorf("diff shows another manager's label:\n%s", d.Unified)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestSecretValuesAreMasked(t *testing.T) {
	const (
		oldValue  = "old-hunter2"
		newValue  = "new-correct-horse"
		sameValue = "unchanged-s3cret"
		goneValue = "gone-t0ken"
	)
	desired := object(t, `
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: ns}
stringData:
  password: `+newValue+`
data:
  same: `+b64(sameValue)+`
  added: `+b64("added-value")+`
`)
	liveFromAPI := object(t, `
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: ns
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{"password":"`+b64(oldValue)+`"}}'
  managedFields:
  - manager: tend
    operation: Apply
    fieldsType: FieldsV1
    fieldsV1:
      f:data: {f:password: {}, f:same: {}, f:gone: {}}
type: Opaque
data:
  password: `+b64(oldValue)+`
  same: `+b64(sameValue)+`
  gone: `+b64(goneValue)+`
`)
	// The livestate cache holds hashes instead of values.
	liveFromCache := liveFromAPI.DeepCopy()
	_ = unstructured.SetNestedStringMap(liveFromCache.Object, map[string]string{
		"password": livestate.HashSecretValue([]byte(oldValue)),
		"same":     livestate.HashSecretValue([]byte(sameValue)),
		"gone":     livestate.HashSecretValue([]byte(goneValue)),
	}, "data")

	for name, live := range map[string]*unstructured.Unstructured{"live from the API": liveFromAPI, "live from the cache": liveFromCache} {
		t.Run(name, func(t *testing.T) {
			d := compare(t, desired, live)
			if d.Action != diff.ActionUpdate {
				t.Fatalf("Action %s, want update", d.Action)
			}
			for _, secret := range []string{oldValue, newValue, sameValue, goneValue, "added-value"} {
				for _, form := range []string{secret, b64(secret), livestate.HashSecretValue([]byte(secret))} {
					if strings.Contains(d.Unified, form) {
						t.Errorf("diff contains %q:\n%s", form, d.Unified)
					}
				}
			}
			if strings.Contains(d.Unified, livestate.SecretHashPrefix) {
				t.Errorf("diff contains a hash:\n%s", d.Unified)
			}
			for _, want := range []string{
				"-  password: (secret value)\n",
				"+  password: (changed secret value)\n",
				"   same: (secret value)\n",
				"+  added: (secret value)\n",
				"-  gone: (secret value)\n",
			} {
				if !strings.Contains(d.Unified, want) {
					t.Errorf("diff lacks %q:\n%s", want, d.Unified)
				}
			}
		})
	}
}

func TestSecretStringDataEqualToDataIsUnchanged(t *testing.T) {
	desired := object(t, `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: ns}, type: Opaque, stringData: {user: admin}, data: {pass: `+b64("pw")+`}}`)
	live := object(t, `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: ns, uid: x}, type: Opaque, data: {user: `+b64("admin")+`, pass: `+b64("pw")+`}}`)
	if d := compare(t, desired, live); d.Action != diff.ActionUnchanged {
		t.Fatalf("Action %s:\n%s", d.Action, d.Unified)
	}
	cached := live.DeepCopy()
	_ = unstructured.SetNestedStringMap(cached.Object, map[string]string{
		"user": livestate.HashSecretValue([]byte("admin")),
		"pass": livestate.HashSecretValue([]byte("pw")),
	}, "data")
	if d := compare(t, desired, cached); d.Action != diff.ActionUnchanged {
		t.Fatalf("against the cached form: Action %s:\n%s", d.Action, d.Unified)
	}
}

func TestCreateAndDelete(t *testing.T) {
	secret := object(t, `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: ns}, stringData: {token: plaintext-token}}`)
	d := compare(t, secret, nil)
	if d.Action != diff.ActionCreate {
		t.Fatalf("Action %s, want create", d.Action)
	}
	if strings.Contains(d.Unified, "plaintext-token") || !strings.Contains(d.Unified, "+  token: (secret value)\n") {
		t.Fatalf("create diff:\n%s", d.Unified)
	}
	for _, line := range strings.Split(strings.TrimSpace(d.Unified), "\n")[3:] {
		if !strings.HasPrefix(line, "+") {
			t.Errorf("create diff has a line that is not an addition: %q", line)
		}
	}

	d = compare(t, nil, object(t, liveDeployment))
	if d.Action != diff.ActionDelete {
		t.Fatalf("Action %s, want delete", d.Action)
	}
	if strings.Contains(d.Unified, "managedFields") || strings.Contains(d.Unified, "availableReplicas") {
		t.Errorf("delete diff shows managedFields or status:\n%s", d.Unified)
	}
	if !strings.Contains(d.Unified, "-        image: nginx:1.27\n") {
		t.Errorf("delete diff lacks the image:\n%s", d.Unified)
	}

	if _, err := diff.Compare(nil, nil); err == nil {
		t.Error("Compare(nil, nil) did not fail")
	}
}

func TestSummary(t *testing.T) {
	var diffs []diff.ObjectDiff
	for action, n := range map[string]int{diff.ActionCreate: 3, diff.ActionUpdate: 1, diff.ActionDelete: 2, diff.ActionUnchanged: 40} {
		for range n {
			diffs = append(diffs, diff.ObjectDiff{Action: action})
		}
	}
	if got, want := diff.Summary(diffs), "3 to create, 1 to update, 2 to delete, 40 unchanged"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got, want := diff.Summary([]diff.ObjectDiff{{Action: diff.ActionUnchanged}}), "1 unchanged"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got, want := diff.Summary(nil), "no objects"; got != want {
		t.Errorf("Summary(nil) = %q, want %q", got, want)
	}
}
