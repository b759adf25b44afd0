package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a component started by this run of "up".
type process struct {
	name, bin string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) exitErr() error { <-p.done; return p.err }

// start launches a component in its own process group, detached from this
// process so it outlives "up", with output in <name>.log and its pid in
// <name>.pid.
func (c *Cluster) start(ctx context.Context, name, bin string, args ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	logf, err := os.OpenFile(c.path(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, bin: bin, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	rec := procRecord{Name: name, Pid: cmd.Process.Pid, Bin: bin}
	if err := os.WriteFile(c.path(name+".pid"), []byte(fmt.Sprintf("%d %s\n", rec.Pid, rec.Bin)), 0o644); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) proc(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// stopStarted stops what this run started, after a failed or interrupted up.
func (c *Cluster) stopStarted() {
	if len(c.procs) == 0 {
		return
	}
	c.logf("stopping the components started so far")
	_ = stopRecorded(c.Dir, c.Log)
}

// readPid reads <name>.pid: "<pid> <binary path>".
func readPid(dir, name string) (procRecord, bool) {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return procRecord{}, false
	}
	f := strings.SplitN(strings.TrimSpace(string(b)), " ", 2)
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return procRecord{}, false
	}
	rec := procRecord{Name: name, Pid: pid}
	if len(f) == 2 {
		rec.Bin = f[1]
	}
	return rec, true
}

// alive reports whether rec's pid runs rec's binary (guarding against pid
// reuse after a crash or reboot). Zombies count as dead.
func alive(rec procRecord) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rec.Pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", rec.Pid))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	return rec.Bin == "" || argv0 == rec.Bin
}

// stopRecorded stops every component with a pid file in dir, newest first:
// SIGTERM to its process group, SIGKILL after a grace period. It returns an
// error only if a process survives SIGKILL.
func stopRecorded(dir string, log io.Writer) error {
	var recs []procRecord
	for i := len(componentOrder) - 1; i >= 0; i-- {
		if rec, ok := readPid(dir, componentOrder[i]); ok && alive(rec) {
			recs = append(recs, rec)
		}
	}
	for _, rec := range recs {
		_ = syscall.Kill(-rec.Pid, syscall.SIGTERM)
		_ = syscall.Kill(rec.Pid, syscall.SIGTERM)
		waitGone(rec, 10*time.Second)
	}
	var survivors []string
	for _, rec := range recs {
		if alive(rec) {
			fmt.Fprintf(log, "%s (pid %d) ignored SIGTERM; killing it\n", rec.Name, rec.Pid)
			_ = syscall.Kill(-rec.Pid, syscall.SIGKILL)
			_ = syscall.Kill(rec.Pid, syscall.SIGKILL)
			if !waitGone(rec, 5*time.Second) {
				survivors = append(survivors, fmt.Sprintf("%s (pid %d)", rec.Name, rec.Pid))
			}
		}
	}
	for _, name := range componentOrder {
		_ = os.Remove(filepath.Join(dir, name+".pid"))
	}
	if len(survivors) > 0 {
		return fmt.Errorf("could not stop %s", strings.Join(survivors, ", "))
	}
	return nil
}

func waitGone(rec procRecord, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(rec) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return !alive(rec)
}
