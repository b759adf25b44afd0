//go:build !unix

package git

import (
	"os/exec"
	"time"
)

// killGroupOnCancel kills only git itself where process groups are not
// available; WaitDelay stops a helper holding its pipes from blocking Wait.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.WaitDelay = 5 * time.Second
}
