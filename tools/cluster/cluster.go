package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kwokStages tell kwok how fake nodes and pods behave; see kwok.yaml.
//
//go:embed kwok.yaml
var kwokStages []byte

// Cluster is one local control plane living in Dir.
type Cluster struct {
	Dir           string
	Bins          Binaries
	Nodes         int
	APIServerPort int
	Log           io.Writer

	state state
	procs []*process
}

// state is persisted as state.json in the data dir; it marks the directory
// as a cluster's and records what "down" and "status" need.
type state struct {
	KubeVersion string         `json:"kubeVersion"`
	Ports       map[string]int `json:"ports"`
	Components  []procRecord   `json:"components"`
	Nodes       int            `json:"nodes"`
}

type procRecord struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	Bin  string `json:"bin"`
}

const stateFile = "state.json"

// componentOrder is the start order; down stops in reverse.
var componentOrder = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

func (c *Cluster) kubeconfigPath() string  { return filepath.Join(c.Dir, "kubeconfig") }
func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.Log, format+"\n", args...)
}

// Up starts the control plane, or reuses a healthy one already in Dir.
func (c *Cluster) Up(ctx context.Context) error {
	start := time.Now()
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDir(c.Dir)
	if err != nil {
		return err
	}
	defer unlock()

	if err := c.prepareDir(ctx); err != nil {
		return err
	}
	if c.state.Ports != nil { // reused
		return nil
	}

	ok := false
	defer func() {
		if !ok {
			c.stopStarted()
		}
	}()
	if err := c.startAll(ctx); err != nil {
		return err
	}
	if err := c.writeState(); err != nil {
		return err
	}
	if err := c.createNodes(ctx); err != nil {
		return err
	}
	ok = true
	c.logf("cluster up in %s (%d nodes); API at https://127.0.0.1:%d", time.Since(start).Round(100*time.Millisecond), c.Nodes, c.state.Ports["kube-apiserver"])
	return nil
}

// prepareDir decides what to do with an existing data dir: reuse a healthy
// cluster, clean up after a crashed one, or refuse a directory that is not
// ours.
func (c *Cluster) prepareDir(ctx context.Context) error {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	st, err := readState(c.Dir)
	if errors.Is(err, os.ErrNotExist) {
		if isOurs(c.Dir, entries) {
			c.logf("found the remains of a failed or interrupted start in %s; cleaning up", c.Dir)
			return c.cleanStale()
		}
		if len(entries) == 1 && entries[0].Name() == ".lock" {
			return nil
		}
		return fmt.Errorf("data dir %s is not empty and holds no cluster; choose another --dir or empty it", c.Dir)
	}
	if err != nil {
		c.logf("cannot read %s (%v); treating the cluster as stale", c.path(stateFile), err)
		return c.cleanStale()
	}
	problems := c.health(ctx, st)
	if len(problems) == 0 {
		c.state = st
		c.logf("reusing the healthy cluster in %s", c.Dir)
		return nil
	}
	c.logf("found a stale cluster in %s (%s); stopping leftovers and starting fresh", c.Dir, strings.Join(problems, "; "))
	return c.cleanStale()
}

// markerFile is written before anything else, so a dir whose start failed
// half-way is still recognised as a cluster's.
const markerFile = "tend-cluster"

// isOurs reports whether dir holds (the remains of) a cluster.
func isOurs(dir string, entries []os.DirEntry) bool {
	for _, e := range entries {
		if n := e.Name(); n == markerFile || n == stateFile || strings.HasSuffix(n, ".pid") {
			return true
		}
	}
	return false
}

// cleanStale stops any process a previous run left behind and empties Dir.
func (c *Cluster) cleanStale() error {
	if err := stopRecorded(c.Dir, c.Log); err != nil {
		return err
	}
	return emptyDir(c.Dir)
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startAll(ctx context.Context) error {
	if err := os.WriteFile(c.path(markerFile), []byte("a local control plane made by tend's tools/cluster\n"), 0o644); err != nil {
		return err
	}
	p, err := newPKI(c.Dir)
	if err != nil {
		return err
	}
	hosts := []string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1"}
	for _, cert := range []struct {
		name, cn string
		groups   []string
		hosts    []string
	}{
		{"apiserver", "kube-apiserver", nil, hosts},
		{"admin", "tend-admin", []string{"system:masters"}, nil},
		{"controller-manager", "system:kube-controller-manager", []string{"system:masters"}, nil},
		{"scheduler", "system:kube-scheduler", []string{"system:masters"}, nil},
		{"kwok", "kwok-controller", []string{"system:masters"}, nil},
	} {
		if err := p.issue(cert.name, cert.cn, cert.groups, cert.hosts); err != nil {
			return err
		}
	}
	if err := p.serviceAccountKeys(); err != nil {
		return err
	}

	ports, err := c.pickPorts()
	if err != nil {
		return err
	}
	c.state = state{KubeVersion: KubeVersion, Ports: ports, Nodes: c.Nodes}
	server := "https://127.0.0.1:" + strconv.Itoa(ports["kube-apiserver"])
	for _, kc := range []string{"admin", "controller-manager", "scheduler", "kwok"} {
		out := c.path(kc + ".kubeconfig")
		if kc == "admin" {
			out = c.kubeconfigPath()
		}
		if err := c.writeKubeconfig(out, server, kc); err != nil {
			return err
		}
	}

	d := c.Dir
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports["etcd"])
	if err := c.start(ctx, "etcd", c.Bins.Etcd,
		"--data-dir="+c.path("etcd-data"),
		"--listen-client-url="+etcdURL,
		"--listen-peer-url=http://127.0.0.1:"+strconv.Itoa(ports["etcd-peer"]),
	); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "etcd", etcdURL+"/health", 30*time.Second, nil); err != nil {
		return err
	}

	if err := c.start(ctx, "kube-apiserver", c.Bins.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// 1.37 refuses a loopback address for the kubernetes Service endpoints;
		// nothing in this cluster reaches the API through that Service.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(ports["kube-apiserver"]),
		"--tls-cert-file="+filepath.Join(d, "apiserver.crt"),
		"--tls-private-key-file="+filepath.Join(d, "apiserver.key"),
		"--client-ca-file="+filepath.Join(d, "ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(d, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(d, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		// Nodes are registered by us, not by kubelets; without this plugin
		// they would carry the not-ready taint that only the (disabled)
		// node lifecycle controller removes.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--allow-privileged=true",
		"--profiling=false",
		"--max-requests-inflight=800",
		"--max-mutating-requests-inflight=400",
	); err != nil {
		return err
	}
	tlsCfg, err := c.adminTLS()
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", server+"/readyz", 90*time.Second, tlsCfg); err != nil {
		return err
	}

	kc := func(name string) string { return c.path(name + ".kubeconfig") }
	if err := c.start(ctx, "kube-controller-manager", c.Bins.ControllerManager,
		"--kubeconfig="+kc("controller-manager"),
		"--authentication-kubeconfig="+kc("controller-manager"),
		"--authorization-kubeconfig="+kc("controller-manager"),
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports["kube-controller-manager"]),
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+filepath.Join(d, "sa.key"),
		"--root-ca-file="+filepath.Join(d, "ca.crt"),
		"--controllers=*,-nodeipam,-nodelifecycle,-serviceaccount-token",
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
	); err != nil {
		return err
	}
	if err := c.start(ctx, "kube-scheduler", c.Bins.Scheduler,
		"--kubeconfig="+kc("scheduler"),
		"--authentication-kubeconfig="+kc("scheduler"),
		"--authorization-kubeconfig="+kc("scheduler"),
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports["kube-scheduler"]),
		"--leader-elect=false",
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
	); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("kwok.yaml"), kwokStages, 0o644); err != nil {
		return err
	}
	if err := c.start(ctx, "kwok", c.Bins.Kwok,
		"--config="+c.path("kwok.yaml"),
		"--kubeconfig="+kc("kwok"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--manage-nodes-with-label-selector=",
		"--manage-single-node=",
		"--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
		"--disregard-status-with-label-selector=",
		"--cidr=10.244.0.1/16",
		"--node-ip=10.0.0.1",
		"--node-port="+strconv.Itoa(ports["kwok"]),
		"--server-address=127.0.0.1:"+strconv.Itoa(ports["kwok"]),
	); err != nil {
		return err
	}
	insecure := &tls.Config{InsecureSkipVerify: true} // self-signed serving certs of cm and scheduler
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[name])
		if err := c.waitHTTP(ctx, name, url, 60*time.Second, insecure); err != nil {
			return err
		}
	}
	return nil
}

// pickPorts chooses free loopback ports. A port the user asked for must be
// free now; the others come from the kernel.
func (c *Cluster) pickPorts() (map[string]int, error) {
	ports := map[string]int{}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	if c.APIServerPort != 0 {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.APIServerPort))
		if err != nil {
			return nil, fmt.Errorf("--apiserver-port %d: 127.0.0.1:%d is in use; choose another port or 0 for a free one", c.APIServerPort, c.APIServerPort)
		}
		held = append(held, l)
		ports["kube-apiserver"] = c.APIServerPort
	}
	for _, name := range []string{"etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if ports[name] != 0 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		held = append(held, l)
		ports[name] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func (c *Cluster) writeKubeconfig(path, server, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["tend-local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: c.path("ca.crt")}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: c.path(user + ".crt"), ClientKey: c.path(user + ".key")}
	cfg.Contexts["tend-local"] = &clientcmdapi.Context{Cluster: "tend-local", AuthInfo: user}
	cfg.CurrentContext = "tend-local"
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

func (c *Cluster) adminTLS() (*tls.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfigPath())
	if err != nil {
		return nil, err
	}
	return rest.TLSConfigFor(rc)
}

func (c *Cluster) client() (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfigPath())
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 50, 100
	return kubernetes.NewForConfig(rc)
}

// waitHTTP polls url until it answers 200, the component exits, or timeout.
func (c *Cluster) waitHTTP(ctx context.Context, name, url string, timeout time.Duration, tlsCfg *tls.Config) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if p := c.proc(name); p != nil && p.exited() {
			return c.componentFailed(name, fmt.Errorf("exited: %v", p.exitErr()))
		}
		if time.Now().After(deadline) {
			return c.componentFailed(name, fmt.Errorf("not healthy after %s (last answer: %s)", timeout, last))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) componentFailed(name string, err error) error {
	return fmt.Errorf("%s failed to start: %w\n%s", name, err, tailFile(c.path(name+".log"), 30))
}

func (c *Cluster) writeState() error {
	c.state.Components = nil
	for _, p := range c.procs {
		c.state.Components = append(c.state.Components, procRecord{Name: p.name, Pid: p.cmd.Process.Pid, Bin: p.bin})
	}
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.path(stateFile), b, 0o644)
}

func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse %s: %w", stateFile, err)
	}
	return st, nil
}

// health lists what is wrong with the cluster st describes; empty means healthy.
func (c *Cluster) health(ctx context.Context, st state) []string {
	var problems []string
	for _, name := range componentOrder {
		rec, ok := readPid(c.Dir, name)
		if !ok {
			problems = append(problems, name+" has no pid file")
			continue
		}
		if !alive(rec) {
			problems = append(problems, fmt.Sprintf("%s (pid %d) is not running", name, rec.Pid))
		}
	}
	if len(problems) > 0 {
		return problems
	}
	tlsCfg, err := c.adminTLS()
	if err != nil {
		return []string{"kubeconfig: " + err.Error()}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/readyz", st.Ports["kube-apiserver"]), nil)
	resp, err := hc.Do(req)
	if err != nil {
		return []string{"kube-apiserver not answering: " + err.Error()}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return []string{fmt.Sprintf("kube-apiserver /readyz answered %d", resp.StatusCode)}
	}
	return nil
}

// Status prints the state of each component; it fails when any is unhealthy.
func (c *Cluster) Status(ctx context.Context, w io.Writer) error {
	st, err := readState(c.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no cluster in %s (run \"cluster up\" first)", c.Dir)
	}
	if err != nil {
		return err
	}
	for _, name := range componentOrder {
		rec, ok := readPid(c.Dir, name)
		switch {
		case !ok:
			fmt.Fprintf(w, "%-24s no pid file\n", name)
		case alive(rec):
			fmt.Fprintf(w, "%-24s running (pid %d, log %s)\n", name, rec.Pid, c.path(name+".log"))
		default:
			fmt.Fprintf(w, "%-24s NOT RUNNING (pid %d, log %s)\n", name, rec.Pid, c.path(name+".log"))
		}
	}
	if problems := c.health(ctx, st); len(problems) > 0 {
		return fmt.Errorf("cluster in %s is unhealthy: %s", c.Dir, strings.Join(problems, "; "))
	}
	cs, err := c.client()
	if err != nil {
		return err
	}
	ready, total, err := readyNodes(ctx, cs)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "API https://127.0.0.1:%d ready; %d/%d nodes Ready\nexport KUBECONFIG=%s\n", st.Ports["kube-apiserver"], ready, total, c.kubeconfigPath())
	if ready < total {
		return fmt.Errorf("%d of %d nodes are not Ready", total-ready, total)
	}
	return nil
}

// Down stops exactly the processes recorded in Dir and removes Dir.
func (c *Cluster) Down() error {
	if _, err := os.Stat(c.Dir); errors.Is(err, os.ErrNotExist) {
		c.logf("no cluster in %s; nothing to do", c.Dir)
		return nil
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return err
	}
	if !isOurs(c.Dir, entries) && len(entries) > 0 && !(len(entries) == 1 && entries[0].Name() == ".lock") {
		return fmt.Errorf("%s holds no cluster; not removing it", c.Dir)
	}
	if err := stopRecorded(c.Dir, c.Log); err != nil {
		return err
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove data dir: %w", err)
	}
	c.logf("cluster in %s stopped and removed", c.Dir)
	return nil
}

func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another \"cluster up\" is running on %s", dir)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
