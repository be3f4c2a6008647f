package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// porticoBin is a portico binary built once for the tests.
var porticoBin string

func TestMain(m *testing.M) {
	// The test binary is re-executed as the stand-in node (startNode).
	if os.Getenv(nodeEnv) == "1" {
		if err := runNode(); err != nil {
			fmt.Fprintln(os.Stderr, "idlemem node:", err)
			os.Exit(1)
		}
		return
	}
	dir, err := os.MkdirTemp("", "idlemem-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	porticoBin = filepath.Join(dir, "portico")
	build := exec.Command("go", "build", "-o", porticoBin, "../portico")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building portico:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// haproxyBin finds HAProxy; under CI (PORTICO_REQUIRE_PEERS=1) a missing
// one fails the test.
func haproxyBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("PORTICO_REQUIRE_PEERS") != "" {
		t.Fatal("test peer haproxy is not installed")
	}
	t.Skip("test peer haproxy is not installed (apt-get install it; CI requires it)")
	return ""
}

// TestIdleConnectionsThroughPeers runs the whole measurement at a small
// N for every kind through both proxies: every connection opens, the
// proxy holds a descriptor for each while they idle, and every one still
// answers afterwards (recheck).
func TestIdleConnectionsThroughPeers(t *testing.T) {
	t.Parallel()
	const n = 40
	for _, peer := range []string{"portico", "haproxy"} {
		for _, kind := range []string{"ws", "http1", "h2"} {
			t.Run(peer+"/"+kind, func(t *testing.T) {
				t.Parallel()
				bin := porticoBin
				if peer == "haproxy" {
					bin = haproxyBin(t)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				o := options{peer: peer, bin: bin, kind: kind, mode: "http", n: n, sources: 2, parallel: 8}
				r, err := run(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				if r.open != n {
					t.Errorf("%d of %d connections open", r.open, n)
				}
				if got := r.after.fds - r.before.fds; got < n {
					t.Errorf("the proxy's descriptors grew by %d with %d idle connections open; want at least %d", got, n, n)
				}
				if r.before.rssKiB <= 0 || r.after.procs < 1 {
					t.Errorf("usage before %+v, after %+v: no memory or no process read", r.before, r.after)
				}
			})
		}
	}
}

func TestValidateAndFDBudget(t *testing.T) {
	t.Parallel()
	bad := []options{
		{peer: "nginx", kind: "ws", mode: "http", n: 1, sources: 1, parallel: 1},
		{peer: "portico", kind: "h3", mode: "http", n: 1, sources: 1, parallel: 1},
		{peer: "haproxy", kind: "ws", mode: "tcp", n: 1, sources: 1, parallel: 1},
		{peer: "portico", kind: "h2", mode: "tcp", n: 1, sources: 1, parallel: 1},
		{peer: "portico", kind: "ws", mode: "http", n: 0, sources: 1, parallel: 1},
		{peer: "portico", kind: "ws", mode: "http", n: 1, sources: 251, parallel: 1},
	}
	for _, o := range bad {
		if err := o.validate(); err == nil {
			t.Errorf("validate(%+v) accepted it", o)
		}
	}
	good := options{peer: "haproxy", kind: "http1", mode: "http", n: 1, sources: 8, parallel: 1}
	if err := good.validate(); err != nil || good.bin != "haproxy" {
		t.Errorf("validate(%+v) = %v, bin %q; want accepted, bin haproxy", good, err, good.bin)
	}
	if err := checkFDs(20000, "h2", 10000); err != nil {
		t.Errorf("10,000 h2 connections under 20,000 descriptors: %v", err)
	}
	if err := checkFDs(20000, "ws", 9000); err != nil {
		t.Errorf("9,000 tunnels under 20,000 descriptors: %v", err)
	}
	if err := checkFDs(20000, "ws", 10000); err == nil {
		t.Error("10,000 tunnels (20,000 proxy descriptors) under 20,000 accepted")
	}
}
