package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatYAML  = "yaml"
	formatJSON  = "json"
)

// checkFormat returns a usage error unless format is one of allowed.
func checkFormat(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return &exitError{code: ExitUsage, err: fmt.Errorf("--output %q: want %s", format, strings.Join(allowed, ", "))}
}

// printData writes v as YAML or JSON.
func printData(w io.Writer, format string, v any) error {
	if format == formatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ANSI colours. Output is coloured only when it goes to a terminal and
// NO_COLOR is unset.
const (
	colorRed    = "\x1b[31m"
	colorGreen  = "\x1b[32m"
	colorYellow = "\x1b[33m"
	colorCyan   = "\x1b[36m"
	colorBold   = "\x1b[1m"
	colorReset  = "\x1b[0m"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// painter colours text when on is set.
type painter struct{ on bool }

func (m *Main) painter() painter {
	return painter{on: os.Getenv("NO_COLOR") == "" && isTerminal(m.Stdout)}
}

func (p painter) paint(color, s string) string {
	if !p.on || color == "" || s == "" {
		return s
	}
	return color + s + colorReset
}

// stateColor is the colour of a status word: green for good, yellow for
// in between, red for bad.
func stateColor(s string) string {
	switch s {
	case "Synced", "Healthy", "True", "Succeeded", "created", "configured", "pruned", "hook-succeeded", "yes":
		return colorGreen
	case "OutOfSync", "Progressing", "Unknown", "Suspended", "skipped", "kept":
		return colorYellow
	case "Degraded", "Missing", "False", "Failed", "failed", "hook-failed", "no":
		return colorRed
	}
	return ""
}

// table prints aligned columns; colours do not disturb the alignment.
type table struct {
	header []string
	rows   [][]cell
}

type cell struct{ text, color string }

func plain(s string) cell { return cell{text: s} }

// state is a cell coloured by stateColor.
func state(s string) cell { return cell{text: s, color: stateColor(s)} }

func (t *table) add(cells ...cell) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer, p painter) error {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = len(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
			}
		}
	}
	var b strings.Builder
	line := func(cells []cell) {
		for i, c := range cells {
			text := strings.Join(strings.Fields(c.text), " ")
			b.WriteString(p.paint(c.color, text))
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(text)+3))
			}
		}
		b.WriteString("\n")
	}
	head := make([]cell, len(t.header))
	for i, h := range t.header {
		head[i] = cell{text: h}
	}
	line(head)
	for _, r := range t.rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// shortRev shortens a commit SHA for tables.
func shortRev(rev string) string {
	if len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == "" {
		return rev[:12]
	}
	return rev
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// closest returns the candidate nearest to name: within an edit distance
// of 2 (or a third of name's length, for long names), or starting with
// name. It returns "" when nothing is close.
func closest(name string, candidates []string) string {
	limit := max(2, len(name)/3)
	best, bestD := "", limit+1
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		d := levenshtein(strings.ToLower(name), strings.ToLower(c))
		if d > limit && strings.HasPrefix(c, name) {
			d = limit
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// flagError makes an unknown flag a usage error that suggests the closest
// flag of the command.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden {
				names = append(names, f.Name)
			}
		})
		if s := closest(name, names); s != "" {
			msg += "; did you mean --" + s + "?"
		}
	}
	return &exitError{code: ExitUsage, err: fmt.Errorf("%s (see '%s --help')", msg, cmd.CommandPath())}
}

// unreachablePhrases are the ends of the errors client-go returns when the
// cluster cannot be reached, as they are worth showing to a user.
var unreachablePhrases = []string{
	"connection refused", "no such host", "i/o timeout", "network is unreachable", "no route to host",
	"connection reset by peer", "TLS handshake timeout", "certificate signed by unknown authority",
	"certificate is not valid", "server gave HTTP response to HTTPS client", "EOF",
}

// reachError turns a failure to reach the cluster at host into one line:
// "cannot reach the cluster at https://...: connection refused". Other
// errors are returned unchanged.
func reachError(host string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var ne net.Error
	isNet := errors.As(err, &ne)
	text := err.Error()
	for _, p := range unreachablePhrases {
		if strings.Contains(text, p) && (isNet || p != "EOF") {
			return &exitError{code: ExitUsage, err: fmt.Errorf("cannot reach the cluster at %s: %s; check the kubeconfig (--kubeconfig, --context) and that the cluster is up", host, p)}
		}
	}
	if isNet && ne.Timeout() {
		return &exitError{code: ExitUsage, err: fmt.Errorf("cannot reach the cluster at %s: timed out; check the kubeconfig (--kubeconfig, --context) and that the cluster is up", host)}
	}
	return err
}
