package render

import (
	"testing"

	"github.com/tend-gitops/tend/internal/testenv"
)

// TestMain lets integration tests (Helm lookup against the local control
// plane) start a cluster when $TEND_TEST_KUBECONFIG names none.
func TestMain(m *testing.M) { testenv.Main(m) }
