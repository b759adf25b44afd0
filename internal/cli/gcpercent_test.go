package cli

import (
	"runtime/debug"
	"testing"
)

func TestGCPercentDefaultAndOverrides(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	t.Setenv("GOGC", "")
	setGCPercent(DefaultGCPercent, false)
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("without GOGC: GC percent %d, want the default %d", got, DefaultGCPercent)
	}

	t.Setenv("GOGC", "200") // the runtime read GOGC at start; here it stays 100
	setGCPercent(DefaultGCPercent, false)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent changed to %d; the variable should win over the default", got)
	}

	setGCPercent(30, true)
	if got := debug.SetGCPercent(100); got != 30 {
		t.Errorf("--gc-percent 30 with GOGC set: GC percent %d, want 30", got)
	}
}
