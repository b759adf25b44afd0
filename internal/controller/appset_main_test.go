package controller

import (
	"testing"

	"github.com/tend-gitops/tend/internal/testenv"
)

// TestMain lets testenv stop the control plane it started, if any. The
// package has exactly one TestMain; keep it here.
func TestMain(m *testing.M) { testenv.Main(m) }
