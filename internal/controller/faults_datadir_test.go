package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// mountSmallDisk mounts a tmpfs of size bytes on a new directory and
// unmounts it when the test ends; it skips the test where mounting is not
// permitted (not root, or no CAP_SYS_ADMIN).
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("mounting a %s tmpfs as the full data directory needs root (CAP_SYS_ADMIN): %v", size, err)
		}
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	// Registered after t.TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir that leaves about leave bytes free on
// its file system, and returns the file's path.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= leave {
		t.Fatalf("%s has %d bytes free, want more than %d", dir, free, leave)
	}
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, free-leave), 0o644); err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	return path
}

// TestDataDirFullKeepsLastGoodCheckout: the controller's --data-dir is a
// small file system, and it is full when a commit arrives whose files do
// not fit (its git objects do: they compress well). The fetch fails while
// checking the files out; the Source's Ready condition says the disk is
// full and names --data-dir; the checkout is put back at the last good
// revision, so that an App rendering again meanwhile applies that
// revision's files, not a mix; once space is freed the commit is applied
// with no help.
func TestDataDirFullKeepsLastGoodCheckout(t *testing.T) {
	data := mountSmallDisk(t, "8m")
	e := startControllerWith(t, func(o *Options) { o.DataDir = data })
	ctx := context.Background()
	repo := newCtlRepo(t)
	rev1 := repo.commit("cfg v1", map[string]string{"app/a-cm.yaml": configMapYAML("cfg", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "synced at "+rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev1 && a.Status.Sync == tendv1.SyncSynced
	})
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv := cm.ResourceVersion

	// 512 KiB free: room for the fetch, not for a 4 MiB file checked out
	// after the ConfigMap's (git writes files in path order).
	filler := fillDisk(t, data, 512<<10)
	rev2 := repo.commit("cfg v2 and a big file", map[string]string{
		"app/a-cm.yaml":  configMapYAML("cfg", "v2"),
		"app/z-data.txt": strings.Repeat("tend fills the disk\n", 4<<20/20),
	})
	src := waitSource(t, e, "repo", "Ready False for FetchFailed", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonFetchFailed
	})
	ready := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady)
	for _, s := range []string{"the disk holding the checkout is full", "--data-dir", "still serving revision " + rev1} {
		if !strings.Contains(ready.Message, s) {
			t.Errorf("Source Ready message %q does not say %q", ready.Message, s)
		}
	}
	if meta.IsStatusConditionTrue(src.Status.Conditions, tendv1.ConditionStalled) {
		t.Errorf("Source Stalled by a full disk, which freeing space fixes: %+v", src.Status.Conditions)
	}

	// The checkout holds rev1's files, not rev2's ConfigMap beside a
	// partial big file.
	checkout := filepath.Join(data, "sources", e.Namespace, "repo", "app")
	if b, err := os.ReadFile(filepath.Join(checkout, "a-cm.yaml")); err != nil || !strings.Contains(string(b), `"v1"`) {
		t.Errorf("checkout's a-cm.yaml after the failed fetch: %q %v, want the last good revision's", b, err)
	}
	if _, err := os.Stat(filepath.Join(checkout, "z-data.txt")); !os.IsNotExist(err) {
		t.Errorf("a partial z-data.txt is left in the checkout: %v", err)
	}

	// The App renders again (its spec changed) while the disk is full: it
	// applies the last good revision's files.
	a := e.app(t, "app")
	orig := a.DeepCopy()
	a.Spec.Sync.Interval = metav1.Duration{Duration: 2 * time.Second}
	if err := e.c.Patch(ctx, a, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	gen := a.Generation
	e.waitApp(t, "app", "the changed spec reconciled", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.ObservedGeneration == gen
	})
	cm, err = e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v1" || cm.ResourceVersion != rv {
		t.Errorf("ConfigMap cfg while the disk is full: %v (resourceVersion %s, was %s) %v; want v1, unchanged", cm.Data, cm.ResourceVersion, rv, err)
	}
	if a := e.app(t, "app"); a.Status.Revision != rev1 {
		t.Errorf("App revision while the disk is full = %s, want %s", a.Status.Revision, rev1)
	}

	// Space is freed: the next retry applies rev2.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "app", "synced at "+rev2+" once space is freed", 120*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev2 && a.Status.Sync == tendv1.SyncSynced
	})
	cm, err = e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v2" {
		t.Fatalf("ConfigMap cfg after space was freed: %v %v, want v2", cm.Data, err)
	}
	waitSource(t, e, "repo", "Ready again", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
}
