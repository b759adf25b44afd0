package example_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	scaledObjects = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
	// The CRDs the example's keda and monitoring Apps own.
	exampleCRDs = []string{"scaledobjects.keda.sh", "triggerauthentications.keda.sh", "servicemonitors.monitoring.coreos.com"}
	// The Deployments KEDA scales, and the one it does not.
	autoscaled  = []string{"mastodon-web", "mastodon-streaming", "mastodon-sidekiq"}
	deployments = append(autoscaled[:len(autoscaled):len(autoscaled)], "mastodon-sidekiq-scheduler")
	apps        = []string{"tend", "keda", "monitoring", "mastodon"}
)

const (
	platformFile = "clusters/production/platform.yaml"
	valuesFile   = "apps/mastodon/values.yaml"
	preJob       = "mastodon-db-pre-migrate"
	postJob      = "mastodon-db-post-migrate"
	kedaManager  = "keda-operator"
)

// TestMastodonAutoscaled syncs this example from a git server the way a
// cluster would after `tend bootstrap`, plays KEDA, and checks what the
// people behind seed 001 needed: tend leaves the replicas KEDA chose alone,
// health waits for the autoscaler, and an upgrade runs the pre-deploy
// migration before any new pod and the post-deploy one after the rollout.
func TestMastodonAutoscaled(t *testing.T) {
	start := time.Now()
	e := setup(t)

	// The example as its git repository, with two edits: the Source points
	// at this test's git server, and Mastodon goes into the test's
	// namespace.
	repo := testenv.NewGitRepo(t, nil)
	files := testenv.DirFiles(t, ".")
	files[platformFile] = platform.ReplaceAll(t, files[platformFile],
		"https://git.example.com/toot/platform.git", repo.URL,
		"destination: {namespace: mastodon, createNamespace: true}", "destination: {namespace: "+e.Namespace+"}")
	repo.Commit("mastodon platform", files)

	// What the secret store would provide (the chart only references it).
	e.Create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mastodon-secrets", Namespace: e.Namespace},
		StringData: map[string]string{"DB_PASS": "not-a-real-password", "REDIS_PASSWORD": "not-a-real-password", "SECRET_KEY_BASE": "x", "OTP_SECRET": "x"},
	})
	// What `tend bootstrap --path clusters/production` creates.
	e.Bootstrap(t, repo.URL, "clusters/production")

	keda := map[string]int32{"mastodon-web": 4, "mastodon-streaming": 3, "mastodon-sidekiq": 6}
	e.firstSync(t, keda)
	t.Logf("first sync done after %s", time.Since(start).Round(time.Millisecond))
	e.healthFollowsKEDA(t)
	e.syncsLeaveReplicas(t, keda)

	upgrade := time.Now()
	values := platform.ReplaceAll(t, files[valuesFile], "tag: v4.3.2", "tag: v4.3.3")
	e.upgrade(t, keda, func() string { return repo.Commit("mastodon v4.3.3", map[string]string{valuesFile: values}) })
	t.Logf("upgrade done after %s; whole test %s", time.Since(upgrade).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// firstSync: the Deployments roll out after the pre-deploy migration, then
// the sync waits for KEDA to accept the ScaledObjects (the App's health
// rule) before the post-deploy migration. The test then plays KEDA: it
// accepts each ScaledObject and scales its Deployment to keda[name] the way
// the operator's HPA does, through the scale subresource.
func (e *env) firstSync(t *testing.T, keda map[string]int32) {
	t.Helper()
	for _, d := range deployments {
		e.waitDeployment(t, d, "Available", func(d *appsv1.Deployment) bool { return d.Status.AvailableReplicas > 0 })
	}
	for _, name := range autoscaled {
		e.WaitFor(t, "ScaledObject "+name, func() bool { _, err := e.scaledObject(name); return err == nil })
	}
	pre := e.job(t, preJob)
	if !jobComplete(pre) {
		t.Fatalf("Deployments rolled out but the pre-deploy migration Job is not complete: %+v", pre.Status)
	}
	for _, name := range deployments {
		d := e.deployment(t, name)
		if d.CreationTimestamp.Before(pre.Status.CompletionTime) {
			t.Errorf("Deployment %s created at %s, before the pre-deploy migration completed at %s", name, d.CreationTimestamp, pre.Status.CompletionTime)
		}
	}
	time.Sleep(2 * time.Second) // time for tend to (wrongly) go on
	_, err := e.Clientset.BatchV1().Jobs(e.Namespace).Get(context.Background(), postJob, metav1.GetOptions{})
	if a := e.App(t, "mastodon"); !apierrors.IsNotFound(err) || len(a.Status.History) > 0 {
		t.Errorf("the mastodon sync went on to the post-deploy migration before KEDA accepted the ScaledObjects: "+
			"the App's health rule for keda.sh ScaledObject was not applied (get post-deploy Job: %v; syncs recorded: %d)", err, len(a.Status.History))
	}

	for _, name := range autoscaled {
		e.setScaledObjectReady(t, name, metav1.ConditionTrue, "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling")
		e.scale(t, name, keda[name])
	}
	e.WaitAppsHealthy(t)
	e.waitJob(t, postJob, jobComplete)
	e.checkReplicas(t, keda)
	e.checkObjects(t)
}

// healthFollowsKEDA: a ScaledObject KEDA cannot serve degrades the App,
// with KEDA's message; fixed, the App is Healthy again.
func (e *env) healthFollowsKEDA(t *testing.T) {
	t.Helper()
	e.setScaledObjectReady(t, "mastodon-web", metav1.ConditionFalse, "ScaledObjectCheckFailed", "prometheus query failed: connection refused")
	a := e.WaitApp(t, "mastodon", "Degraded", func(a *tendv1.App) bool { return a.Status.Health == "Degraded" })
	if msg := platform.ReadyMessage(a); !strings.Contains(msg, "mastodon-web") || !strings.Contains(msg, "connection refused") {
		t.Errorf("Degraded App's Ready message %q does not name the ScaledObject and KEDA's message", msg)
	}
	e.setScaledObjectReady(t, "mastodon-web", metav1.ConditionTrue, "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling")
	e.WaitApp(t, "mastodon", "Healthy again", func(a *tendv1.App) bool { return a.Status.Health == "Healthy" })
}

// syncsLeaveReplicas: tend does not fight KEDA. KEDA scales between syncs;
// a requested sync (`tend sync mastodon`) and two forced ones (`--force`,
// which re-apply every object) leave its replicas alone.
func (e *env) syncsLeaveReplicas(t *testing.T, keda map[string]int32) {
	t.Helper()
	for i, opts := range []string{"", "force", "force"} {
		for _, name := range autoscaled {
			keda[name]++
			e.scale(t, name, keda[name])
		}
		rec := e.RequestSync(t, "mastodon", opts)
		if rec.Result != "Succeeded" {
			t.Fatalf("sync %d (options %q): %s: %s", i+1, opts, rec.Result, rec.Message)
		}
		e.WaitAppsHealthy(t)
		e.checkReplicas(t, keda)
	}
}

// upgrade commits the new image tag and checks the order of what follows,
// from watch events (ordered by resourceVersion) and by the API's
// timestamps (whole seconds): the pre-deploy migration completed before any
// new ReplicaSet or pod, the post-deploy one started after every Deployment
// rolled out, and web and streaming never had fewer available pods than
// KEDA asked for.
func (e *env) upgrade(t *testing.T, keda map[string]int32, commit func() string) {
	t.Helper()
	events := e.record(t)
	oldPre, oldPost := e.job(t, preJob).UID, e.job(t, postJob).UID
	rev := commit()
	e.RequestFetch(t, "tend")
	e.WaitApp(t, "mastodon", "synced revision "+rev[:8], func(a *tendv1.App) bool {
		return a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy"
	})
	post := e.waitJob(t, postJob, func(j *batchv1.Job) bool { return j.UID != oldPost && jobComplete(j) })
	pre := e.job(t, preJob)
	if pre.UID == oldPre || !jobComplete(pre) {
		t.Fatalf("the upgrade did not run the pre-deploy migration again (uid %s, was %s; status %+v)", pre.UID, oldPre, pre.Status)
	}
	for _, j := range []*batchv1.Job{pre, post} {
		if img := j.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":v4.3.3") {
			t.Errorf("Job %s ran image %s, want the new version", j.Name, img)
		}
	}
	e.WaitAppsHealthy(t)
	e.checkReplicas(t, keda)
	events.stop()

	preDone := events.first(t, "pre-deploy migration complete", func(o runtime.Object) bool {
		j, ok := o.(*batchv1.Job)
		return ok && j.Name == preJob && j.UID != oldPre && jobComplete(j)
	})
	postStart := events.first(t, "post-deploy migration created", func(o runtime.Object) bool {
		j, ok := o.(*batchv1.Job)
		return ok && j.Name == postJob && j.UID != oldPost
	})
	for _, name := range deployments {
		d := e.deployment(t, name)
		newRS := events.first(t, "new ReplicaSet of "+name, func(o runtime.Object) bool {
			rs, ok := o.(*appsv1.ReplicaSet)
			return ok && metav1.IsControlledBy(rs, d) && newVersion(rs.Spec.Template)
		})
		rolledOut := events.first(t, "rollout of "+name, func(o runtime.Object) bool {
			d, ok := o.(*appsv1.Deployment)
			return ok && d.Name == name && newVersion(d.Spec.Template) && rolloutDone(d)
		})
		if !preDone.before(newRS) {
			t.Errorf("new ReplicaSet of %s created before the pre-deploy migration completed (resourceVersion %d < %d)", name, newRS.rv, preDone.rv)
		}
		if !rolledOut.before(postStart) {
			t.Errorf("post-deploy migration created before %s finished rolling out (resourceVersion %d < %d)", name, postStart.rv, rolledOut.rv)
		}
		t.Logf("%s: new ReplicaSet seen %s after the pre-deploy migration completed; rolled out %s before the post-deploy migration was", name,
			newRS.at.Sub(preDone.at).Round(time.Millisecond), postStart.at.Sub(rolledOut.at).Round(time.Millisecond))

		// The same by the API's timestamps.
		rs := e.newReplicaSet(t, d)
		if rs.CreationTimestamp.Before(pre.Status.CompletionTime) {
			t.Errorf("ReplicaSet %s created at %s, before the pre-deploy migration completed at %s", rs.Name, rs.CreationTimestamp, pre.Status.CompletionTime)
		}
		pods, err := e.Clientset.CoreV1().Pods(e.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "pod-template-hash=" + rs.Labels["pod-template-hash"]})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("pods of %s: %v (%d)", rs.Name, err, len(pods.Items))
		}
		for _, p := range pods.Items {
			if p.CreationTimestamp.Before(pre.Status.CompletionTime) {
				t.Errorf("pod %s created at %s, before the pre-deploy migration completed at %s", p.Name, p.CreationTimestamp, pre.Status.CompletionTime)
			}
		}
		if done := rolloutTime(d); done.IsZero() || post.CreationTimestamp.Before(&done) {
			t.Errorf("post-deploy migration created at %s, before %s finished its rollout at %s", post.CreationTimestamp, name, done)
		}
	}
	for _, name := range []string{"mastodon-web", "mastodon-streaming"} {
		for _, o := range events.objects() {
			if d, ok := o.(*appsv1.Deployment); ok && d.Name == name && d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas < keda[name] {
				t.Errorf("during the upgrade %s had %d available replicas, fewer than the %d KEDA set", name, d.Status.AvailableReplicas, keda[name])
				break
			}
		}
	}
}
