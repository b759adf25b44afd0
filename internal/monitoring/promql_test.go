package monitoring_test

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The tests check the dashboard's and the alerts' PromQL against the
// metrics a running tend exports. Prometheus's own parser
// (github.com/prometheus/prometheus/promql/parser) would pull the whole
// prometheus module into go.mod and raise shared dependencies of the
// binary, so queries are read by the small lexer below instead: it knows
// PromQL's tokens well enough to tell metric names from functions,
// keywords and label names, and it rejects what it does not know.

// query is what the checks need from one PromQL expression.
type query struct {
	Selectors []selector
	// Grouping holds the labels named in by, without, on, ignoring,
	// group_left and group_right clauses.
	Grouping []string
}

// selector is one vector selector: a metric name and its label matchers.
type selector struct {
	Metric   string
	Matchers []matcher
}

type matcher struct{ Label, Op, Value string }

func (s selector) String() string {
	var ms []string
	for _, m := range s.Matchers {
		ms = append(ms, m.Label+m.Op+strconv.Quote(m.Value))
	}
	return s.Metric + "{" + strings.Join(ms, ",") + "}"
}

type tokenKind int

const (
	tIdent tokenKind = iota
	tNumber
	tString
	tVariable // a Grafana variable: $name or ${name}
	tPunct
)

type token struct {
	kind tokenKind
	text string // a string's value, unquoted
}

// aggregations may be followed by a by/without clause instead of "(".
var aggregations = map[string]bool{
	"sum": true, "avg": true, "count": true, "min": true, "max": true, "group": true,
	"stddev": true, "stdvar": true, "topk": true, "bottomk": true, "quantile": true,
	"count_values": true, "limitk": true, "limit_ratio": true,
}

// keywords are never metric names.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// labelLists are the keywords followed by a parenthesized list of labels.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// parseQuery reads expr's vector selectors and grouping labels.
func parseQuery(expr string) (query, error) {
	toks, err := lex(expr)
	if err != nil {
		return query{}, err
	}
	var q query
	depth := map[string]int{}
	closing := map[string]string{")": "(", "}": "{", "]": "["}
	for _, tk := range toks {
		if tk.kind != tPunct {
			continue
		}
		switch tk.text {
		case "(", "{", "[":
			depth[tk.text]++
		case ")", "}", "]":
			if depth[closing[tk.text]]--; depth[closing[tk.text]] < 0 {
				return query{}, fmt.Errorf("unbalanced %q in %s", tk.text, expr)
			}
		}
	}
	for open, n := range depth {
		if n != 0 {
			return query{}, fmt.Errorf("unclosed %q in %s", open, expr)
		}
	}
	next := func(i int) token {
		if i+1 < len(toks) {
			return toks[i+1]
		}
		return token{}
	}
	isPunct := func(tk token, p string) bool { return tk.kind == tPunct && tk.text == p }
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch {
		case tk.kind == tIdent && labelLists[tk.text]:
			if !isPunct(next(i), "(") {
				if tk.text == "group_left" || tk.text == "group_right" {
					continue // no extra labels
				}
				return query{}, fmt.Errorf("%s without a label list in %s", tk.text, expr)
			}
			i += 2
			for ; i < len(toks) && !isPunct(toks[i], ")"); i++ {
				switch {
				case toks[i].kind == tIdent || toks[i].kind == tString:
					q.Grouping = append(q.Grouping, toks[i].text)
				case isPunct(toks[i], ","):
				default:
					return query{}, fmt.Errorf("unexpected %q in the label list of %s in %s", toks[i].text, tk.text, expr)
				}
			}
		case tk.kind == tIdent && isPunct(next(i), "("):
			// A function or an aggregation.
		case tk.kind == tIdent && aggregations[tk.text] && next(i).kind == tIdent && (next(i).text == "by" || next(i).text == "without"):
		case tk.kind == tIdent && keywords[tk.text]:
		case tk.kind == tIdent && (strings.EqualFold(tk.text, "inf") || strings.EqualFold(tk.text, "nan")):
		case tk.kind == tIdent:
			s := selector{Metric: tk.text}
			if isPunct(next(i), "{") {
				ms, end, err := matchers(toks, i+1, expr)
				if err != nil {
					return query{}, err
				}
				s.Matchers, i = ms, end
			}
			q.Selectors = append(q.Selectors, s)
		case isPunct(tk, "{"):
			ms, end, err := matchers(toks, i, expr)
			if err != nil {
				return query{}, err
			}
			s := selector{}
			for j := 0; j < len(ms); j++ {
				switch {
				case ms[j].Label == "__name__" && ms[j].Op == "=":
					s.Metric = ms[j].Value
				case ms[j].Label == "__name__":
					return query{}, fmt.Errorf("a metric name matched with %s cannot be checked, in %s", ms[j].Op, expr)
				case ms[j].Op == "": // {"quoted.name", ...}
					s.Metric = ms[j].Label
				default:
					s.Matchers = append(s.Matchers, ms[j])
				}
			}
			if s.Metric == "" {
				return query{}, fmt.Errorf("a selector without a metric name in %s", expr)
			}
			q.Selectors = append(q.Selectors, s)
			i = end
		case isPunct(tk, "["):
			// A range or subquery: durations, numbers, variables, ':'.
			for i++; i < len(toks) && !isPunct(toks[i], "]"); i++ {
			}
		}
	}
	return q, nil
}

// matchers reads the label matchers of the braces opened at toks[start]
// and returns them with the index of the closing brace.
func matchers(toks []token, start int, expr string) ([]matcher, int, error) {
	var ms []matcher
	i := start + 1
	for i < len(toks) {
		tk := toks[i]
		if tk.kind == tPunct && tk.text == "}" {
			return ms, i, nil
		}
		if tk.kind == tPunct && tk.text == "," {
			i++
			continue
		}
		if tk.kind != tIdent && tk.kind != tString {
			return nil, 0, fmt.Errorf("unexpected %q among label matchers in %s", tk.text, expr)
		}
		if i+1 < len(toks) && toks[i+1].kind == tPunct && (toks[i+1].text == "," || toks[i+1].text == "}") && tk.kind == tString {
			ms = append(ms, matcher{Label: tk.text}) // a quoted metric name
			i++
			continue
		}
		if i+2 >= len(toks) {
			break
		}
		op, val := toks[i+1], toks[i+2]
		switch {
		case op.kind != tPunct || (op.text != "=" && op.text != "!=" && op.text != "=~" && op.text != "!~"):
			return nil, 0, fmt.Errorf("label %s without a matcher in %s", tk.text, expr)
		case val.kind != tString:
			return nil, 0, fmt.Errorf("label %s%s matches %q, not a string, in %s", tk.text, op.text, val.text, expr)
		}
		ms = append(ms, matcher{Label: tk.text, Op: op.text, Value: val.text})
		i += 3
	}
	return nil, 0, fmt.Errorf("unclosed label matchers in %s", expr)
}

// lex splits a PromQL expression (with Grafana variables) into tokens.
func lex(expr string) ([]token, error) {
	var toks []token
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
	}
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d in %s", i, expr)
			}
			raw := expr[i : j+1]
			var s string
			switch c {
			case '`':
				s = raw[1 : len(raw)-1]
			case '\'':
				// Unquote as a double-quoted Go string.
				body := strings.ReplaceAll(raw[1:len(raw)-1], `\'`, `'`)
				body = strings.ReplaceAll(body, `"`, `\"`)
				raw = `"` + body + `"`
				fallthrough
			default:
				u, err := strconv.Unquote(raw)
				if err != nil {
					return nil, fmt.Errorf("bad string %s in %s: %w", raw, expr, err)
				}
				s = u
			}
			toks = append(toks, token{tString, s})
			i = j + 1
		case isDigit(c) || c == '.' && i+1 < len(expr) && isDigit(expr[i+1]):
			// Numbers (1, 0.5, 1e-3, 0x1f, 1_000) and durations (5m, 1h30m).
			j := i
			for j < len(expr) {
				d := expr[j]
				if isIdent(d, false) && d != ':' || d == '.' {
					j++
					continue
				}
				if (d == '+' || d == '-') && (expr[j-1] == 'e' || expr[j-1] == 'E') && !strings.HasPrefix(expr[i:j], "0x") {
					j++
					continue
				}
				break
			}
			toks = append(toks, token{tNumber, expr[i:j]})
			i = j
		case isIdent(c, true):
			j := i + 1
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			toks = append(toks, token{tIdent, expr[i:j]})
			i = j
		case c == '$':
			j := i + 1
			if j < len(expr) && expr[j] == '{' {
				k := strings.IndexByte(expr[j:], '}')
				if k < 0 {
					return nil, fmt.Errorf("unclosed ${ at %d in %s", i, expr)
				}
				j += k + 1
			} else {
				for j < len(expr) && isIdent(expr[j], false) && expr[j] != ':' {
					j++
				}
				if j == i+1 {
					return nil, fmt.Errorf("a lone $ at %d in %s", i, expr)
				}
			}
			toks = append(toks, token{tVariable, expr[i:j]})
			i = j
		default:
			op := ""
			for _, p := range []string{"==", "!=", "<=", ">=", "=~", "!~", "(", ")", "{", "}", "[", "]", ",", "=", "<", ">", "+", "-", "*", "/", "%", "^", "@", ":"} {
				if strings.HasPrefix(expr[i:], p) {
					op = p
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("unexpected %q at %d in %s", c, i, expr)
			}
			toks = append(toks, token{tPunct, op})
			i += len(op)
		}
	}
	return toks, nil
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		expr     string
		want     []string // selectors, as selector.String
		grouping []string
	}{
		{expr: `up`, want: []string{`up{}`}},
		{expr: `absent(up{job="tend"} == 1)`, want: []string{`up{job="tend"}`}},
		{
			expr:     `sum by (le) (rate(tend_sync_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))`,
			want:     []string{`tend_sync_duration_seconds_bucket{job=~"$job"}`},
			grouping: []string{"le"},
		},
		{
			expr:     `sum(rate(a_total[5m])) without (instance, "pod") / on() group_left sum(b)`,
			want:     []string{`a_total{}`, `b{}`},
			grouping: []string{"instance", "pod"},
		},
		{
			expr: `histogram_quantile(0.99, sum by (le, result) (rate(x_bucket{result="Failed"}[1h30m:1m] offset -5m)))`,
			want: []string{`x_bucket{result="Failed"}`}, grouping: []string{"le", "result"},
		},
		{
			// Strings with braces, quotes and escapes; a trailing comma.
			expr: `count(m{a="}{", b!~'it\'s', c=~"\"q\"|x",}) > bool 1e+3`,
			want: []string{`m{a="}{",b!~"it's",c=~"\"q\"|x"}`},
		},
		{
			expr:     `a * ignoring(x) group_right(y, z) b @ 1609746000 and c @ end() unless d offset 1d`,
			want:     []string{`a{}`, `b{}`, `c{}`, `d{}`},
			grouping: []string{"x", "y", "z"},
		},
		{expr: `{__name__="x:rate5m", job="j"}`, want: []string{`x:rate5m{job="j"}`}},
		{expr: `{"dotted.name", a="b"}`, want: []string{`dotted.name{a="b"}`}},
		{expr: `vector(0) or sum(m) / 0x1F + Inf - NaN + .5 # a comment with up{}`, want: []string{`m{}`}},
		{expr: `topk(${n}, count_values("version", build_info)) + label_replace(up, "dst", "$1", "src", "(.*)")`, want: []string{`build_info{}`, `up{}`}},
		{expr: "quantile(0.5, m{a=`raw\\`})", want: []string{"m{a=\"raw\\\\\"}"}},
	} {
		q, err := parseQuery(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		var got []string
		for _, s := range q.Selectors {
			got = append(got, s.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got selectors %q\nwant %q", tc.expr, got, tc.want)
		}
		if !reflect.DeepEqual(q.Grouping, tc.grouping) {
			t.Errorf("%s: grouping %q, want %q", tc.expr, q.Grouping, tc.grouping)
		}
	}
	for _, bad := range []string{
		`sum(rate(m[5m])`,
		`m{a="b"`,
		`m{a="unterminated}`,
		`m{a=b}`,
		`m{a}`,
		`{__name__=~"tend_.*"}`,
		`{job="x"}`,
		`sum by le (m)`,
		`m ~ 1`,
		`m]`,
	} {
		if q, err := parseQuery(bad); err == nil {
			t.Errorf("%s parsed as %+v; want an error", bad, q)
		}
	}
}
