package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape is one read of a /metrics endpoint.
type scrape []sample

// parseProm reads the Prometheus text format (what every Go /metrics
// endpoint serves); comments and malformed lines are skipped.
func parseProm(r io.Reader) (scrape, error) {
	var out scrape
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

func parseSample(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, false
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " ,")
			if line == "" {
				return s, false
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || len(line) < eq+2 || line[eq+1] != '"' {
				return s, false
			}
			key := strings.TrimSpace(line[:eq])
			val, rest, ok := unquoteLabel(line[eq+2:])
			if !ok {
				return s, false
			}
			s.labels[key], line = val, rest
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

// unquoteLabel reads a label value up to its closing quote, undoing the
// format's escapes (\\, \" and \n).
func unquoteLabel(s string) (val, rest string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// sum adds the values of name's samples whose labels match (nil: all).
// It returns NaN when the endpoint has no such metric.
func (s scrape) sum(name string, match func(map[string]string) bool) float64 {
	total, found := 0.0, false
	for _, x := range s {
		if x.name != name {
			continue
		}
		found = true
		if match == nil || match(x.labels) {
			total += x.value
		}
	}
	if !found {
		return math.NaN()
	}
	return total
}

// by sums name's samples grouped by the value of label.
func (s scrape) by(name, label string, match func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	for _, x := range s {
		if x.name == name && (match == nil || match(x.labels)) {
			out[x.labels[label]] += x.value
		}
	}
	return out
}

// has says whether the endpoint serves name at all.
func (s scrape) has(name string) bool {
	for _, x := range s {
		if x.name == name {
			return true
		}
	}
	return false
}

// scrapeURL reads a plain-HTTP /metrics endpoint such as the controller's.
func scrapeURL(ctx context.Context, url string) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseProm(resp.Body)
}

// scrapeAPIServer reads the apiserver's own /metrics with the admin
// credentials of cs.
func scrapeAPIServer(ctx context.Context, cs kubernetes.Interface) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the apiserver's /metrics: %w", err)
	}
	return parseProm(bytes.NewReader(b))
}

// requestDelta is the difference between two reads of a request counter,
// grouped by one label (verb), without zero entries.
func requestDelta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// writeVerbs are the verbs that change something, as tend's own counter
// (HTTP methods) and the apiserver (APPLY for server-side apply) name them.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true, "CREATE": true, "UPDATE": true, "DELETECOLLECTION": true}

// countWrites sums the write verbs of a by-verb map; tend's dry-run verbs
// (PATCH_DRYRUN, ...) are not writes.
func countWrites(byVerb map[string]float64) float64 {
	n := 0.0
	for v, x := range byVerb {
		if writeVerbs[v] {
			n += x
		}
	}
	return n
}

// countDryRuns sums tend's *_DRYRUN verbs.
func countDryRuns(byVerb map[string]float64) float64 {
	n := 0.0
	for v, x := range byVerb {
		if strings.HasSuffix(v, "_DRYRUN") {
			n += x
		}
	}
	return n
}
