package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// controllerSelector selects the controller's pods (see internal/install).
const controllerSelector = "app.kubernetes.io/name=tend"

func (m *Main) logsCommand() *cobra.Command {
	var (
		kf     kubeFlags
		ctlNS  string
		follow bool
		since  time.Duration
		tail   int64
	)
	cmd := &cobra.Command{
		Use:         "logs [APP]",
		Short:       "Show the controller's logs, or the lines about one App",
		Annotations: map[string]string{annotationExit1: "when no controller runs in the cluster"},
		Long: `Show the logs of the tend controller running in the cluster (the pods labelled
` + controllerSelector + ` in --controller-namespace), or with APP only the lines
that mention that App. With several replicas, each line starts with its pod's
name; only the leader reconciles.

A controller run outside the cluster (` + "`tend controller`" + ` on a workstation) logs to
its own standard error, and ` + "`tend demo`" + ` to ~/.local/state/tend/demo/controller.log.`,
		Example: `  tend logs
  tend logs web -n tend-system --follow
  tend logs --since 10m`,
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeApps(cmd.Context(), &kf)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			k, err := kf.connect()
			if err != nil {
				return err
			}
			keep := func(string) bool { return true }
			if len(args) == 1 {
				app, err := k.app(ctx, args[0])
				if err != nil {
					return err
				}
				keep = mentions(app.Name)
			}
			pods, err := k.cs.CoreV1().Pods(ctlNS).List(ctx, metav1.ListOptions{LabelSelector: controllerSelector})
			if err != nil {
				return k.wrap(err)
			}
			if len(pods.Items) == 0 {
				return &exitError{code: ExitDiff, err: fmt.Errorf("the tend controller is not running in the cluster at %s: no pods labelled %s in namespace %s (--controller-namespace). A controller run locally (`tend controller`) logs to its own standard error; `tend demo` writes ~/.local/state/tend/demo/controller.log", k.cfg.Host, controllerSelector, ctlNS)}
			}
			opts := corev1.PodLogOptions{Follow: follow}
			if tail >= 0 {
				opts.TailLines = &tail
			}
			if since > 0 {
				s := int64(since.Seconds())
				opts.SinceSeconds = &s
			}
			return m.streamLogs(ctx, k, pods.Items, opts, keep)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.StringVar(&ctlNS, "controller-namespace", "tend-system", "namespace the controller runs in")
	f.BoolVarP(&follow, "follow", "f", false, "keep streaming new lines")
	f.DurationVar(&since, "since", 0, "only lines newer than this, e.g. 10m (default: all)")
	f.Int64Var(&tail, "tail", -1, "only the last N lines of each pod, before filtering; -1 for all")
	return cmd
}

// mentions matches log lines about the App: its name as a word, as in
// app=<namespace>/<name> or name=<name> (not web-migrate for web). ns is
// not matched: controller-runtime logs name and namespace apart.
func mentions(name string) func(string) bool {
	word := regexp.MustCompile(`(^|[^A-Za-z0-9.-])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9.-])`)
	return word.MatchString
}

// streamLogs copies the controller container's log of each pod to stdout,
// line by line, prefixed with the pod's name when there are several.
func (m *Main) streamLogs(ctx context.Context, k *kube, pods []corev1.Pod, opts corev1.PodLogOptions, keep func(string) bool) error {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []string
	)
	for _, pod := range pods {
		o := opts
		o.Container = controllerContainer(&pod)
		prefix := ""
		if len(pods) > 1 {
			prefix = "[" + pod.Name + "] "
		}
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			err := copyLog(ctx, k, pod.Namespace, name, &o, func(line string) {
				if !keep(line) {
					return
				}
				mu.Lock()
				fmt.Fprintln(m.Stdout, prefix+line)
				mu.Unlock()
			})
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("pod %s: %v", name, err))
				mu.Unlock()
			}
		}(pod.Name)
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func controllerContainer(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == "controller" {
			return c.Name
		}
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Name
	}
	return ""
}

func copyLog(ctx context.Context, k *kube, ns, pod string, opts *corev1.PodLogOptions, line func(string)) error {
	rc, err := k.cs.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return k.wrap(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
