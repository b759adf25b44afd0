// Package install owns tend's install manifests: the Namespace, the CRDs,
// the ServiceAccount and its RBAC, the controller Deployment and its
// Service. Manifests builds them from Options; the generator in gen/
// writes them to config/install/, and a test fails when those files are
// stale, so what `kubectl apply` installs is always what this package says.
//
// RBAC comes in two modes. The default is least privilege: tend reads
// everything, writes its own kinds, events, its Lease and an explicit list
// of common workload kinds (see docs/install.md). ClusterAdmin binds the
// built-in cluster-admin role instead, for clusters where Apps apply
// arbitrary kinds or cluster-wide RBAC.
package install

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/config"
)

// Defaults of Options.
const (
	DefaultNamespace = "tend-system"
	DefaultImageRepo = "ghcr.io/tend-gitops/tend"
	DefaultVersion   = "latest"
	DefaultReplicas  = 2
)

// Names of the objects Manifests returns.
const (
	// Name names the ServiceAccount, the Deployment and the Service, and
	// the ClusterRole and ClusterRoleBinding in DefaultNamespace.
	Name = "tend"
	// LeaderElectionRole names the Role and RoleBinding for the Lease.
	LeaderElectionRole = "tend-leader-election"
	// DataDir is where the controller keeps checkouts (an emptyDir).
	DataDir = "/var/lib/tend"
)

// Options configure the manifests. The zero value is the default install.
type Options struct {
	// Namespace tend runs in and keeps its Lease in (default tend-system).
	// Outside the default namespace, cluster-scoped RBAC objects are named
	// "tend-<namespace>" so that several installs do not clash.
	Namespace string
	// Image of the controller (default ghcr.io/tend-gitops/tend:<Version>).
	Image string
	// Version labels the objects and tags the default image (default
	// "latest").
	Version string
	// ClusterAdmin binds the cluster-admin ClusterRole instead of tend's
	// least-privilege ClusterRole and leader-election Role.
	ClusterAdmin bool
	// Replicas of the controller (default 2). Replicas elect one leader
	// through a Lease; the others take over within about 12 s.
	Replicas int
	// Compat names the foreign API families the controller reconciles as
	// they are ("argo", "flux"): their CRDs (config/compat) are added, the
	// controller may write those objects, and runs with --compat.
	Compat []string
	// ArgoDecryptionSecret is the controller's --argo-decryption-secret
	// (with Compat argo).
	ArgoDecryptionSecret string
}

func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return o, fmt.Errorf("install: namespace %q: %v", o.Namespace, errs)
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.Image == "" {
		o.Image = DefaultImageRepo + ":" + o.Version
	}
	if o.Replicas < 0 {
		return o, fmt.Errorf("install: replicas %d: must not be negative", o.Replicas)
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	for _, f := range o.Compat {
		if _, ok := compatGroups[f]; !ok {
			return o, fmt.Errorf("install: compat %q: tend reads argo (Argo CD) and flux (Flux)", f)
		}
	}
	if o.ArgoDecryptionSecret != "" && !slices.Contains(o.Compat, "argo") {
		return o, fmt.Errorf("install: --argo-decryption-secret is for Argo CD Applications: add --compat argo")
	}
	return o, nil
}

// ClusterName is the name of tend's cluster-scoped RBAC objects for an
// install in namespace: "tend" in tend-system (or ""), "tend-<namespace>"
// elsewhere.
func ClusterName(namespace string) string {
	if namespace == "" || namespace == DefaultNamespace {
		return Name
	}
	return Name + "-" + namespace
}

// File is a generated file in config/install and the options it is
// rendered with.
type File struct {
	Name    string
	Options Options
}

// Files lists what `go run ./internal/install/gen` writes to
// config/install.
var Files = []File{
	{Name: "tend.yaml", Options: Options{}},
	{Name: "tend-cluster-admin.yaml", Options: Options{ClusterAdmin: true}},
}

// Manifests returns the objects that install tend, in the order to apply
// them: Namespace, CRDs, ServiceAccount, RBAC, Service, Deployment.
func Manifests(opts Options) ([]*unstructured.Unstructured, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	crds, err := crds()
	if err != nil {
		return nil, err
	}
	compat, err := CompatCRDs(o.Compat)
	if err != nil {
		return nil, err
	}
	typed := []runtime.Object{namespace(o)}
	typed = append(typed, crds...)
	for _, c := range compat {
		typed = append(typed, c)
	}
	typed = append(typed, serviceAccount(o))
	if o.ClusterAdmin {
		typed = append(typed, clusterAdminBinding(o))
	} else {
		typed = append(typed, clusterRole(o, crds, compat), clusterRoleBinding(o), leaderElectionRole(o), leaderElectionRoleBinding(o))
	}
	typed = append(typed, service(o), deployment(o))

	out := make([]*unstructured.Unstructured, 0, len(typed))
	for _, obj := range typed {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				return nil, fmt.Errorf("install: convert %T: %w", obj, err)
			}
			delete(m, "status")
			if spec, ok := m["spec"].(map[string]any); ok && len(spec) == 0 {
				delete(m, "spec") // a Namespace's
			}
			u = &unstructured.Unstructured{Object: dropNils(m)}
		}
		out = append(out, u)
	}
	return out, nil
}

// Render returns the manifests as one YAML stream, as written to
// config/install.
func Render(opts Options) ([]byte, error) {
	objs, err := Manifests(opts)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Code generated by `go run ./internal/install/gen`. DO NOT EDIT.\n")
	if opts.ClusterAdmin {
		b.WriteString("# tend with the cluster-admin ClusterRole; see docs/install.md.\n")
	} else {
		b.WriteString("# tend with least-privilege RBAC; see docs/install.md.\n")
	}
	for _, u := range objs {
		y, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("install: marshal %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// dropNils removes null values, such as the creationTimestamp every typed
// object carries, recursively.
func dropNils(m map[string]any) map[string]any {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNils(v)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					dropNils(em)
				}
			}
		}
	}
	return m
}

// CompatLabel marks the compat CRDs tend installed (value "tend"), so that
// `tend install` leaves alone those Argo CD or Flux installed.
const CompatLabel = "app.kubernetes.io/managed-by"

// compatGroups are the API groups of each compat family.
var compatGroups = map[string]func(group string) bool{
	"argo": func(g string) bool { return g == "argoproj.io" },
	"flux": func(g string) bool { return strings.HasSuffix(g, ".toolkit.fluxcd.io") },
}

// CompatCRDs returns the CRDs of config/compat of the families named
// ("argo", "flux"), sorted by file name.
func CompatCRDs(families []string) ([]*unstructured.Unstructured, error) {
	if len(families) == 0 {
		return nil, nil
	}
	all, err := readCRDs(config.CompatCRDs, "compat")
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, obj := range all {
		u := obj.(*unstructured.Unstructured)
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		for _, f := range families {
			if in, ok := compatGroups[f]; ok && in(group) {
				u.SetLabels(map[string]string{CompatLabel: "tend"})
				out = append(out, u)
				break
			}
		}
	}
	return out, nil
}

// crds returns config/crd/*.yaml, sorted by file name.
func crds() ([]runtime.Object, error) {
	return readCRDs(config.CRDs, "crd")
}

func readCRDs(fsys fs.FS, dir string) ([]runtime.Object, error) {
	names, err := fs.Glob(fsys, dir+"/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []runtime.Object
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("install: %s: %w", path.Join("config", name), err)
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() != "CustomResourceDefinition" {
			return nil, fmt.Errorf("install: %s: kind %q, want CustomResourceDefinition", path.Join("config", name), u.GetKind())
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("install: no CRDs embedded from config/%s", dir)
	}
	return out, nil
}

func labels(o Options) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    Name,
		"app.kubernetes.io/version": o.Version,
	}
}

// selector selects the controller's pods; it is immutable in a
// Deployment, so it never carries the version.
func selector() map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      Name,
		"app.kubernetes.io/component": "controller",
	}
}

func meta(o Options, name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels(o)}
}

func namespace(o Options) *corev1.Namespace {
	m := meta(o, o.Namespace, "")
	// The controller's pod meets the restricted Pod Security Standard;
	// nothing else belongs in this namespace.
	m.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	return &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: m}
}

func serviceAccount(o Options) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(o, Name, o.Namespace),
	}
}

func subjects(o Options) []rbacv1.Subject {
	return []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: Name, Namespace: o.Namespace}}
}

func clusterRoleBinding(o Options) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: meta(o, ClusterName(o.Namespace), ""),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterName(o.Namespace)},
		Subjects:   subjects(o),
	}
}

// clusterAdminBinding has its own name: a binding's roleRef cannot change,
// so switching modes deletes one binding and creates the other.
func clusterAdminBinding(o Options) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: meta(o, ClusterName(o.Namespace)+"-cluster-admin", ""),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   subjects(o),
	}
}

func leaderElectionRole(o Options) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(o, LeaderElectionRole, o.Namespace),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"coordination.k8s.io"},
			Resources: []string{"leases"},
			Verbs:     []string{"create", "delete", "get", "list", "patch", "update", "watch"},
		}},
	}
}

func leaderElectionRoleBinding(o Options) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(o, LeaderElectionRole, o.Namespace),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: LeaderElectionRole},
		Subjects:   subjects(o),
	}
}

// Ports of the controller container.
const (
	MetricsPort = 8080
	ProbePort   = 8081
	WebhookPort = 9292
	// DashboardPort serves the web dashboard (--dashboard-addr), behind
	// its sign-in.
	DashboardPort = 8090
)

func service(o Options) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(o, Name, o.Namespace),
		Spec: corev1.ServiceSpec{
			Selector: selector(),
			Ports: []corev1.ServicePort{
				{Name: "http-metrics", Port: MetricsPort, TargetPort: intstr.FromString("http-metrics"), Protocol: corev1.ProtocolTCP},
				{Name: "http-webhook", Port: WebhookPort, TargetPort: intstr.FromString("http-webhook"), Protocol: corev1.ProtocolTCP},
				{Name: "http-dashboard", Port: DashboardPort, TargetPort: intstr.FromString("http-dashboard"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

func deployment(o Options) *appsv1.Deployment {
	podLabels := selector()
	podLabels["app.kubernetes.io/version"] = o.Version
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http-probes")}},
			PeriodSeconds:    period,
			FailureThreshold: 3,
		}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(o, Name, o.Namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(o.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: selector()},
			// One replica at a time: the standby keeps running while the
			// new pod starts, and the leader hands its Lease over on
			// SIGTERM.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName: Name,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(int64(65532)),
						RunAsGroup:     ptr.To(int64(65532)),
						FSGroup:        ptr.To(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					// Replicas on different nodes when there are several:
					// a standby on the leader's node does not survive the
					// node.
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: selector()},
								TopologyKey:   corev1.LabelHostname,
							},
						}},
					}},
					Containers: []corev1.Container{{
						Name:    "controller",
						Image:   o.Image,
						Command: []string{"tend"},
						Args: append([]string{
							"controller",
							"--leader-elect",
							"--leader-election-namespace=" + o.Namespace,
							"--data-dir=" + DataDir,
							fmt.Sprintf("--metrics-addr=:%d", MetricsPort),
							fmt.Sprintf("--probe-addr=:%d", ProbePort),
							fmt.Sprintf("--dashboard-addr=:%d", DashboardPort),
						}, compatArgs(o)...),
						Env: []corev1.EnvVar{{
							// The Go runtime collects harder near the
							// limit instead of being OOM-killed.
							Name: "GOMEMLIMIT",
							ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
								ContainerName: "controller", Resource: "limits.memory", Divisor: resource.MustParse("1"),
							}},
						}},
						Ports: []corev1.ContainerPort{
							{Name: "http-metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
							{Name: "http-probes", ContainerPort: ProbePort, Protocol: corev1.ProtocolTCP},
							{Name: "http-webhook", ContainerPort: WebhookPort, Protocol: corev1.ProtocolTCP},
							{Name: "http-dashboard", ContainerPort: DashboardPort, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  probe("/healthz", 20),
						ReadinessProbe: probe("/readyz", 10),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("50m"),
								corev1.ResourceMemory: resource.MustParse("64Mi"),
							},
							// No CPU limit: throttling slows reconciles
							// without protecting anyone.
							Limits: corev1.ResourceList{
								corev1.ResourceMemory: resource.MustParse("512Mi"),
							},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: DataDir},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

func compatArgs(o Options) []string {
	if len(o.Compat) == 0 {
		return nil
	}
	args := []string{"--compat=" + strings.Join(o.Compat, ",")}
	if o.ArgoDecryptionSecret != "" {
		args = append(args, "--argo-decryption-secret="+o.ArgoDecryptionSecret)
	}
	return args
}
