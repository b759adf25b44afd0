// Command fuzz runs tend's fuzz targets: every func FuzzXxx(*testing.F) in
// a _test.go file of the tend module, found by parsing the sources, so a
// new target runs without being listed anywhere. Each package's test
// binary is built once with fuzzing instrumentation and run once per
// target, one target at a time, from the package's directory: an input
// that fails lands in that package's testdata/fuzz/<target>, where go test
// runs it as a regression test from then on. The corpus grown on the way
// is kept where `go test -fuzz` keeps it ($GOCACHE/fuzz), so long runs
// build on each other.
//
//	go run ./hack/fuzz -fuzztime 5s          # make fuzz-smoke
//	go run ./hack/fuzz -fuzztime 10m -run SOPS -parallel 2
//	go run ./hack/fuzz -list
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// target is one fuzz function and the package directory it is in.
type target struct {
	Dir  string // slash path relative to the module root, e.g. internal/render
	Name string // e.g. FuzzSOPS
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fuzz:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("fuzz", flag.ContinueOnError)
	fuzztime := fl.String("fuzztime", "5s", "how long to run each target (a duration, or Nx for N inputs)")
	minimize := fl.String("minimizetime", "5s", "how long to minimize each new input (go test's 60s default would take most of a short run)")
	parallel := fl.Int("parallel", 1, "fuzzing workers per target (the machine's cores: "+fmt.Sprint(runtime.NumCPU())+")")
	match := fl.String("run", "", "run only targets whose package/name matches this regular expression")
	tags := fl.String("tags", "kustomize_disable_go_plugin_support", "build tags")
	list := fl.Bool("list", false, "list the targets and exit")
	if err := fl.Parse(args); err != nil {
		return err
	}
	re, err := regexp.Compile(*match)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	all, err := findTargets(".")
	if err != nil {
		return err
	}
	var targets []target
	for _, t := range all {
		if re.MatchString(t.Dir + "/" + t.Name) {
			targets = append(targets, t)
		}
	}
	if *list {
		for _, t := range targets {
			fmt.Printf("%s %s\n", t.Dir, t.Name)
		}
		return nil
	}
	if len(targets) == 0 {
		return fmt.Errorf("no fuzz targets match %q", *match)
	}
	cache, err := goEnv("GOCACHE")
	if err != nil {
		return err
	}
	module, err := goList("-m")
	if err != nil {
		return err
	}
	bin, err := os.MkdirTemp("", "tend-fuzz-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	start := time.Now()
	built := map[string]string{}
	var failed []string
	for _, t := range targets {
		exe, ok := built[t.Dir]
		if !ok {
			exe = filepath.Join(bin, strings.ReplaceAll(t.Dir, "/", "_")+".test")
			cmd := exec.Command("go", "test", "-c", "-fuzz=.", "-tags", *tags, "-o", exe, "./"+t.Dir)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("build %s: %w", t.Dir, err)
			}
			built[t.Dir] = exe
		}
		fmt.Printf("--- %s %s (%s)\n", t.Dir, t.Name, *fuzztime)
		cmd := exec.Command(exe, "-test.run=^$", "-test.fuzz=^"+t.Name+"$", "-test.fuzztime="+*fuzztime, "-test.fuzzminimizetime="+*minimize,
			"-test.parallel="+fmt.Sprint(*parallel),
			"-test.fuzzcachedir="+filepath.Join(cache, "fuzz", module+"/"+t.Dir))
		cmd.Dir = t.Dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.MultiWriter(os.Stdout, &out), io.MultiWriter(os.Stderr, &out)
		if err := cmd.Run(); err != nil {
			if spuriousDeadline(out.Bytes()) {
				fmt.Printf("%s %s: ignoring Go's spurious \"context deadline exceeded\" at the end of -fuzztime (go.dev/issue/75804, fixed in Go 1.27): no input failed\n", t.Dir, t.Name)
				continue
			}
			failed = append(failed, t.Dir+" "+t.Name)
		}
	}
	fmt.Printf("%d fuzz targets in %s\n", len(targets), time.Since(start).Round(time.Second))
	if len(failed) > 0 {
		return fmt.Errorf("failed (the input is in the package's testdata/fuzz/<target>; fix the cause and commit it): %s", strings.Join(failed, ", "))
	}
	return nil
}

// spuriousDeadline reports whether a fuzz run's output is Go 1.26's
// failure at the -fuzztime deadline that no input caused
// (go.dev/issue/75804): the target failed with "context deadline
// exceeded" alone and wrote no failing input.
func spuriousDeadline(out []byte) bool {
	_, tail, ok := bytes.Cut(out, []byte("--- FAIL: Fuzz"))
	if !ok {
		return false
	}
	deadline := false
	for i, line := range strings.Split(string(tail), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case i == 0, line == "", line == "FAIL", strings.HasPrefix(line, "fuzz: elapsed:"), strings.HasPrefix(line, "exit status"):
			// the FAIL line's own rest, and the coordinator's progress
		case line == "context deadline exceeded":
			deadline = true
		default:
			return false
		}
	}
	return deadline
}

// findTargets parses the _test.go files of the module at root (not those of
// nested modules, testdata or hidden directories) and returns their fuzz
// functions, sorted by directory and name.
func findTargets(root string) ([]target, error) {
	var out []target
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || fileExists(filepath.Join(p, "go.mod"))) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		dir, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && isFuzzTarget(fn) {
				out = append(out, target{Dir: filepath.ToSlash(dir), Name: fn.Name.Name})
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b target) int {
		return strings.Compare(a.Dir+" "+a.Name, b.Dir+" "+b.Name)
	})
	return out, err
}

// isFuzzTarget: func FuzzXxx(f *testing.F), as go test finds them.
func isFuzzTarget(fn *ast.FuncDecl) bool {
	name, ok := strings.CutPrefix(fn.Name.Name, "Fuzz")
	if !ok || fn.Recv != nil || (name != "" && strings.ToUpper(name[:1]) != name[:1]) {
		return false
	}
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "F"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return s, nil
	}
	return "", errors.New("go env " + name + " is empty")
}

func goList(args ...string) (string, error) {
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
