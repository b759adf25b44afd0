package objstatus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestWriteKeepsBothWritersChanges: a reconcile's status written over a
// newer version of the object (another writer changed other fields and
// conditions meanwhile) keeps what the reconcile computed and what the
// other writer wrote.
func TestWriteKeepsBothWritersChanges(t *testing.T) {
	c, ns := setup(t)
	ctx := context.Background()
	src := newSource(t, c, ns)

	before := src.DeepCopy()
	mine := src.DeepCopy()
	mine.Status.ObservedGeneration = mine.Generation
	set(mine, tendv1.ConditionReady, metav1.ConditionTrue, "Succeeded", "fetched")

	// Another writer, between the reconcile's read and its write.
	other := src.DeepCopy()
	other.Status.Artifact = &tendv1.Artifact{Revision: "abc", Ref: "main", FetchedAt: metav1.Now()}
	set(other, "Other", metav1.ConditionTrue, "Because", "the other writer's")
	set(other, tendv1.ConditionReady, metav1.ConditionFalse, "Theirs", "overwritten by the reconcile")
	if err := c.Status().Update(ctx, other); err != nil {
		t.Fatal(err)
	}

	wrote, err := objstatus.Writer{Client: c}.Write(ctx, mine, before)
	if err != nil || !wrote {
		t.Fatalf("Write = %v, %v; want a write", wrote, err)
	}
	var got tendv1.Source
	if err := c.Get(ctx, client.ObjectKeyFromObject(src), &got); err != nil {
		t.Fatal(err)
	}
	if r := meta.FindStatusCondition(got.Status.Conditions, tendv1.ConditionReady); r == nil || r.Reason != "Succeeded" {
		t.Errorf("Ready = %+v, want the reconcile's", r)
	}
	if o := meta.FindStatusCondition(got.Status.Conditions, "Other"); o == nil || o.Reason != "Because" {
		t.Errorf("the other writer's condition is gone: %+v", got.Status.Conditions)
	}
	if got.Status.Artifact == nil || got.Status.Artifact.Revision != "abc" {
		t.Errorf("the other writer's artifact is gone: %+v", got.Status.Artifact)
	}
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration = %d, want %d", got.Status.ObservedGeneration, got.Generation)
	}
	// mine is what was written; before what it replaced.
	if mine.ResourceVersion != got.ResourceVersion || mine.Status.Artifact == nil {
		t.Errorf("obj is not the written object: %s %+v", mine.ResourceVersion, mine.Status.Artifact)
	}
	if before.ResourceVersion != other.ResourceVersion {
		t.Errorf("before has resourceVersion %s, want the replaced %s", before.ResourceVersion, other.ResourceVersion)
	}

	// A reconcile that changes nothing writes nothing.
	same := got.DeepCopy()
	if wrote, err := (objstatus.Writer{Client: c}).Write(ctx, same, got.DeepCopy()); err != nil || wrote {
		t.Errorf("Write of an unchanged status = %v, %v; want no write", wrote, err)
	}
}

// TestWriteAnnouncesStalledOnce: the write that makes an object Stalled
// records one event; writes that leave it Stalled for the same reason
// record none, even when they conflict with a write that already did.
func TestWriteAnnouncesStalledOnce(t *testing.T) {
	c, ns := setup(t)
	ctx := context.Background()
	rec := &recorder{}
	w := objstatus.Writer{Client: c, Recorder: rec, Action: "Fetch"}
	src := newSource(t, c, ns)

	// Two reconciles read the same version and both find the problem.
	first, second := src.DeepCopy(), src.DeepCopy()
	for _, s := range []*tendv1.Source{first, second} {
		set(s, tendv1.ConditionStalled, metav1.ConditionTrue, "SecretInvalid", "create the Secret")
	}
	if _, err := w.Write(ctx, first, src.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ctx, second, src.DeepCopy()); err != nil { // conflicts
		t.Fatal(err)
	}
	// A later reconcile, same problem, new generation observed.
	third := second.DeepCopy()
	third.Status.ObservedGeneration = 7
	if _, err := w.Write(ctx, third, second.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if got := rec.list(); len(got) != 1 || got[0] != "Warning SecretInvalid Fetch: create the Secret" {
		t.Errorf("events = %q, want one", got)
	}
	// A different problem is a new event.
	fourth := third.DeepCopy()
	set(fourth, tendv1.ConditionStalled, metav1.ConditionTrue, "SecretInvalid", "the Secret has no key \"token\"")
	if _, err := w.Write(ctx, fourth, third.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if got := rec.list(); len(got) != 2 {
		t.Errorf("events = %q, want two", got)
	}
}

// TestWriteReturnsItsError: a status the apiserver refuses is an error
// naming the object, not dropped.
func TestWriteReturnsItsError(t *testing.T) {
	c, ns := setup(t)
	src := newSource(t, c, ns)
	mine := src.DeepCopy()
	set(mine, tendv1.ConditionReady, metav1.ConditionFalse, "not a valid reason!", "x")
	_, err := objstatus.Writer{Client: c}.Write(context.Background(), mine, src.DeepCopy())
	if err == nil {
		t.Fatal("no error for an invalid status")
	}
	if want := "write status of Source " + ns + "/repo"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func setup(t *testing.T) (client.Client, string) {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c, env.Namespace
}

func newSource(t *testing.T, c client.Client, ns string) *tendv1.Source {
	t.Helper()
	src := &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "repo"},
		Spec:       tendv1.SourceSpec{Git: &tendv1.GitSource{URL: "https://127.0.0.1:9/repo.git"}, Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := c.Create(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	return src
}

func set(s *tendv1.Source, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg})
}

// recorder keeps the events it is given.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Eventf(_ runtime.Object, _ runtime.Object, typ, reason, action, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s %s %s: %s", typ, reason, action, fmt.Sprintf(note, args...)))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}
