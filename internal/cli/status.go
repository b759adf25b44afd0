package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// appStatus is one App in `tend status`.
type appStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Sync      string `json:"sync"`
	Health    string `json:"health"`
	Revision  string `json:"revision,omitempty"`
	// Attempted is the newest revision tried when it is not Revision
	// (it failed to render or apply).
	Attempted string `json:"attemptedRevision,omitempty"`
	Message   string `json:"message,omitempty"`
}

// sourceStatus is one Source in `tend status`.
type sourceStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Revision  string `json:"revision,omitempty"`
	Ready     string `json:"ready"`
	Message   string `json:"message,omitempty"`
}

func (m *Main) statusCommand() *cobra.Command {
	var (
		kf     kubeFlags
		all    bool
		output string
	)
	cmd := &cobra.Command{
		Use:         "status",
		Short:       "Show whether every App is synced and healthy",
		Annotations: map[string]string{annotationExit1: "when an App is not both Synced and Healthy (Failed, OutOfSync, Degraded, ...)"},
		Long: `Show the Apps and Sources of a namespace (-n, default the context's; -A for all):
each App's sync state, health, revision and what is wrong, and each Source's
revision and readiness.

An App whose newest revision failed to render or apply shows Failed, with that
revision and the last good one, which stays applied.

Exits 1 when an App is not both Synced and Healthy (Failed, OutOfSync,
Degraded, Progressing, ...), so scripts and CI can wait on it.`,
		Example: `  tend status -A
  tend status -n tend-system -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output, formatTable, formatYAML, formatJSON); err != nil {
				return err
			}
			k, err := kf.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var opts []client.ListOption
			if !all {
				opts = append(opts, client.InNamespace(k.ns))
			}
			var apps tendv1.AppList
			if err := k.c.List(ctx, &apps, opts...); err != nil {
				return k.wrap(err)
			}
			var sources tendv1.SourceList
			if err := k.c.List(ctx, &sources, opts...); err != nil {
				return k.wrap(err)
			}
			as, ss := appStatuses(apps.Items), sourceStatuses(sources.Items)
			if output != formatTable {
				if err := printData(m.Stdout, output, map[string]any{"apps": as, "sources": ss}); err != nil {
					return err
				}
			} else if err := m.printStatus(as, ss, all, k.ns); err != nil {
				return err
			}
			bad := 0
			for _, a := range as {
				if a.Sync != tendv1.SyncSynced || a.Health != "Healthy" {
					bad++
				}
			}
			if bad > 0 {
				return &exitError{code: ExitDiff, err: fmt.Errorf("%d of %d Apps not Synced and Healthy", bad, len(as))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.BoolVarP(&all, "all-namespaces", "A", false, "show every namespace")
	f.StringVarP(&output, "output", "o", formatTable, "output format: table, yaml or json")
	return cmd
}

func appStatuses(items []tendv1.App) []appStatus {
	out := make([]appStatus, 0, len(items))
	for _, a := range items {
		ready, msg := readyCondition(a.Status.Conditions)
		s := appStatus{
			Namespace: a.Namespace, Name: a.Name,
			Sync: orUnknown(a.Status.Sync), Health: orUnknown(a.Status.Health),
			Revision: a.Status.Revision,
		}
		if r := a.Status.LastAttemptedRevision; r != "" && r != a.Status.Revision && s.Sync == tendv1.SyncFailed {
			s.Attempted = r
		}
		if a.Spec.Suspend {
			s.Sync = "Suspended"
		}
		if ready != "True" || s.Sync != tendv1.SyncSynced || s.Health != "Healthy" {
			s.Message = msg
		}
		if s.Message == "" && a.Spec.TargetRevision != "" {
			s.Message = "pinned to " + shortRev(a.Spec.TargetRevision) + " (tend rollback " + a.Name + " --unpin follows the Source again)"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

func sourceStatuses(items []tendv1.Source) []sourceStatus {
	out := make([]sourceStatus, 0, len(items))
	for _, s := range items {
		ready, msg := readyCondition(s.Status.Conditions)
		st := sourceStatus{Namespace: s.Namespace, Name: s.Name, Revision: artifactRevision(&s), Ready: ready}
		if ready != "True" {
			st.Message = msg
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

func (m *Main) printStatus(as []appStatus, ss []sourceStatus, all bool, ns string) error {
	p := m.painter()
	where := "namespace " + ns
	if all {
		where = "any namespace"
	}
	if len(as) == 0 {
		fmt.Fprintf(m.Stdout, "no Apps in %s\n", where)
	} else {
		t := &table{header: []string{"APP", "SYNC", "HEALTH", "REVISION", "MESSAGE"}}
		for _, a := range as {
			name := a.Name
			if all {
				name = a.Namespace + "/" + a.Name
			}
			rev := shortRev(a.Revision)
			if a.Attempted != "" {
				// Failed at the newest revision; the last good one stays applied.
				rev = shortRev(a.Attempted) + " (applied: " + orNone(shortRev(a.Revision)) + ")"
			}
			t.add(plain(name), state(a.Sync), state(a.Health), plain(rev), plain(a.Message))
		}
		if err := t.write(m.Stdout, p); err != nil {
			return err
		}
	}
	if len(ss) == 0 {
		return nil
	}
	fmt.Fprintln(m.Stdout)
	t := &table{header: []string{"SOURCE", "REVISION", "READY", "MESSAGE"}}
	for _, s := range ss {
		name := s.Name
		if all {
			name = s.Namespace + "/" + s.Name
		}
		t.add(plain(name), plain(s.Revision), state(s.Ready), plain(s.Message))
	}
	return t.write(m.Stdout, p)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
