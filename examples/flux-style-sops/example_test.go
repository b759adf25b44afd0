package example_test

import (
	"context"
	"encoding/base64"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/examples/flux-style-sops/hack/sopsfile"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	platformFile = "clusters/production/platform.yaml"
	webhookFile  = "clusters/production/discord-webhook.sops.yaml"
	keyFile      = "demo.agekey"
	placeholder  = "https://git.example.org/infra/cluster.git"
	destination  = `destination: {namespace: "{{path.basename}}", createNamespace: true}`

	// The App the test breaks, and how.
	broken        = "outline"
	brokenFile    = "apps/outline/deployment.yaml"
	goodLimit     = "limits: {memory: 768Mi}"
	badLimit      = "limits: {memory: 1GB}" // 1G or 1Gi; "GB" is no Kubernetes unit
	fixedLimit    = "limits: {memory: 1Gi}"
	brokenSubject = "outline: raise the memory limit to 1GB"
	fixSubject    = "outline: memory limit 1Gi, not 1GB"
	apiError      = "quantities must match the regular expression"
)

// TestFluxStyleSOPS serves this example from a git server the way a
// cluster follows it after `tend bootstrap --age-key`, and checks what the
// team behind seed 003 moved to Flux for: every app under apps/ is synced
// with its SOPS-encrypted secrets decrypted in memory, and a broken deploy
// is told on Discord, naming the App and the error, and so is its fix,
// while the other apps carry on and no secret reaches the channel.
func TestFluxStyleSOPS(t *testing.T) {
	start := time.Now()
	e := setup(t)
	discord := newDiscordSink(t)

	// The example as its git repository, with three edits: the Source
	// points at this test's git server, the apps go into the test's
	// namespace, and the Discord webhook Secret holds this test's webhook,
	// encrypted as a user encrypts theirs (.sops.yaml's rule for it).
	files := testenv.DirFiles(t, ".")
	repo := testenv.NewGitRepo(t, nil)
	files[platformFile] = platform.ReplaceAll(t, files[platformFile], placeholder, repo.URL, destination, "destination: {namespace: "+e.Namespace+"}")
	files[webhookFile] = encrypt(t, webhookFile, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: discord-webhook\nstringData:\n  address: "+discord.URL()+"\n")
	first := repo.Commit("production cluster", files)

	ageKey := []byte(files[keyFile])
	e.bootstrap(t, repo.URL, "clusters/production", ageKey)

	apps := appDirs(files)
	if len(apps) < 8 {
		t.Fatalf("the example has %d apps under apps/, want at least 8: %v", len(apps), apps)
	}
	e.waitSynced(t, first, append([]string{"tend"}, apps...)...)
	t.Logf("%d apps synced and healthy after %s", len(apps), time.Since(start).Round(time.Millisecond))

	secrets := e.checkSecrets(t, files, ageKey, apps)
	e.checkWebhookSecret(t, discord)
	e.checkDeploysTold(t, discord, apps, first)

	// A broken commit to one app. Every message so far was delivered: a
	// Notifier sends in order, and the apps' first deploys came last.
	breakAt := time.Now()
	next := len(discord.messages())
	bad := repo.Commit(brokenSubject, map[string]string{brokenFile: platform.ReplaceAll(t, files[brokenFile], goodLimit, badLimit)})
	e.RequestFetch(t, "tend")
	next = e.checkFailureTold(t, discord, next, bad, apps)
	t.Logf("failure told on Discord %s after the commit", time.Since(breakAt).Round(time.Millisecond))

	// Its fix.
	fixAt := time.Now()
	fix := repo.Commit(fixSubject, map[string]string{brokenFile: platform.ReplaceAll(t, files[brokenFile], goodLimit, fixedLimit)})
	e.RequestFetch(t, "tend")
	e.checkRecoveryTold(t, discord, next, fix, apps)
	t.Logf("recovery told on Discord %s after the fix", time.Since(fixAt).Round(time.Millisecond))

	e.checkNoSecretsTold(t, discord, append(secrets, discord.token, strings.TrimSpace(lastLine(string(ageKey)))))
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// checkSecrets: every SOPS-encrypted file under apps/ is ciphertext in git
// and plaintext in the cluster. Each is decrypted here with the demo key
// (as `sops --decrypt` would) and compared with the Secret its App
// applied: a YAML Secret by its name, a dotenv file by the Secret its
// kustomize secretGenerator made from it. It returns every secret value.
func (e *env) checkSecrets(t *testing.T, files map[string]string, ageKey []byte, apps []string) []string {
	t.Helper()
	var all []string
	checked := map[string]bool{} // apps with an encrypted file
	for _, p := range sortedKeys(files) {
		if !strings.HasPrefix(p, "apps/") || !strings.Contains(path.Base(p), ".sops.") {
			continue
		}
		app := strings.Split(p, "/")[1]
		plain, err := sopsfile.Decrypt(p, []byte(files[p]), ageKey)
		if err != nil {
			t.Fatalf("decrypt %s with the demo key: %v", p, err)
		}
		name, want := secretOf(t, files, p, plain)
		live := e.liveSecret(t, app, name)
		if got := stringMap(live.Data); !maps.Equal(got, want) {
			t.Errorf("%s: Secret %s has keys %v, want the decrypted file's %v (values not shown)", p, live.Name, sortedKeys(got), sortedKeys(want))
		}
		for k, v := range want {
			if strings.Contains(files[p], v) || strings.Contains(files[p], base64.StdEncoding.EncodeToString([]byte(v))) {
				t.Errorf("%s holds the value of %s in plaintext in git", p, k)
			}
			if strings.HasPrefix(string(live.Data[k]), "ENC[") {
				t.Errorf("Secret %s key %s holds the ciphertext, not the value", live.Name, k)
			}
			all = append(all, v)
		}
		if _, ok := live.Data["sops"]; ok {
			t.Errorf("Secret %s has the SOPS metadata as a key", live.Name)
		}
		checked[app] = true
	}
	if len(checked) < len(apps)/2 {
		t.Errorf("only %d of %d apps have encrypted secrets", len(checked), len(apps))
	}
	return all
}

// secretOf returns the name of the Secret made from the decrypted file p
// and the values it must hold.
func secretOf(t *testing.T, files map[string]string, p string, plain []byte) (string, map[string]string) {
	t.Helper()
	if strings.HasSuffix(p, ".env") {
		want := map[string]string{}
		for _, line := range strings.Split(string(plain), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				want[k] = v
			}
		}
		var k struct {
			SecretGenerator []struct {
				Name string   `json:"name"`
				Envs []string `json:"envs"`
			} `json:"secretGenerator"`
		}
		kfile := path.Join(path.Dir(p), "kustomization.yaml")
		if err := yaml.Unmarshal([]byte(files[kfile]), &k); err != nil {
			t.Fatalf("%s: %v", kfile, err)
		}
		for _, g := range k.SecretGenerator {
			if slices.Contains(g.Envs, path.Base(p)) {
				return g.Name, want
			}
		}
		t.Fatalf("no secretGenerator in %s reads %s", kfile, path.Base(p))
	}
	var s corev1.Secret
	if err := yaml.Unmarshal(plain, &s); err != nil {
		t.Fatalf("decrypted %s is not a Secret: %v", p, err)
	}
	want := map[string]string{}
	for k, v := range s.Data {
		want[k] = string(v)
	}
	for k, v := range s.StringData {
		want[k] = v
	}
	if len(want) == 0 {
		t.Fatalf("decrypted %s has no values", p)
	}
	return s.Name, want
}

// liveSecret returns the Secret app applied as name, or as name with the
// hash suffix kustomize generators add.
func (e *env) liveSecret(t *testing.T, app, name string) *corev1.Secret {
	t.Helper()
	list, err := e.Clientset.CoreV1().Secrets(e.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found []*corev1.Secret
	for i := range list.Items {
		s := &list.Items[i]
		if s.Annotations["tend.dev/owner"] != e.Namespace+"/"+app {
			continue
		}
		if s.Name == name || strings.HasPrefix(s.Name, name+"-") && len(s.Name) == len(name)+11 {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("App %s: %d Secrets named %s (or %s-<hash>), want 1", app, len(found), name, name)
	}
	return found[0]
}

// checkWebhookSecret: the App tend decrypted the Notifier's Secret, and
// the Notifier can send with it.
func (e *env) checkWebhookSecret(t *testing.T, discord *discordSink) {
	t.Helper()
	s, err := e.Clientset.CoreV1().Secrets(e.Namespace).Get(context.Background(), "discord-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["address"]) != discord.URL() {
		t.Errorf("Secret discord-webhook: the address is not the decrypted webhook URL (%d bytes)", len(s.Data["address"]))
	}
	var n tendv1.Notifier
	e.WaitFor(t, "Notifier discord Ready", func() bool {
		if e.c.Get(context.Background(), keyOf(e.Namespace, "discord"), &n) != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == tendv1.ConditionReady && c.Status == metav1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

// checkDeploysTold: the first deploy of every app was told, in green, with
// what it created; and nothing Discord would refuse was sent (the sink
// checks each message).
func (e *env) checkDeploysTold(t *testing.T, discord *discordSink, apps []string, rev string) {
	t.Helper()
	for _, app := range apps {
		m, _ := discord.wait("first deploy of "+app, 0, func(m discordMessage) bool {
			return m.title() == e.Namespace+"/"+app+": synced"
		})
		if !m.isGreen() {
			t.Errorf("deploy of %s: colour %v, want green", app, m.Embeds[0].Color)
		}
		if d := m.Embeds[0].Description; !strings.Contains(d, shortRev(rev)) {
			t.Errorf("deploy of %s does not name revision %s: %q", app, shortRev(rev), d)
		}
		if c := m.field("Changes"); !strings.Contains(c, "Deployment "+e.Namespace+"/") && !strings.Contains(c, "StatefulSet "+e.Namespace+"/") {
			t.Errorf("deploy of %s does not list the workload it created: %q", app, c)
		}
		if m.Username != "tend" {
			t.Errorf("message sent as %q, want the Notifier's username tend", m.Username)
		}
		if am := m.AllowedMentions; am == nil || am.Parse == nil || len(*am.Parse) != 0 {
			t.Errorf("message may ping people: allowed_mentions %+v, want parse: []", am)
		}
	}
}

// checkFailureTold: a commit that breaks one app is told on Discord in
// red, naming the App, the commit and the API server's error; the last
// good state stays applied, and the other apps move on to the new
// revision, Synced and Healthy, without a word.
func (e *env) checkFailureTold(t *testing.T, discord *discordSink, from int, rev string, apps []string) int {
	t.Helper()
	title := e.Namespace + "/" + broken + ": sync failed"
	m, next := discord.wait("failure of "+broken, from, func(m discordMessage) bool { return m.title() == title })
	if !m.isRed() {
		t.Errorf("failure: colour %v, want red", m.Embeds[0].Color)
	}
	desc := m.Embeds[0].Description
	if !strings.Contains(desc, shortRev(rev)) {
		t.Errorf("failure does not name the revision %s: %q", shortRev(rev), desc)
	}
	wantSubject(t, "failure", desc, brokenSubject)
	// The API server's words: it refuses the quantity while decoding the
	// object, before any field validation, so it names no field.
	errText := m.field("Error")
	if !strings.Contains(errText, "Deployment "+e.Namespace+"/"+broken) || !strings.Contains(errText, apiError) {
		t.Errorf("failure's Error field does not name the Deployment and the API server's error: %q", errText)
	}

	a := e.WaitApp(t, broken, "failed at "+shortRev(rev), func(a *tendv1.App) bool {
		return len(a.Status.History) > 0 && a.Status.History[0].Revision == rev
	})
	if h := a.Status.History[0]; h.Result == "Succeeded" {
		t.Errorf("App %s: the broken revision's sync %s: %s", broken, h.Result, h.Message)
	}
	if c := readyCondition(a); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, apiError) {
		t.Errorf("App %s Ready condition does not show the error: %+v", broken, c)
	}
	if got := e.memoryLimit(t, broken); got != "768Mi" {
		t.Errorf("Deployment %s memory limit %s: the last good state (768Mi) did not stay", broken, got)
	}
	e.waitSynced(t, rev, others(apps)...)
	for _, m := range discord.messages()[from:] {
		if m.title() != title {
			t.Errorf("a message other than the failure of %s was sent: %q", broken, m.title())
		}
	}
	return next
}

// checkRecoveryTold: the fix is told in green as a recovery, with what it
// changed; the failure was told once, not at every retry.
func (e *env) checkRecoveryTold(t *testing.T, discord *discordSink, from int, rev string, apps []string) {
	t.Helper()
	title := e.Namespace + "/" + broken + ": synced"
	m, _ := discord.wait("recovery of "+broken, from, func(m discordMessage) bool { return m.title() == title })
	if !m.isGreen() {
		t.Errorf("recovery: colour %v, want green", m.Embeds[0].Color)
	}
	desc := m.Embeds[0].Description
	if !strings.Contains(desc, "recovered") || !strings.Contains(desc, shortRev(rev)) {
		t.Errorf("recovery message does not say it recovered at %s: %q", shortRev(rev), desc)
	}
	wantSubject(t, "recovery", desc, fixSubject)
	if c := m.field("Changes"); !strings.Contains(c, "Deployment "+e.Namespace+"/"+broken) {
		t.Errorf("recovery does not list the changed Deployment: %q", c)
	}
	e.waitSynced(t, rev, apps...)
	if got := e.memoryLimit(t, broken); got != "1Gi" {
		t.Errorf("Deployment %s memory limit %s after the fix, want 1Gi", broken, got)
	}
	failures := 0
	for _, m := range discord.messages() {
		if strings.Contains(m.title(), "failed") {
			failures++
			if m.title() != e.Namespace+"/"+broken+": sync failed" {
				t.Errorf("unexpected failure message: %q", m.title())
			}
		}
	}
	if failures != 1 {
		t.Errorf("%d failure messages, want the broken revision told once", failures)
	}
}

// checkNoSecretsTold: no secret value, nor the webhook's token, nor the
// age key, is in any Discord message, the Notifier's or any App's status,
// the namespace's Events or the controller's log.
func (e *env) checkNoSecretsTold(t *testing.T, discord *discordSink, secrets []string) {
	t.Helper()
	ctx := context.Background()
	places := map[string]string{"the controller log": e.Log.String()}
	for i, m := range discord.messages() {
		places["Discord message "+m.title()+" #"+strconv.Itoa(i)] = string(m.raw) + "\n" + m.text()
	}
	var n tendv1.Notifier
	if err := e.c.Get(ctx, keyOf(e.Namespace, "discord"), &n); err != nil {
		t.Fatal(err)
	}
	b, _ := yaml.Marshal(n.Status)
	places["Notifier status"] = string(b)
	var list tendv1.AppList
	if err := e.c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	for _, a := range list.Items {
		if a.Namespace == e.Namespace {
			b, _ := yaml.Marshal(a.Status)
			places["App "+a.Name+" status"] = string(b)
		}
	}
	events, err := e.Clientset.CoreV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events.Items {
		places["Event "+ev.Name] = ev.Message
	}
	for where, text := range places {
		for _, s := range secrets {
			if s != "" && (strings.Contains(text, s) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(s)))) {
				t.Errorf("%s contains a secret value (%d characters)", where, len(s))
			}
		}
	}
	if len(discord.messages()) == 0 || len(secrets) < 10 {
		t.Errorf("nothing to check: %d messages, %d secret values", len(discord.messages()), len(secrets))
	}
}

// wantSubject checks that a message names the commit by its subject, as
// docs/notifications.md says it does.
func wantSubject(t *testing.T, what, desc, subject string) {
	t.Helper()
	if !strings.Contains(desc, subject) {
		t.Errorf("the %s message does not name the commit %q: %q", what, subject, desc)
	}
}

func (e *env) memoryLimit(t *testing.T, name string) string {
	t.Helper()
	d, err := e.Clientset.AppsV1().Deployments(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q := d.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
	return q.String()
}

// appDirs are the directories under apps/: one App each.
func appDirs(files map[string]string) []string {
	seen := map[string]bool{}
	for p := range files {
		if parts := strings.Split(p, "/"); len(parts) > 2 && parts[0] == "apps" {
			seen[parts[1]] = true
		}
	}
	return sortedKeys(seen)
}

func others(apps []string) []string {
	var out []string
	for _, a := range apps {
		if a != broken {
			out = append(out, a)
		}
	}
	return out
}

// encrypt encrypts plain as the file at p, under its .sops.yaml rule.
func encrypt(t *testing.T, p, plain string) string {
	t.Helper()
	enc, err := sopsfile.Encrypt(p, []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return string(enc)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func stringMap(m map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
