package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// treeWatch samples, every millisecond, the resident memory of a process and
// all its descendants (found through /proc/PID/task/TID/children). Unlike the maxrss that wait4 reports, /proc's VmHWM and VmRSS
// belong to the process's own address space after exec, so they do not
// include the pages of the Go parent that spawned it.
type treeWatch struct {
	root int
	stop chan struct{}
	done chan struct{}

	peakSum   int64 // bytes: highest sum of VmRSS over the tree
	peakPSS   int64 // bytes: highest sum of Pss (shared pages divided among their users)
	maxSingle int64 // bytes: highest VmHWM of any one process
}

func watchTree(root int) *treeWatch {
	w := &treeWatch{root: root, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *treeWatch) loop() {
	defer close(w.done)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		w.sample()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// Stop ends sampling and returns the peaks. A process's memory is seen until
// its last sample before it exits, so a peak in its final millisecond can be
// missed.
func (w *treeWatch) Stop() (peakSum, peakPSS, maxSingle int64) {
	close(w.stop)
	<-w.done
	return w.peakSum, w.peakPSS, w.maxSingle
}

func (w *treeWatch) sample() {
	var sum, pss int64
	queue := []int{w.root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, children(pid)...)
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		rss, hwm := kB(status, "VmRSS:"), kB(status, "VmHWM:")
		sum += rss
		w.maxSingle = max(w.maxSingle, hwm)
		if rollup, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup")); err == nil {
			pss += kB(rollup, "Pss:")
		}
	}
	w.peakSum = max(w.peakSum, sum)
	w.peakPSS = max(w.peakPSS, pss)
}

// children lists the child processes of every thread of pid.
func children(pid int) []int {
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "children"))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func kB(status []byte, key string) int64 {
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n * 1024
		}
	}
	return 0
}
