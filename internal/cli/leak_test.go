package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	agekey "filippo.io/age"
	"github.com/oauth2-proxy/mockoidc"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/examples/flux-style-sops/hack/sopsfile"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
	"github.com/tend-gitops/tend/internal/diff"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// leakSecrets are the secret values of TestSecretsDoNotLeak, each unique
// so that a hit names the path it took. Generated values and the age key
// are added when known.
type leakSecrets map[string]string

// TestSecretsDoNotLeak runs `tend controller` on a platform that hands tend
// a known secret value everywhere it handles one: a Secret in git (data and
// stringData), a SOPS-encrypted Secret and its age key, a generated value,
// Helm values from a Secret (as a values file and at a targetPath),
// postBuild substitution from a Secret, git and chart repository
// credentials, a remote Cluster's kubeconfig token, webhook tokens (signed
// and GitLab's plain one), notifier URLs, tokens and signing keys (webhook,
// Slack, Matrix, Telegram, GitHub commit statuses, Discord), an
// AppSet's App, Secrets replicated to another namespace, and drift on a
// Secret that `tend diff` and the dashboard show. Failures are part of it:
// wrong git and chart passwords, a wrong age key, a substitution that
// breaks the YAML, a notifier whose receiver fails echoing its URL, a
// replica refused. Then it searches every place tend writes to for each
// value, raw and base64: the controller's log, the Events of both
// namespaces, every tend object, the inventory Secrets, `tend diff` and
// `tend status`, the dashboard's API, the notifications received and
// /metrics. It first checks that each place holds what the run put there,
// so that an empty place cannot pass.
func TestSecretsDoNotLeak(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	s := leakSecrets{
		"git data value":           "leak-data-7Qm2vX9c",
		"git stringData value":     "leak-stringdata-Hn4Rw8Tz",
		"drifted live value":       "leak-drift-Pk3Lz6Ye",
		"SOPS-decrypted value":     "leak-sops-Bv5Nc1Ju",
		"AppSet App's value":       "leak-appset-Gd8Fs2Wq",
		"Helm values file value":   "leak-helmvalues-Xr7Km3Ta",
		"Helm targetPath value":    "leak-helmtarget-Zu9Hp4Ob",
		"git password":             "leak-gitpass-Ce6Vy5Sn",
		"wrong git password":       "leak-gitwrong-Fa5Ui2Ho",
		"substituted value":        "leak-subst-Kc3Mv8Rb",
		"replicated value":         "leak-replicated-Nw2Ha7Cy",
		"refused replica value":    "leak-replicaclash-Qs5Gt3Fe",
		"unparsable substitution":  "leak-substbad-Jp6Dw1Xs: [",
		"wrong chart password":     "leak-chartwrong-Ev7Bk4Nd",
		"chart repo password":      "leak-chartpass-Wj2Qd7Lm",
		"cluster kubeconfig token": "leak-clustertoken-Ry4Eb8Kv",
		"webhook generic token":    "leak-hookgeneric-Ta3Gx9Ud",
		"webhook GitLab token":     "leak-hookgitlab-Mf6Ns2Pi",
		"notifier URL token":       "leak-notifyurl-Lh8Wc5Zr",
		"notifier HMAC key":        "leak-notifyhmac-Do1Jk7Qe",
		"Slack bot token":          "leak-slacktoken-Yb4Tm3Ga",
		"failing notifier token":   "leak-notifyfail-Sq9Rv6Xn",
		"Matrix access token":      "leak-matrixtoken-Wd3Pk8Ry",
		"Telegram bot token":       "leak-telegramtoken-Hc5Vn2Lq",
		"GitHub token":             "leak-githubtoken-Ux7Fb4Mz",
		"Discord webhook token":    "leak-discordhook-Ke9Ts1Ga",
	}
	id, err := agekey.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s["age key"] = id.String()
	wrongID, err := agekey.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s["wrong age key"] = wrongID.String()
	s["git basic auth"] = base64.StdEncoding.EncodeToString([]byte("deploy:" + s["git password"]))
	s["wrong git basic auth"] = base64.StdEncoding.EncodeToString([]byte("deploy:" + s["wrong git password"]))

	recv := newLeakReceiver(t)
	charts := charttest.NewRepo(t, "charts", s["chart repo password"])
	charts.Add(t, charttest.Package(t, map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: vault\nversion: 1.0.0\n",
		"templates/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: chart-vault\n" +
			"stringData:\n  apiKey: {{ .Values.apiKey | quote }}\n  target: {{ .Values.auth.password | quote }}\n",
	}))
	repo := testenv.NewGitRepo(t, nil, testenv.GitBasicAuth("deploy", s["git password"]))
	repo.Commit("platform", map[string]string{
		"plain/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\n" +
			"data:\n  d: " + base64.StdEncoding.EncodeToString([]byte(s["git data value"])) + "\n" +
			"stringData:\n  s: " + s["git stringData value"] + "\n  subst: ${SUBST}\n",
		"plain/generated.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: generated\n" +
			"  annotations:\n    tend.dev/generate: token\nstringData:\n  user: app\n",
		"plain/cm.yaml":     configMap("settings", "1"),
		"sops/db.sops.yaml": sopsEncrypt(t, id, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: "+s["SOPS-decrypted value"]+"\n"),
		"plain/shared.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shared\n" +
			"  annotations:\n    tend.dev/replicate-to: leak-target=" + ns + "\nstringData:\n  v: " + s["replicated value"] + "\n",
		"plain/clash.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: clash\n" +
			"  annotations:\n    tend.dev/replicate-to: leak-target=" + ns + "\nstringData:\n  v: " + s["refused replica value"] + "\n",
		"broken/secret.yaml":    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: broken\nstringData:\n  v: ${SUBST}\n",
		"gen/extra/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gen-extra\nstringData:\n  v: " + s["AppSet App's value"] + "\n",
	})

	createSecret(t, cl, "git-creds", map[string]string{"username": "deploy", "password": s["git password"]})
	// The same repository over ssh, with a deploy key and with a key the
	// server does not know. A line of a key is what a leak would show.
	sshKey, sshPub := testenv.NewSSHClientKey(t)
	wrongSSHKey, _ := testenv.NewSSHClientKey(t)
	sshGit := testenv.NewSSHGitServer(t, filepath.Dir(repo.BareDir), sshPub)
	for name, key := range map[string][]byte{"ssh private key": sshKey, "wrong ssh private key": wrongSSHKey} {
		lines := strings.Split(strings.TrimSpace(string(key)), "\n")
		// The first line after the armour is the same in every key.
		for i, l := range lines[2 : len(lines)-1] {
			s[fmt.Sprintf("%s, line %d", name, i+3)] = l
		}
	}
	createSecret(t, cl, "git-ssh", map[string]string{"identity": string(sshKey), "known_hosts": string(sshGit.KnownHosts())})
	createSecret(t, cl, "git-ssh-wrong", map[string]string{"identity": string(wrongSSHKey), "known_hosts": string(sshGit.KnownHosts())})
	// Replication's target: a namespace holding a Secret "clash" that is
	// not a copy, which tend refuses to overwrite.
	target := replicationTarget(t, cl)
	createSecret(t, cl, "git-wrong", map[string]string{"username": "deploy", "password": s["wrong git password"]})
	createSecret(t, cl, "chart-wrong", map[string]string{"username": "charts", "password": s["wrong chart password"]})
	createSecret(t, cl, "chart-creds", map[string]string{"username": "charts", "password": s["chart repo password"]})
	createSecret(t, cl, "chart-values", map[string]string{"values.yaml": "apiKey: " + s["Helm values file value"] + "\n", "password": s["Helm targetPath value"]})
	createSecret(t, cl, "sops-wrong", map[string]string{"identity.agekey": s["wrong age key"]})
	createSecret(t, cl, "plain-vars", map[string]string{"SUBST": s["substituted value"]})
	createSecret(t, cl, "broken-vars", map[string]string{"SUBST": s["unparsable substitution"]})
	createSecret(t, cl, "sops-age", map[string]string{"identity.agekey": s["age key"]})
	createSecret(t, cl, "hooks", map[string]string{"generic": s["webhook generic token"], "gitlab": s["webhook GitLab token"]})
	createSecret(t, cl, "notify-hook", map[string]string{"address": recv.URL + "/hook?token=" + s["notifier URL token"], "hmacKey": s["notifier HMAC key"]})
	createSecret(t, cl, "notify-slack", map[string]string{"address": recv.URL + "/slack", "token": s["Slack bot token"]})
	createSecret(t, cl, "notify-fail", map[string]string{"address": recv.URL + "/fail/" + s["failing notifier token"]})
	createSecret(t, cl, "notify-matrix", map[string]string{"address": recv.URL + "/matrix", "token": s["Matrix access token"]})
	createSecret(t, cl, "notify-telegram", map[string]string{"address": recv.URL + "/telegram", "token": s["Telegram bot token"]})
	createSecret(t, cl, "notify-github", map[string]string{"address": recv.URL + "/github", "token": s["GitHub token"]})
	createSecret(t, cl, "notify-discord", map[string]string{"address": recv.URL + "/discord/" + s["Discord webhook token"]})
	createSecret(t, cl, "remote-kubeconfig", map[string]string{"kubeconfig": tokenKubeconfig(cl.Config.Host, s["cluster kubeconfig token"])})

	createObjects(t, cl, `
apiVersion: tend.dev/v1alpha1
kind: Source
metadata: {name: repo}
spec: {git: {url: `+repo.URL+`, secretRef: {name: git-creds}}, interval: 1h}
---
apiVersion: tend.dev/v1alpha1
kind: Source
metadata: {name: charts}
spec: {helm: {url: `+charts.URL+`, secretRef: {name: chart-creds}}, interval: 1h}
---
apiVersion: tend.dev/v1alpha1
kind: Source
metadata: {name: repo-wrong}
spec: {git: {url: `+repo.URL+`, secretRef: {name: git-wrong}}, interval: 1h}
---
apiVersion: tend.dev/v1alpha1
kind: Source
metadata: {name: repo-ssh}
spec: {git: {url: "`+sshGit.URL(repo.BareDir)+`", secretRef: {name: git-ssh}}, interval: 1h}
---
apiVersion: tend.dev/v1alpha1
kind: Source
metadata: {name: repo-ssh-wrong}
spec: {git: {url: "`+sshGit.URL(repo.BareDir)+`", secretRef: {name: git-ssh-wrong}}, interval: 1h}
---
apiVersion: tend.dev/v1alpha1
kind: Source
metadata: {name: charts-wrong}
spec: {helm: {url: `+charts.URL+`, secretRef: {name: chart-wrong}}, interval: 1h}
---
apiVersion: tend.dev/v1alpha1
kind: App
metadata: {name: chart-wrong}
spec:
  sourceRef: {name: charts-wrong}
  chart: {name: vault}
  destination: {namespace: `+ns+`}
---
apiVersion: tend.dev/v1alpha1
kind: App
metadata: {name: plain}
spec:
  sourceRef: {name: repo}
  path: plain
  destination: {namespace: `+ns+`}
  sync: {prune: true, selfHeal: false}
  postBuild: {substituteFrom: [{kind: Secret, name: plain-vars}]}
---
apiVersion: tend.dev/v1alpha1
kind: App
metadata: {name: broken}
spec:
  sourceRef: {name: repo}
  path: broken
  destination: {namespace: `+ns+`}
  postBuild: {substituteFrom: [{kind: Secret, name: broken-vars}]}
---
apiVersion: tend.dev/v1alpha1
kind: App
metadata: {name: sops-wrong}
spec:
  sourceRef: {name: repo}
  path: sops
  destination: {namespace: `+ns+`}
  decryption: {secretRef: {name: sops-wrong}}
---
apiVersion: tend.dev/v1alpha1
kind: App
metadata: {name: sops}
spec:
  sourceRef: {name: repo}
  path: sops
  destination: {namespace: `+ns+`}
  decryption: {secretRef: {name: sops-age}}
---
apiVersion: tend.dev/v1alpha1
kind: App
metadata: {name: chart}
spec:
  sourceRef: {name: charts}
  chart: {name: vault}
  destination: {namespace: `+ns+`}
  helm:
    valuesFrom:
    - {kind: Secret, name: chart-values}
    - {kind: Secret, name: chart-values, key: password, targetPath: auth.password}
---
apiVersion: tend.dev/v1alpha1
kind: AppSet
metadata: {name: gen}
spec:
  generators:
  - directories: {sourceRef: {name: repo}, include: ["gen/*"]}
  template:
    metadata: {name: "{{path.basename}}"}
    spec:
      sourceRef: {name: repo}
      path: "{{path}}"
      destination: {namespace: `+ns+`}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: hook}
spec: {provider: webhook, appSelector: {}, sources: {}, secretRef: {name: notify-hook}}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: slack}
spec: {provider: slack, channel: "#ops", secretRef: {name: notify-slack}}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: failing}
spec: {provider: webhook, apps: [sops], events: [SyncSucceeded], secretRef: {name: notify-fail}}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: matrix}
spec: {provider: matrix, channel: "!ops:example.org", apps: [plain], secretRef: {name: notify-matrix}}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: telegram}
spec: {provider: telegram, channel: "-100123", apps: [plain], secretRef: {name: notify-telegram}}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: github}
spec: {provider: github, apps: [plain], secretRef: {name: notify-github}}
---
apiVersion: tend.dev/v1alpha1
kind: Notifier
metadata: {name: discord}
spec: {provider: discord, apps: [plain], secretRef: {name: notify-discord}}
---
apiVersion: tend.dev/v1alpha1
kind: Cluster
metadata: {name: remote}
spec: {kubeconfigSecretRef: {name: remote-kubeconfig}}
`)

	// The dashboard signs people in through an OIDC issuer with a
	// client secret from its Secret; a policy lets them view.
	issuer, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = issuer.Shutdown() })
	s["dashboard OIDC client secret"] = issuer.ClientSecret
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: dashboard.DefaultTeamName},
		Data: map[string][]byte{dashboard.SecretOIDCClientSecret: []byte(issuer.ClientSecret)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: dashboard.DefaultTeamName},
		Data: map[string]string{auth.PolicyKey: "- groups: [\"*\"]\n  role: viewer\n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctl := startLeakController(t, cl, issuer)
	for _, app := range []string{"plain", "sops", "chart", "extra"} {
		waitLeakApp(t, cl, app, "Synced and Healthy", platform.Healthy)
	}
	eventually(t, "Source repo-ssh fetched over ssh, repo-ssh-wrong refused", time.Minute, func() bool {
		var ok, refused tendv1.Source
		if cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "repo-ssh"}, &ok) != nil || cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "repo-ssh-wrong"}, &refused) != nil {
			return false
		}
		c := apimeta.FindStatusCondition(refused.Status.Conditions, tendv1.ConditionReady)
		return ok.Status.Artifact != nil && ok.Status.Artifact.Revision == repo.Head() && c != nil && c.Status == metav1.ConditionFalse
	})
	live := func(name, key string) string {
		sec, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		return string(sec.Data[key])
	}
	// Each value reached the cluster as a Secret: tend handled it.
	for name, want := range map[string]string{
		"plain/d": s["git data value"], "plain/s": s["git stringData value"], "plain/subst": s["substituted value"], "db/password": s["SOPS-decrypted value"],
		"gen-extra/v": s["AppSet App's value"], "chart-vault/apiKey": s["Helm values file value"], "chart-vault/target": s["Helm targetPath value"],
	} {
		sec, key, _ := strings.Cut(name, "/")
		if got := live(sec, key); got != want {
			t.Fatalf("Secret %s: %q, want %q", name, got, want)
		}
	}
	eventually(t, "the Secret shared copied into "+target, time.Minute, func() bool {
		c, err := cl.Clientset.CoreV1().Secrets(target).Get(ctx, "shared", metav1.GetOptions{})
		return err == nil && string(c.Data["v"]) == s["replicated value"]
	})
	s["generated value"] = live("generated", "token")
	if len(s["generated value"]) != 32 {
		t.Fatalf("generated value %q: want 32 characters", s["generated value"])
	}

	// Pushes: a signed generic one and GitLab's plain token; the Source
	// fetches the new commit at once (it polls hourly).
	head := repo.Commit("v2", map[string]string{"plain/cm.yaml": configMap("settings", "2")})
	body, _ := json.Marshal(map[string]string{"repository": repo.URL, "ref": "refs/heads/main"})
	mac := hmac.New(sha256.New, []byte(s["webhook generic token"]))
	mac.Write(body)
	ctl.push(t, "generic", body, map[string]string{"X-Tend-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))}, http.StatusAccepted)
	gitlab, _ := json.Marshal(map[string]any{"object_kind": "push", "ref": "refs/heads/main", "project": map[string]string{"git_http_url": repo.URL}})
	ctl.push(t, "gitlab", gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": s["webhook GitLab token"]}, http.StatusAccepted)
	ctl.push(t, "gitlab", gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong-" + s["webhook GitLab token"]}, http.StatusUnauthorized)
	waitLeakApp(t, cl, "plain", "the pushed revision applied", func(a *tendv1.App) bool { return a.Status.Revision == head && platform.Healthy(a) })

	// Drift on a Secret: someone changes a value by hand; the App does not
	// heal itself, so it reports the drift and a diff shows the Secret
	// changed.
	sec, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["d"] = []byte(s["drifted live value"])
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitLeakApp(t, cl, "plain", "the Secret's drift reported", func(a *tendv1.App) bool {
		for _, o := range a.Status.OutOfSync {
			if o.Kind == "Secret" && o.Name == "plain" {
				return true
			}
		}
		return false
	})
	eventually(t, "drift notified", time.Minute, func() bool { return strings.Contains(recv.bodies("/hook"), "DriftDetected") })
	eventually(t, "the failing notifier's failure in its status", 2*time.Minute, func() bool {
		var n tendv1.Notifier
		return cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "failing"}, &n) == nil && n.Status.Failed > 0
	})
	eventually(t, "failed fetches notified", time.Minute, func() bool {
		return strings.Contains(recv.bodies("/hook"), `"name":"repo-wrong"`) && strings.Contains(recv.bodies("/hook"), `"kind":"SyncFailed"`)
	})
	eventually(t, "the remote Cluster's error in its status", time.Minute, func() bool {
		var c tendv1.Cluster
		return cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "remote"}, &c) == nil && len(c.Status.Conditions) > 0
	})

	places := map[string]string{}
	for _, app := range []string{"plain", "sops", "chart", "extra"} {
		code, out, errOut := cl.tend(t, "diff", app)
		places["`tend diff "+app+"`"] = out + errOut
		if app == "plain" && (code != 1 || !strings.Contains(out, "Secret") || !strings.Contains(out, diff.MaskChangedSecret)) {
			t.Fatalf("tend diff plain: exit %d, want 1 and the Secret shown changed:\n%s%s", code, out, errOut)
		}
		_, out, errOut = cl.tend(t, "status", app)
		places["`tend status "+app+"`"] = out + errOut
	}
	s["dashboard admin token"] = ctl.dashboard(t, cl, places)
	places["/metrics"] = ctl.metrics(t)
	places["notification bodies"] = recv.bodies("")
	if recv.bodies("/slack") == "" || recv.bodies("/fail/") == "" {
		t.Error("the Slack notifier or the failing one sent nothing, so their tokens were not used")
	}
	for _, p := range []string{"/matrix", "/telegram", "/discord/"} {
		if !recv.reached(p) {
			t.Errorf("no request reached %s, so its notifier's token was not used", p)
		}
	}
	places["Events"] = leakEvents(t, cl, ns)
	places["Events of the replication target"] = leakEvents(t, cl, target)
	leakObjects(t, cl, places)
	ctl.stop() // its log is complete once it has stopped
	places["controller log"] = ctl.log.String()

	s.search(t, places, map[string][]string{
		"controller log":          {"webhook", "notification failed", "cluster connection changed", "applied App"},
		"Events":                  {"plain", "ReplicationRefused"},
		"notification bodies":     {"SyncSucceeded", "DriftDetected", "FetchFailed", "SyncFailed"},
		"Source repo-wrong":       {"authentication failed"},
		"Source repo-ssh-wrong":   {"did not accept the ssh private key"},
		"App chart-wrong":         {"401"},
		"App broken":              {"not valid YAML"},
		"App sops-wrong":          {"decrypt"},
		"/metrics":                {"tend_"},
		"dashboard diff of plain": {diff.MaskChangedSecret},
		"dashboard GET /api/v1/apps after single sign-on": {"plain"},
		"App plain":          {"OutOfSync"},
		"Notifier failing":   {"500"},
		"Cluster remote":     {"Ready"},
		"inventory of plain": {"Secret|" + ns + "|plain"},
	})
}

// search fails t for each secret value found, raw or base64, in a place
// (name -> text). want lists, per place, what it must hold, so that an
// empty place (nothing was written there) cannot pass.
func (s leakSecrets) search(t *testing.T, places map[string]string, want map[string][]string) {
	t.Helper()
	for what, want := range want {
		for _, w := range want {
			if !strings.Contains(places[what], w) {
				t.Errorf("%s does not contain %q, so the search there proves nothing:\n%s", what, w, excerpt(places[what]))
			}
		}
	}
	for _, f := range testenv.FindLeaks(s, places) {
		t.Error(f)
	}
}

// sopsEncrypt encrypts plain for the age identity as `sops --encrypt`
// with a .sops.yaml encrypting data and stringData.
func sopsEncrypt(t *testing.T, id *agekey.X25519Identity, plain string) string {
	t.Helper()
	dir := t.TempDir()
	rules := "creation_rules:\n  - path_regex: \\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + id.Recipient().String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, sopsfile.ConfigFile), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	enc, err := sopsfile.Encrypt(filepath.Join(dir, "db.sops.yaml"), []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return string(enc)
}

func configMap(name, v string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  v: \"" + v + "\"\n"
}

// tokenKubeconfig reaches host with a bearer token the cluster does not
// know: the Cluster's connection fails with the token in hand.
func tokenKubeconfig(host, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, host, token)
}

func createSecret(t *testing.T, cl *testCluster, name string, data map[string]string) {
	t.Helper()
	if _, err := cl.Clientset.CoreV1().Secrets(cl.Namespace).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createObjects creates the objects of a multi-document YAML in the test's
// namespace.
func createObjects(t *testing.T, cl *testCluster, docs string) {
	t.Helper()
	for _, doc := range strings.Split(docs, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
		u.SetNamespace(cl.Namespace)
		if err := cl.c.Create(context.Background(), u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

func waitLeakApp(t *testing.T, cl *testCluster, name, what string, cond func(*tendv1.App) bool) {
	t.Helper()
	var a tendv1.App
	if !testenv.Within(2*time.Minute, func() bool {
		return cl.c.Get(context.Background(), client.ObjectKey{Namespace: cl.Namespace, Name: name}, &a) == nil && cond(&a)
	}) {
		b, _ := yaml.Marshal(a.Status)
		t.Fatalf("timed out waiting for App %s: %s; its status:\n%s", name, what, b)
	}
}

func excerpt(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// leakReceiver is an HTTP server standing for the notifiers' endpoints: it
// keeps every body by path; under /fail/ it fails, echoing the URL (with
// its token) as a careless endpoint would; under /slack it answers as
// Slack's chat.postMessage.
type leakReceiver struct {
	URL string
	mu  sync.Mutex
	got []string // "path body"
}

func newLeakReceiver(t *testing.T) *leakReceiver {
	r := &leakReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req.URL.Path+" "+string(b))
		r.mu.Unlock()
		switch {
		case strings.HasPrefix(req.URL.Path, "/fail/"):
			http.Error(w, "no such hook: "+req.URL.String(), http.StatusInternalServerError)
		case strings.HasPrefix(req.URL.Path, "/slack"):
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok": true}`)
		}
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// reached says whether a request came under the path prefix.
func (r *leakReceiver) reached(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if path, _, _ := strings.Cut(g, " "); strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// bodies joins the bodies received under the path prefix.
func (r *leakReceiver) bodies(prefix string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, g := range r.got {
		if path, body, _ := strings.Cut(g, " "); strings.HasPrefix(path, prefix) {
			b.WriteString(body + "\n")
		}
	}
	return b.String()
}

// replicationTarget creates a namespace, deleted when the test ends, that
// the Secrets of the test's replicate-to selector select, with a Secret
// "clash" of its own.
func replicationTarget(t *testing.T, cl *testCluster) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cl.Namespace + "-copies", Labels: map[string]string{"leak-target": cl.Namespace, testenv.TestLabel: "true"}}}
	if _, err := cl.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.Clientset.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	if _, err := cl.Clientset.CoreV1().Secrets(ns.Name).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "clash"}, StringData: map[string]string{"v": "not a copy"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// leakEvents is every Event of the namespace, as YAML.
func leakEvents(t *testing.T, cl *testCluster, namespace string) string {
	t.Helper()
	events, err := cl.Clientset.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(events.Items)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// leakObjects adds every tend object of the namespace (status included),
// one place each, and the decoded inventory Secrets.
func leakObjects(t *testing.T, cl *testCluster, places map[string]string) {
	t.Helper()
	ctx := context.Background()
	for _, kind := range []string{"App", "Source", "Notifier", "Cluster", "AppSet", "Project"} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(tendv1.GroupVersion.WithKind(kind + "List"))
		if err := cl.c.List(ctx, list, client.InNamespace(cl.Namespace)); err != nil {
			t.Fatalf("list %ss: %v", kind, err)
		}
		for _, o := range list.Items {
			b, _ := yaml.Marshal(o.Object)
			places[kind+" "+o.GetName()] = string(b)
		}
	}
	secrets, err := cl.Clientset.CoreV1().Secrets(cl.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets.Items {
		if sec.Type != "tend.dev/inventory" {
			continue
		}
		app := strings.TrimPrefix(sec.Name, "tend-inventory-")
		b, _ := yaml.Marshal(sec)
		places["inventory Secret "+sec.Name] = string(b)
		for key, v := range sec.Data {
			places["inventory of "+app] += key + ":\n" + gunzip(t, v)
		}
	}
}

// leakController is `tend controller` running in the test, with its push
// receiver, dashboard and metrics on loopback.
type leakController struct {
	*inProcessController
	webhook     string
	metricsAddr string
	// front is the dashboard's public URL (--dashboard-url).
	front *dashboardFront
}

// startLeakController starts the controller; with issuer, its dashboard
// signs people in there too.
func startLeakController(t *testing.T, cl *testCluster, issuer *mockoidc.MockOIDC) *leakController {
	t.Helper()
	log := &platform.LogBuffer{}
	// controller-runtime's metrics server does not log the address it
	// bound, so its port is picked here.
	metrics := freeAddr(t)
	front := newDashboardFront(t)
	flags := []string{"--metrics-addr", metrics, "--webhook-addr", "127.0.0.1:0", "--webhook-secret", "hooks",
		"--dashboard-addr", "127.0.0.1:0", "--dashboard-url", front.URL}
	if issuer != nil {
		flags = append(flags, "--dashboard-oidc-issuer", issuer.Issuer(), "--dashboard-oidc-client-id", issuer.ClientID)
	}
	ctl := runController(t, cl.Kubeconfig, cl.Namespace, log, flags...)
	t.Cleanup(func() {
		// Apps first, while the controller runs their finalizers.
		ctx := context.Background()
		_ = cl.c.DeleteAllOf(ctx, &tendv1.AppSet{}, client.InNamespace(cl.Namespace))
		_ = cl.c.DeleteAllOf(ctx, &tendv1.App{}, client.InNamespace(cl.Namespace))
		testenv.Within(time.Minute, func() bool {
			var apps tendv1.AppList
			return cl.c.List(ctx, &apps, client.InNamespace(cl.Namespace)) == nil && len(apps.Items) == 0
		})
	})
	front.forward(ctl.addr("dashboard"))
	return &leakController{inProcessController: ctl, webhook: ctl.addr("webhook receiver"), metricsAddr: metrics, front: front}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// push posts a webhook delivery, retrying until the receiver listens.
func (c *leakController) push(t *testing.T, forge string, body []byte, header map[string]string, want int) {
	t.Helper()
	var code int
	var answer []byte
	eventually(t, "the webhook receiver answering", time.Minute, func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.webhook+"/hooks/"+forge, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		answer, _ = io.ReadAll(resp.Body)
		return true
	})
	if code != want {
		t.Fatalf("POST /hooks/%s: %d %s, want %d", forge, code, answer, want)
	}
}

func (c *leakController) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + c.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
