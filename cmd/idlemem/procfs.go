package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// statusKiB reads one "Key:   N kB" field of a /proc/PID/status text.
func statusKiB(status []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status field %s: unexpected %q", key, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status field %s: %w", key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("status: no field %s", key)
}

// statPPid reads the parent PID from a /proc/PID/stat text. The command
// name (field 2) is in parentheses and may hold spaces and parentheses
// itself, so the fields are counted from the last ')'.
func statPPid(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name in %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("stat: too few fields in %q", stat)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("stat: parent pid: %w", err)
	}
	return ppid, nil
}

// tree returns pid and all its descendants (a HAProxy master and its
// workers), from /proc.
func tree(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("process tree: %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		if pp, err := statPPid(b); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		all = append(all, children[all[i]]...)
	}
	return all, nil
}

// usage is what a process tree holds.
type usage struct {
	rssKiB int64 // VmRSS summed over the processes
	fds    int   // open file descriptors, summed
	procs  int
}

// treeUsage sums VmRSS and open descriptors over pid and its descendants.
func treeUsage(pid int) (usage, error) {
	pids, err := tree(pid)
	if err != nil {
		return usage{}, err
	}
	var u usage
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return usage{}, fmt.Errorf("memory of %d: %w", p, err)
		}
		rss, err := statusKiB(b, "VmRSS")
		if err != nil {
			return usage{}, fmt.Errorf("memory of %d: %w", p, err)
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			return usage{}, fmt.Errorf("descriptors of %d: %w", p, err)
		}
		u.rssKiB += rss
		u.fds += len(fds)
		u.procs++
	}
	return u, nil
}

// settled reports whether the last three readings differ by no more than
// tol (KiB).
func settled(reads []int64, tol int64) bool {
	if len(reads) < 3 {
		return false
	}
	last := reads[len(reads)-3:]
	lo, hi := min(last[0], last[1], last[2]), max(last[0], last[1], last[2])
	return hi-lo <= tol
}

// settle reads every `every` until three readings in a row agree within
// tol, at most `limit` readings, and returns the last reading and
// whether it settled. A Go runtime returns freed memory to the kernel in
// the background, so RSS keeps moving for a while after a burst.
func settle(ctx context.Context, read func() (int64, error), every time.Duration, tol int64, limit int) (int64, bool, error) {
	var reads []int64
	t := time.NewTicker(every)
	defer t.Stop()
	for len(reads) < limit {
		v, err := read()
		if err != nil {
			return 0, false, err
		}
		reads = append(reads, v)
		if settled(reads, tol) {
			return v, true, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return v, false, ctx.Err()
		}
	}
	return reads[len(reads)-1], false, nil
}
