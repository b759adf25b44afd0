package cli

import (
	"context"
	"encoding/json"
	authenticationv1 "k8s.io/api/authentication/v1"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

const (
	revA = "1111111111111111111111111111111111111111"
	revB = "2222222222222222222222222222222222222222"
)

// createApp creates an App and sets its status as a controller would.
func (cl *testCluster) createApp(t *testing.T, name string, status tendv1.AppStatus) *tendv1.App {
	t.Helper()
	ctx := context.Background()
	a := &tendv1.App{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.Namespace},
		Spec:       tendv1.AppSpec{SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "apps/" + name},
	}
	if err := cl.c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Status = status
	if err := cl.c.Status().Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a
}

func (cl *testCluster) createSource(t *testing.T, name, url string, artifact *tendv1.Artifact) *tendv1.Source {
	t.Helper()
	ctx := context.Background()
	s := &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.Namespace},
		Spec: tendv1.SourceSpec{
			Git:      &tendv1.GitSource{URL: url, Ref: tendv1.GitRef{Branch: "main"}},
			Interval: metav1.Duration{Duration: time.Second},
			Timeout:  metav1.Duration{Duration: 30 * time.Second},
		},
	}
	if err := cl.c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if artifact != nil {
		s.Status.Artifact = artifact
		s.Status.Conditions = []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "revision " + shortRev(artifact.Revision), LastTransitionTime: metav1.Now()}}
		if err := cl.c.Status().Update(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func healthyStatus() tendv1.AppStatus {
	start := metav1.NewTime(time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
	return tendv1.AppStatus{
		Sync: tendv1.SyncSynced, Health: "Healthy", Revision: revB, Objects: 3,
		History: []tendv1.SyncRecord{
			{ID: 2, Revision: revB, StartedAt: start, Duration: metav1.Duration{Duration: 1500 * time.Millisecond}, Result: "Succeeded", Changed: 1, Message: "new revision", Healthy: true},
			{ID: 1, Revision: revA, StartedAt: metav1.NewTime(start.Add(-time.Hour)), Duration: metav1.Duration{Duration: time.Second}, Result: "Succeeded", Changed: 3, Message: "new revision", Healthy: true},
		},
	}
}

func TestStatusExitCodes(t *testing.T) {
	cl := newCluster(t)
	code, out, _ := cl.tend(t, "status")
	if code != ExitOK || !strings.Contains(out, "no Apps in namespace "+cl.Namespace) {
		t.Fatalf("empty namespace: exit %d\n%s", code, out)
	}
	cl.createSource(t, "repo", "https://git.example.com/ops.git", &tendv1.Artifact{Revision: revB, FetchedAt: metav1.Now()})
	cl.createApp(t, "web", healthyStatus())
	code, out, stderr := cl.tend(t, "status")
	if code != ExitOK {
		t.Fatalf("all healthy: exit %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{"APP", "web", "Synced", "Healthy", shortRev(revB), "SOURCE", "repo", "True"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour in output that is not a terminal: %q", out)
	}

	st := healthyStatus()
	st.Health = "Degraded"
	st.Conditions = []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Degraded", Message: "Deployment api: 0/2 replicas available", LastTransitionTime: metav1.Now()}}
	cl.createApp(t, "api", st)
	code, out, stderr = cl.tend(t, "status")
	if code != ExitDiff {
		t.Fatalf("a Degraded App: exit %d, want %d\n%s", code, ExitDiff, out)
	}
	if !strings.Contains(out, "0/2 replicas available") || !strings.Contains(stderr, "1 of 2 Apps not Synced and Healthy") {
		t.Errorf("status does not say what is wrong:\n%s\n%s", out, stderr)
	}

	code, out, _ = cl.tend(t, "status", "-o", "json")
	if code != ExitDiff {
		t.Fatalf("-o json: exit %d", code)
	}
	var got struct {
		Apps    []appStatus    `json:"apps"`
		Sources []sourceStatus `json:"sources"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(got.Apps) != 2 || got.Apps[0].Name != "api" || got.Apps[0].Health != "Degraded" || len(got.Sources) != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestGet(t *testing.T) {
	cl := newCluster(t)
	cl.createSource(t, "repo", "https://git.example.com/ops.git", &tendv1.Artifact{Revision: revB, FetchedAt: metav1.Now()})
	cl.createApp(t, "web", healthyStatus())

	code, out, stderr := cl.tend(t, "get", "apps")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "web") || !strings.Contains(out, "Healthy") {
		t.Errorf("get apps:\n%s", out)
	}
	code, out, _ = cl.tend(t, "get", "app", "web", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var app tendv1.App
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatalf("not an App: %v\n%s", err, out)
	}
	if app.Kind != "App" || app.Name != "web" || app.Status.Revision != revB || app.ManagedFields != nil {
		t.Errorf("got %s %s revision %s managedFields %v", app.Kind, app.Name, app.Status.Revision, app.ManagedFields)
	}
	code, out, _ = cl.tend(t, "get", "sources", "-o", "yaml")
	if code != ExitOK || !strings.Contains(out, "kind: List") || !strings.Contains(out, "url: https://git.example.com/ops.git") {
		t.Errorf("get sources -o yaml: exit %d\n%s", code, out)
	}
	code, out, _ = cl.tend(t, "get", "src")
	if code != ExitOK || !strings.Contains(out, "https://git.example.com/ops.git") || !strings.Contains(out, shortRev(revB)) {
		t.Errorf("get src: exit %d\n%s", code, out)
	}
	code, out, _ = cl.tend(t, "get", "apps", "-A")
	if code != ExitOK || !strings.Contains(out, cl.Namespace) {
		t.Errorf("get apps -A: exit %d\n%s", code, out)
	}
	code, _, stderr = cl.tend(t, "get", "aps")
	if code != ExitUsage || !strings.Contains(stderr, "did you mean 'apps'?") {
		t.Errorf("get aps: exit %d: %s", code, stderr)
	}

	// Notifiers: what they sent and whether they can send.
	n := &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: cl.Namespace}, Spec: tendv1.NotifierSpec{Provider: "discord"}}
	if err := cl.c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	n.Status = tendv1.NotifierStatus{Sent: 42, Failed: 3, Conditions: []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "DeliveryFailed", Message: "HTTP 404 Not Found", LastTransitionTime: metav1.Now()}}}
	if err := cl.c.Status().Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cl.tend(t, "get", "notifiers")
	if code != ExitOK || !regexp.MustCompile(`chat\s+discord\s+42\s+3\s+False\s+HTTP 404 Not Found`).MatchString(out) {
		t.Errorf("get notifiers: exit %d\n%s", code, out)
	}
	code, out, _ = cl.tend(t, "get", "notifier", "chat", "-o", "yaml")
	if code != ExitOK || !strings.Contains(out, "kind: Notifier") || !strings.Contains(out, "sent: 42") {
		t.Errorf("get notifier chat -o yaml: exit %d\n%s", code, out)
	}
	code, _, stderr = cl.tend(t, "get", "notifier", "chaat")
	if code != ExitUsage || !strings.Contains(stderr, "Notifier 'chaat' not found; did you mean 'chat'?") {
		t.Errorf("get notifier chaat: exit %d: %s", code, stderr)
	}

	// Warehouses and Stages: the newest freight, and what each Stage
	// promoted.
	ctx := context.Background()
	wh := &tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: cl.Namespace}, Spec: tendv1.WarehouseSpec{
		Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: "registry.example.com/team/web"}}},
	}}
	if err := cl.c.Create(ctx, wh); err != nil {
		t.Fatal(err)
	}
	wh.Status.Freight = []tendv1.Freight{{Name: "0a8071867d94", DiscoveredAt: metav1.Now(), Images: []tendv1.FreightImage{{Repository: "registry.example.com/team/web", Tag: "1.2.4", Digest: "sha256:00"}}}}
	if err := cl.c.Status().Update(ctx, wh); err != nil {
		t.Fatal(err)
	}
	st := &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "dev", Namespace: cl.Namespace}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"},
		Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "repo"}},
		Updates:   []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/dev"}}},
	}}
	if err := cl.c.Create(ctx, st); err != nil {
		t.Fatal(err)
	}
	st.Status.Freight = &tendv1.Promotion{Name: "0a8071867d94", Versions: "web:1.2.4", Revision: revB, PromotedAt: metav1.Now()}
	st.Status.Conditions = []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Promoted", Message: "promoted freight 0a8071867d94", LastTransitionTime: metav1.Now()}}
	if err := cl.c.Status().Update(ctx, st); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cl.tend(t, "get", "warehouses")
	if code != ExitOK || !regexp.MustCompile(`web\s+0a8071867d94\s+web:1\.2\.4\s+\S+\s+Unknown`).MatchString(out) {
		t.Errorf("get warehouses: exit %d\n%s", code, out)
	}
	code, out, _ = cl.tend(t, "get", "stages")
	if code != ExitOK || !regexp.MustCompile(`dev\s+web\s+0a8071867d94\s+web:1\.2\.4\s+`+shortRev(revB)+`\s+\S+\s+True\s+promoted freight 0a8071867d94`).MatchString(out) {
		t.Errorf("get stages: exit %d\n%s", code, out)
	}
	code, _, stderr = cl.tend(t, "get", "stage", "deb")
	if code != ExitUsage || !strings.Contains(stderr, "Stage 'deb' not found; did you mean 'dev'?") {
		t.Errorf("get stage deb: exit %d: %s", code, stderr)
	}
}

func TestUnknownAppSuggestsClosest(t *testing.T) {
	cl := newCluster(t)
	cl.createApp(t, "web", healthyStatus())
	cl.createApp(t, "worker", healthyStatus())
	for _, args := range [][]string{{"history", "webb"}, {"get", "app", "webb"}, {"rollback", "webb", "1"}, {"sync", "webb"}, {"diff", "webb"}, {"render", "webb"}} {
		code, _, stderr := cl.tend(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
		if want := "tend: App 'webb' not found; did you mean 'web'?\n"; stderr != want {
			t.Errorf("%v: stderr %q, want %q", args, stderr, want)
		}
	}
	code, _, stderr := cl.tend(t, "history", "database")
	if code != ExitUsage || !strings.Contains(stderr, "App 'database' not found in namespace "+cl.Namespace) {
		t.Errorf("no close name: exit %d: %s", code, stderr)
	}
	// A name no other test uses: the cluster is shared (the demo test has
	// an App "web" in tend-system).
	cl.createApp(t, "only-in-this-namespace", healthyStatus())
	code, _, stderr = cl.tend(t, "history", "only-in-this-namespace", "-n", "default")
	if code != ExitUsage || !strings.Contains(stderr, cl.Namespace) || !strings.Contains(stderr, "(pass -n ") {
		t.Errorf("App in another namespace: exit %d: %s", code, stderr)
	}
}

func TestHistoryAndRollback(t *testing.T) {
	cl := newCluster(t)
	cl.createApp(t, "web", healthyStatus())
	ctx := context.Background()

	code, out, stderr := cl.tend(t, "history", "web")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID   REVISION       STARTED") {
		t.Fatalf("history:\n%s", out)
	}
	for i, want := range []string{"2    " + shortRev(revB) + "   2026-03-14T09:00:00Z   1.5s", "1    " + shortRev(revA) + "   2026-03-14T08:00:00Z   1s"} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("history line %d:\n%q\nwant prefix\n%q", i+1, lines[i+1], want)
		}
	}

	code, out, stderr = cl.tend(t, "rollback", "web", "1")
	if code != ExitOK {
		t.Fatalf("rollback: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "pinned to "+shortRev(revA)) || !strings.Contains(out, "tend rollback web --unpin") {
		t.Errorf("rollback output:\n%s", out)
	}
	var app tendv1.App
	key := types.NamespacedName{Namespace: cl.Namespace, Name: "web"}
	if err := cl.c.Get(ctx, key, &app); err != nil {
		t.Fatal(err)
	}
	if app.Spec.TargetRevision != revA {
		t.Fatalf("spec.targetRevision = %q, want %q", app.Spec.TargetRevision, revA)
	}
	code, out, _ = cl.tend(t, "status")
	if !strings.Contains(out, "pinned to "+shortRev(revA)) {
		t.Errorf("status does not show the pin (exit %d):\n%s", code, out)
	}

	code, _, stderr = cl.tend(t, "rollback", "web", "7")
	if code != ExitUsage || !strings.Contains(stderr, "no sync 7 in its history (IDs: 2, 1)") {
		t.Errorf("unknown ID: exit %d: %s", code, stderr)
	}
	code, _, stderr = cl.tend(t, "rollback", "web")
	if code != ExitUsage || !strings.Contains(stderr, "--unpin") {
		t.Errorf("no ID: exit %d: %s", code, stderr)
	}

	code, out, stderr = cl.tend(t, "rollback", "web", "--unpin")
	if code != ExitOK || !strings.Contains(out, "follows its Source again") {
		t.Fatalf("unpin: exit %d: %s\n%s", code, stderr, out)
	}
	if err := cl.c.Get(ctx, key, &app); err != nil {
		t.Fatal(err)
	}
	if app.Spec.TargetRevision != "" {
		t.Fatalf("spec.targetRevision = %q after --unpin", app.Spec.TargetRevision)
	}
	code, out, _ = cl.tend(t, "rollback", "web", "--unpin")
	if code != ExitOK || !strings.Contains(out, "is not pinned") {
		t.Errorf("unpin again: exit %d\n%s", code, out)
	}
}

func TestRejectedCredentialsIsOneLine(t *testing.T) {
	cl := newCluster(t)
	cfg, err := clientcmd.LoadFromFile(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for name := range cfg.AuthInfos {
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "not-a-token"}
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "status", "--kubeconfig", kc)
	if code != ExitUsage || !strings.Contains(stderr, "does not accept the kubeconfig's credentials") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// tend promote approve sets the Stage's approval annotation: the
// Warehouse's newest freight by default, or the one named; freight the
// Warehouse does not keep, and a Stage without approval, are refused.
func TestPromoteApprove(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	wh := &tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: cl.Namespace}, Spec: tendv1.WarehouseSpec{
		Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: "registry.example.com/team/web"}}},
	}}
	if err := cl.c.Create(ctx, wh); err != nil {
		t.Fatal(err)
	}
	image := func(tag string) []tendv1.FreightImage {
		return []tendv1.FreightImage{{Repository: "registry.example.com/team/web", Tag: tag, Digest: "sha256:00"}}
	}
	wh.Status.Freight = []tendv1.Freight{
		{Name: "bbbbbbbbbbbb", DiscoveredAt: metav1.Now(), Images: image("1.1.0")},
		{Name: "aaaaaaaaaaaa", DiscoveredAt: metav1.Now(), Images: image("1.0.0")},
	}
	if err := cl.c.Status().Update(ctx, wh); err != nil {
		t.Fatal(err)
	}
	stage := func(name string, approval bool) {
		st := &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.Namespace}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web"}, Approval: approval,
			Git:     tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "repo"}},
			Updates: []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/" + name}}},
		}}
		if err := cl.c.Create(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	stage("prod", true)
	stage("dev", false)
	approved := func() string {
		var st tendv1.Stage
		if err := cl.c.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: "prod"}, &st); err != nil {
			t.Fatal(err)
		}
		return st.Annotations[tendv1.AnnotationApprovedFreight]
	}
	code, out, stderr := cl.tend(t, "promote", "approve", "prod")
	if code != ExitOK || out != "approved freight bbbbbbbbbbbb (web:1.1.0) for Stage "+cl.Namespace+"/prod\n" || approved() != "bbbbbbbbbbbb" {
		t.Errorf("approve the newest: exit %d, %q %s; annotation %q", code, out, stderr, approved())
	}
	if code, _, stderr = cl.tend(t, "promote", "approve", "prod", "aaaaaaaaaaaa"); code != ExitOK || approved() != "aaaaaaaaaaaa" {
		t.Errorf("approve older freight: exit %d %s; annotation %q", code, stderr, approved())
	}
	if code, _, stderr = cl.tend(t, "promote", "approve", "prod", "cccccccccccc"); code != ExitUsage || !strings.Contains(stderr, `keeps no freight "cccccccccccc"; it keeps bbbbbbbbbbbb, aaaaaaaaaaaa`) || approved() != "aaaaaaaaaaaa" {
		t.Errorf("approve unknown freight: exit %d %s", code, stderr)
	}
	if code, _, stderr = cl.tend(t, "promote", "approve", "dev"); code != ExitUsage || !strings.Contains(stderr, "has no spec.approval") {
		t.Errorf("approve for a Stage without approval: exit %d %s", code, stderr)
	}
	// Who approved: the user the cluster knows the CLI as.
	review, err := cl.Clientset.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var prod tendv1.Stage
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: "prod"}, &prod); err != nil {
		t.Fatal(err)
	}
	if who := prod.Annotations[tendv1.AnnotationApprovedBy]; who == "" || who != review.Status.UserInfo.Username {
		t.Errorf("approved-by %q, want %q", who, review.Status.UserInfo.Username)
	}
	// A Stage with an upstream: without FREIGHT, what passed upstream.
	up := &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "staging", Namespace: cl.Namespace}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"},
		Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "repo"}},
		Updates:   []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/staging"}}},
	}}
	if err := cl.c.Create(ctx, up); err != nil {
		t.Fatal(err)
	}
	down := &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "live", Namespace: cl.Namespace}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"}, Approval: true, Upstream: &tendv1.StageUpstream{Stage: "staging"},
		Git:     tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "repo"}},
		Updates: []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/live"}}},
	}}
	if err := cl.c.Create(ctx, down); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = cl.tend(t, "promote", "approve", "live"); code != ExitUsage || !strings.Contains(stderr, "nothing has passed in the upstream Stage "+cl.Namespace+"/staging yet") {
		t.Errorf("approve before anything passed upstream: exit %d %s", code, stderr)
	}
	now := metav1.Now()
	up.Status.Freight = &tendv1.Promotion{Name: "aaaaaaaaaaaa", Versions: "web:1.0.0", Revision: "abc", PromotedAt: now, HealthySince: &now, VerifiedAt: &now}
	if err := cl.c.Status().Update(ctx, up); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr = cl.tend(t, "promote", "approve", "live"); code != ExitOK || !strings.Contains(out, "approved freight aaaaaaaaaaaa (web:1.0.0)") {
		t.Errorf("approve what passed upstream: exit %d, %q %s", code, out, stderr)
	}
}

// TestPromoteListShowRollback: list prints each Warehouse's Stages
// upstream first, with how far their freight got and what they wait for;
// show prints one Stage, its promotion and history; rollback approves the
// freight a Stage with approval ran before.
func TestPromoteListShowRollback(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	now := metav1.Now()
	mk := func(name string, upstream *tendv1.StageUpstream, approval bool, status tendv1.StageStatus) {
		t.Helper()
		st := &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.Namespace}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web"}, Upstream: upstream, Approval: approval,
			Apps:    []tendv1.LocalObjectReference{{Name: "web-" + name}},
			Git:     tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "repo"}},
			Updates: []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/" + name}}},
		}}
		if err := cl.c.Create(ctx, st); err != nil {
			t.Fatal(err)
		}
		st.Status = status
		if err := cl.c.Status().Update(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	passed := func(name, versions, by string) tendv1.Promotion {
		return tendv1.Promotion{Name: name, Versions: versions, Revision: strings.Repeat(name[:1], 40), PromotedAt: now, By: by, HealthySince: &now, VerifiedAt: &now, Verification: tendv1.VerificationSucceeded}
	}
	ready := func(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: tendv1.ConditionReady, Status: status, Reason: reason, Message: msg, LastTransitionTime: now}}
	}
	wh := &tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: cl.Namespace}, Spec: tendv1.WarehouseSpec{
		Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: "registry.example.com/team/web"}}},
	}}
	if err := cl.c.Create(ctx, wh); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, tag string }{{"cccccccccccc", "1.2.0"}, {"bbbbbbbbbbbb", "1.1.0"}, {"aaaaaaaaaaaa", "1.0.0"}} {
		wh.Status.Freight = append(wh.Status.Freight, tendv1.Freight{Name: f.name, DiscoveredAt: now, Images: []tendv1.FreightImage{{Repository: "registry.example.com/team/web", Tag: f.tag, Digest: "sha256:00"}}})
	}
	if err := cl.c.Status().Update(ctx, wh); err != nil {
		t.Fatal(err)
	}
	// Created downstream first: list sorts by pipeline, not by name or age.
	old, cur := passed("aaaaaaaaaaaa", "web:1.0.0", "upstream Stage staging"), passed("bbbbbbbbbbbb", "web:1.1.0", "approved by alice")
	mk("prod", &tendv1.StageUpstream{Stage: "staging"}, true, tendv1.StageStatus{Freight: &cur, History: []tendv1.Promotion{cur, old},
		Conditions: ready(metav1.ConditionTrue, "Promoted", "runs freight bbbbbbbbbbbb (web:1.1.0), passed")})
	mk("staging", &tendv1.StageUpstream{Stage: "dev", Soak: metav1.Duration{Duration: time.Hour}}, false, tendv1.StageStatus{Freight: &cur, History: []tendv1.Promotion{cur},
		Conditions: ready(metav1.ConditionFalse, "WaitingForUpstream", "waiting for freight cccccccccccc (web:1.2.0) to pass in the upstream Stage dev")})
	failed := tendv1.Promotion{Name: "cccccccccccc", Versions: "web:1.2.0", Revision: strings.Repeat("c", 40), PromotedAt: now, By: "warehouse web", HealthySince: &now, Verification: tendv1.VerificationFailed, Message: "the verification Job dev-verify-1 failed"}
	mk("dev", nil, false, tendv1.StageStatus{Freight: &failed, History: []tendv1.Promotion{failed, cur},
		Conditions: ready(metav1.ConditionFalse, "VerificationFailed", "the verification Job dev-verify-1 failed")})

	code, out, stderr := cl.tend(t, "promote", "list", "-n", cl.Namespace)
	if code != ExitOK {
		t.Fatalf("list: exit %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "WAREHOUSE") {
		t.Fatalf("list:\n%s", out)
	}
	for i, want := range [][]string{
		{"web", "dev", "warehouse", "cccccccccccc", "web:1.2.0", "verification failed", "the verification Job dev-verify-1 failed"},
		{"web", "staging", "dev (soak 1h0m0s)", "bbbbbbbbbbbb", "web:1.1.0", "passed", "waiting for freight cccccccccccc"},
		{"web", "prod", "staging", "bbbbbbbbbbbb", "web:1.1.0", "passed"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("list line %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}

	code, out, stderr = cl.tend(t, "promote", "show", "prod", "-n", cl.Namespace)
	for _, want := range []string{"Stage " + cl.Namespace + "/prod", "From:       staging", "Apps:       web-prod", "Gates:      approval", "Freight bbbbbbbbbbbb (web:1.1.0): passed", "approved by alice", "History:", "aaaaaaaaaaaa   web:1.0.0"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("show lacks %q: exit %d %s\n%s", want, code, stderr, out)
		}
	}

	code, out, stderr = cl.tend(t, "promote", "rollback", "prod", "-n", cl.Namespace)
	var prod tendv1.Stage
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: "prod"}, &prod); err != nil {
		t.Fatal(err)
	}
	if code != ExitOK || prod.Annotations[tendv1.AnnotationApprovedFreight] != "aaaaaaaaaaaa" || !strings.Contains(out, "back from freight bbbbbbbbbbbb (web:1.1.0) to aaaaaaaaaaaa (web:1.0.0)") {
		t.Errorf("rollback: exit %d %q %s; annotations %v", code, out, stderr, prod.Annotations)
	}
	if code, _, stderr = cl.tend(t, "promote", "rollback", "staging", "-n", cl.Namespace); code != ExitUsage || !strings.Contains(stderr, "set spec.approval: true first") {
		t.Errorf("rollback of a Stage without approval: exit %d %s", code, stderr)
	}
}
