package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// The targets are found in the sources: every package's fuzz functions,
// and nothing from the nested modules (tools/cluster, bench/gitmeasure).
func TestFindTargets(t *testing.T) {
	targets, err := findTargets("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []target{
		{"internal/render", "FuzzSOPS"},
		{"internal/render", "FuzzKustomization"},
		{"internal/webhook", "FuzzSignature"},
		{"api/v1alpha1", "FuzzCRDs"},
	} {
		if !slices.Contains(targets, want) {
			t.Errorf("targets %v lack %v", targets, want)
		}
	}
	for _, tg := range targets {
		if tg.Dir == "tools/cluster" || tg.Dir == "bench/gitmeasure" || tg.Dir == "hack/fuzz" {
			t.Errorf("target %v is not in the tend module or not a target", tg)
		}
	}
}

func TestIsFuzzTarget(t *testing.T) {
	src := `package p
func FuzzA(f *testing.F) {}
func Fuzz(f *testing.F) {}
func Fuzzy(f *testing.F) {}
func FuzzB(t *testing.T) {}
func FuzzC(f *testing.F, x int) {}
func (r R) FuzzD(f *testing.F) {}
func fuzzE(f *testing.F) {}
`
	f, err := parser.ParseFile(token.NewFileSet(), "p_test.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && isFuzzTarget(fn) {
			got = append(got, fn.Name.Name)
		}
	}
	if want := []string{"FuzzA", "Fuzz"}; !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
}

// Go 1.26 fails a fuzz run at its deadline with "context deadline
// exceeded" and no input (go.dev/issue/75804); anything else is a failure.
func TestSpuriousDeadline(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"fuzz: elapsed: 4s, execs: 17 (0/sec)\n--- FAIL: FuzzAppSpec (5.08s)\n    context deadline exceeded\nFAIL\n", true},
		{"--- FAIL: FuzzX (1.00s)\n    --- FAIL: FuzzX (0.00s)\n        fuzz_test.go:9: boom\n    Failing input written to testdata/fuzz/FuzzX/abc\n    To re-run:\nFAIL\n", false},
		{"--- FAIL: FuzzX (5.00s)\n    fuzzing process hung or terminated unexpectedly: exit status 2\n    Failing input written to testdata/fuzz/FuzzX/abc\nFAIL\n", false},
		{"--- FAIL: FuzzX (5.00s)\n    fuzz_test.go:3: context deadline exceeded while decoding\nFAIL\n", false},
		{"--- FAIL: FuzzArgoCD (61.51s)\n    context deadline exceeded\nfuzz: elapsed: 1m2s, execs: 4996 (0/sec), new interesting: 40 (total: 58)\nFAIL\n", true},
		{"PASS\n", false},
	} {
		if got := spuriousDeadline([]byte(tc.out)); got != tc.want {
			t.Errorf("spuriousDeadline(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}
