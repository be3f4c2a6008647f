package main

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestStatusKiB(t *testing.T) {
	t.Parallel()
	status := []byte("Name:\thaproxy\nVmPeak:\t  123456 kB\nVmRSS:\t   20480 kB\nThreads:\t1\n")
	if got, err := statusKiB(status, "VmRSS"); err != nil || got != 20480 {
		t.Errorf("VmRSS = %d, %v; want 20480", got, err)
	}
	if got, err := statusKiB(status, "VmPeak"); err != nil || got != 123456 {
		t.Errorf("VmPeak = %d, %v; want 123456", got, err)
	}
	if _, err := statusKiB(status, "VmHWM"); err == nil {
		t.Error("a missing field gave no error")
	}
	if _, err := statusKiB(status, "Threads"); err == nil {
		t.Error("a field without kB gave no error")
	}
}

func TestStatPPid(t *testing.T) {
	t.Parallel()
	for stat, want := range map[string]int{
		"4242 (haproxy) S 4241 4242 1 0 -1":       4241,
		"77 (a (weird) name) R 1 77 77 0 -1 4194": 1,
		"9 (two words) S 8 9 9 0":                 8,
	} {
		if got, err := statPPid([]byte(stat)); err != nil || got != want {
			t.Errorf("statPPid(%q) = %d, %v; want %d", stat, got, err, want)
		}
	}
	for _, bad := range []string{"", "12 noparen S 1", "12 (x)", "12 (x) S notanumber"} {
		if _, err := statPPid([]byte(bad)); err == nil {
			t.Errorf("statPPid(%q) gave no error", bad)
		}
	}
}

func TestTreeUsageOfSelf(t *testing.T) {
	t.Parallel()
	u, err := treeUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.rssKiB <= 0 || u.fds < 3 || u.procs < 1 {
		t.Errorf("usage of the test process = %+v; want RSS > 0, at least stdin/out/err and itself", u)
	}
}

func TestSettled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		reads []int64
		want  bool
	}{
		{[]int64{100, 100}, false},
		{[]int64{100, 100, 100}, true},
		{[]int64{50, 100, 103, 101}, true},
		{[]int64{100, 104, 100}, true},
		{[]int64{100, 105, 100}, false},
		{[]int64{100, 200, 300, 400}, false},
	}
	for _, c := range cases {
		if got := settled(c.reads, 4); got != c.want {
			t.Errorf("settled(%v, 4) = %v, want %v", c.reads, got, c.want)
		}
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	seq := []int64{10, 20, 30, 31, 31, 31, 99}
	i := 0
	read := func() (int64, error) { v := seq[i]; i++; return v, nil }
	got, ok, err := settle(context.Background(), read, time.Millisecond, 1, 10)
	if err != nil || !ok || got != 31 || i != 5 {
		t.Errorf("settle = %d, %v, %v after %d reads; want 31, settled, after 5", got, ok, err, i)
	}
	i = 0
	up := func() (int64, error) { i++; return int64(i * 100), nil }
	got, ok, err = settle(context.Background(), up, time.Millisecond, 1, 4)
	if err != nil || ok || got != 400 {
		t.Errorf("settle of a rising series = %d, %v, %v; want 400, not settled", got, ok, err)
	}
}
