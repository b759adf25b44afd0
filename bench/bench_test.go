package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRenderSmoke runs the render benchmark small so it cannot rot, and
// checks what it measures rather than how fast: a one-App commit re-renders
// exactly one App.
func TestRenderSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := benchRender(ctx, t.TempDir(), 20, 1, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.ReRendered, 1; got != want {
		t.Errorf("a one-App commit re-rendered %d Apps, want %d", got, want)
	}
	if got, want := res.ChangedFiles, 2; got != want {
		t.Errorf("changed files = %d, want %d", got, want)
	}
	if res.RenderColdAlloc == 0 || res.RenderCold <= 0 {
		t.Errorf("cold render not measured: %+v", res)
	}
	dir := t.TempDir()
	if err := record(dir, "render", res, renderTable(res)); err != nil {
		t.Fatal(err)
	}
	if err := record(dir, "render", res, renderTable(res)); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(md), "## render"); n != 1 {
		t.Errorf("RESULTS.md has %d render sections after two runs, want 1:\n%s", n, md)
	}
}
