package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// Binary upgrades (SIGUSR2): the running portico starts its executable,
// as installed now, with its listening sockets; the new process serves,
// the old one stops accepting, finishes its requests and keeps its tunnels
// until they end. Under a client loop that keeps connections alive and one
// that opens a new connection per request, nothing is refused or fails.

func upgradeConf(admin, web, tcp, raw string, ns []*standin.Node, echo string) string {
	return upgradeBase(admin, web, tcp, ns) + fmt.Sprintf(`
[[listener]]
name = "raw"
bind = %q
mode = "tcp"
pool = "raw"
[pool.raw]
servers = [%q]
health = { enabled = false }
`, raw, echo)
}

func upgradeBase(admin, web, tcp string, ns []*standin.Node) string {
	return fmt.Sprintf(`
shutdown_grace = "30s"
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, web, tcp, serverList(ns))
}

// TestBinaryUpgradeUnderTraffic: SIGUSR2 with a new binary installed at
// the executable's path, under a keep-alive loop, a new-connection loop
// and an HTTP/2 loop (https listener), with a websocket and a tcp tunnel
// open: no request is refused or
// fails, the new process takes over (/status, systemd's MAINPID), the
// tunnels keep working on the old process, which exits when they end.
func TestBinaryUpgradeUnderTraffic(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	echo := namedEcho(t, "r1")
	admin, web, tcp, raw, tls := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	https := fmt.Sprintf(`
[[listener]]
name = "tls"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
`, tls)
	u := startUpgradable(t, dir, upgradeConf(admin, web, tcp, raw, ns, echo)+https)
	_, next := u.notify.wait(t, 0, "READY=1")
	oldPID := u.cmd.Process.Pid
	if got := statusPID(t, admin); got != oldPID {
		t.Fatalf("/status pid %d, want %d", got, oldPID)
	}

	ws, wsEcho := openWebsocket(t, web)
	tunEcho := openTunnel(t, raw, "r1")
	keep := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: web, Workers: 2, MaxDuration: 90 * time.Second})
	fresh := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: tcp, Workers: 2, MaxDuration: 90 * time.Second})
	h2 := startTraffic(t, trafficSpec{Kind: trafficH2, Addr: tls, CA: ca, Workers: 2, MaxDuration: 90 * time.Second})
	keep.waitSince(0, 20, 20*time.Second)
	fresh.waitSince(0, 20, 20*time.Second)
	h2.waitSince(0, 20, 20*time.Second)

	// A reload first: systemd hears of its start and of its end. The
	// fingerprint covers the configuration's data, not its text, so the
	// reload sets a key to its default value rather than add a comment.
	u.reload("shutdown_delay = \"0s\"\n"+upgradeConf(admin, web, tcp, raw, ns, echo)+https, `"generation":2`)
	_, next = u.notify.wait(t, next, "RELOADING=1", "MONOTONIC_USEC=")
	_, next = u.notify.wait(t, next, "READY=1")

	// The new configuration drops the raw listener, whose tunnel stays
	// with the old process, and adds one, which the new process binds.
	extra := freeAddr(t)
	conf := upgradeBase(admin, web, tcp, ns) + https + fmt.Sprintf(`
[[listener]]
name = "extra"
bind = %q
mode = "http"
pool = "nodes"
`, extra)
	newPID := u.upgrade(conf, admin, next, 4)

	// Traffic goes on through the new process alone.
	mk, mf, mh := keep.mark(), fresh.mark(), h2.mark()
	keep.waitSince(mk, 150, 30*time.Second)
	fresh.waitSince(mf, 150, 30*time.Second)
	h2.waitSince(mh, 150, 30*time.Second)

	// The tunnels live on in the old process, which waits for them.
	if err := wsEcho("after the upgrade"); err != nil {
		t.Fatalf("websocket after the upgrade: %v", err)
	}
	if err := tunEcho("after the upgrade"); err != nil {
		t.Fatalf("tcp tunnel after the upgrade: %v", err)
	}
	select {
	case <-u.exited:
		t.Fatal("the old process exited while its tunnels were open")
	default:
	}
	ks, fs, hs := keep.stop(), fresh.stop(), h2.stop()
	t.Logf("keep-alive traffic: %v", ks)
	t.Logf("new-connection traffic: %v", fs)
	t.Logf("HTTP/2 traffic: %v", hs)
	ks.requireNoFailures(t, "keep-alive traffic across the upgrade")
	fs.requireNoFailures(t, "new-connection traffic across the upgrade")
	hs.requireNoFailures(t, "HTTP/2 traffic across the upgrade")
	if code, _, _ := get(t, client(extra, nil), "http://login.example.com/login"); code != 200 {
		t.Fatalf("the listener only the new configuration has: status %d", code)
	}

	ws.Close()
	tunEcho("") // closes the tunnel
	u.requireOldExits()
	if code, _, _ := get(t, client(web, nil), "http://login.example.com/login"); code != 200 {
		t.Fatalf("after the old process exited: status %d", code)
	}
	if got := statusPID(t, admin); got != newPID {
		t.Fatalf("/status pid %d, want the new process %d", got, newPID)
	}
	// No process holds the dropped listener's socket any more.
	if c, err := net.Dial("tcp", raw); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("the dropped listener after the old process exited: %v, want connection refused", err)
	}
}

// upgrade writes conf, installs the binary anew and sends SIGUSR2; it
// checks the hand-over (the new process took `sockets` sockets, /status,
// both processes' notifications from index next on, the executable the
// new process runs) and returns the new process's pid.
func (u *upgradeProc) upgrade(conf, admin string, next, sockets int) int {
	t := u.t
	t.Helper()
	oldPID := u.cmd.Process.Pid
	if err := os.WriteFile(u.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	installBinary(t, u.exe, binary) // what the successor must start from
	u.signal(syscall.SIGUSR2)
	// Two processes write these lines: their order is not fixed.
	if line := u.logged("took_over_from"); !strings.Contains(line, fmt.Sprintf(`"inherited_sockets":%d`, sockets)) {
		t.Errorf("the new process should take %d sockets: %s", sockets, line)
	}
	newPID := u.successor(admin, oldPID)
	u.logged("upgrade: the new process serves")
	u.logged("stepping down for the new process")

	msg, _ := u.notify.wait(t, next, "RELOADING=1", "MONOTONIC_USEC=")
	t.Logf("old process: %q", msg)
	msg, _ = u.notify.wait(t, next, "MAINPID="+strconv.Itoa(newPID), "READY=1")
	t.Logf("new process: %q", msg)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", newPID)); err != nil || exe != u.exe {
		t.Errorf("the new process runs %q (%v), want the installed %s", exe, err, u.exe)
	}
	return newPID
}

// requireOldExits waits for the old process to exit 0 after it stopped.
func (u *upgradeProc) requireOldExits() {
	t := u.t
	t.Helper()
	select {
	case <-u.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit within 20s of its last tunnel closing")
	}
	if u.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("the old process exited with %v", u.cmd.ProcessState)
	}
	u.logged(`"stopped"`)
}

// TestFailedUpgradeKeepsServing: a new binary that exits at once, one that
// is still starting when a second SIGUSR2 comes, and a good binary with a
// broken configuration: each upgrade fails with a log line, and the old
// process serves on with no failed request.
func TestFailedUpgradeKeepsServing(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	echo := namedEcho(t, "r1")
	admin, web, tcp, raw := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	conf := upgradeConf(admin, web, tcp, raw, ns, echo)
	u := startUpgradable(t, t.TempDir(), conf)
	_, next := u.notify.wait(t, 0, "READY=1")
	oldPID := u.cmd.Process.Pid
	keep := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: web, Workers: 2, MaxDuration: 90 * time.Second})
	fresh := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: tcp, Workers: 2, MaxDuration: 90 * time.Second})

	script := func(body string) {
		t.Helper()
		tmp := u.exe + ".new"
		if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, u.exe); err != nil {
			t.Fatal(err)
		}
	}
	script("exit 1")
	u.signal(syscall.SIGUSR2)
	line := u.waitLog("upgrade failed; this process keeps serving", 20*time.Second)
	if !strings.Contains(line, "exit status 1") {
		t.Errorf("the failure line does not give the exit status: %s", line)
	}
	_, next = u.notify.wait(t, next, "RELOADING=1")
	_, next = u.notify.wait(t, next, "READY=1")

	// A second SIGUSR2 while the first new process is still starting.
	script("exec sleep 2")
	u.signal(syscall.SIGUSR2)
	u.waitLog("upgrade: new process started", 20*time.Second)
	u.signal(syscall.SIGUSR2)
	u.waitLog("upgrade refused: one is in progress", 20*time.Second)
	u.waitLog("upgrade failed; this process keeps serving", 20*time.Second)

	installBinary(t, u.exe, binary)
	if err := os.WriteFile(u.conf, []byte(conf+"\n[pool.broken]\nservers = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.signal(syscall.SIGUSR2)
	u.waitLog("upgrade failed; this process keeps serving", 20*time.Second)
	if !strings.Contains(u.Logs(), "pool.broken.servers: want an array") {
		t.Errorf("the new process did not say what is wrong with the configuration")
	}

	m := keep.mark()
	keep.waitSince(m, 40, 20*time.Second)
	fresh.waitSince(fresh.mark(), 40, 20*time.Second)
	keep.stop().requireNoFailures(t, "keep-alive traffic across failed upgrades")
	fresh.stop().requireNoFailures(t, "new-connection traffic across failed upgrades")
	if got := statusPID(t, admin); got != oldPID {
		t.Fatalf("/status pid %d after failed upgrades, want the old process %d", got, oldPID)
	}
	select {
	case <-u.exited:
		t.Fatal("the old process exited after a failed upgrade")
	default:
	}
	u.notify.wait(t, next, "READY=1")
}

// TestStopDuringUpgradeKillsNewProcess: SIGTERM while the new process is
// still starting kills it; the old one shuts down as usual under traffic
// (its requests answered or refused at the door) and nothing is left.
func TestStopDuringUpgradeKillsNewProcess(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	echo := namedEcho(t, "r1")
	admin, web, tcp, raw := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	u := startUpgradable(t, t.TempDir(), upgradeConf(admin, web, tcp, raw, ns, echo))
	keep := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: web, Workers: 2, MaxDuration: 60 * time.Second,
		ExpectFailures: true})
	keep.waitSince(0, 20, 20*time.Second)

	tmp := u.exe + ".new"
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, u.exe); err != nil {
		t.Fatal(err)
	}
	u.signal(syscall.SIGUSR2)
	line := u.waitLog("upgrade: new process started", 20*time.Second)
	_, rest, _ := strings.Cut(line, `"new_pid":`)
	pid, err := strconv.Atoi(rest[:max(strings.IndexAny(rest, ",}"), 0)])
	if err != nil || !alive(pid) {
		t.Fatalf("new process in %q: %v, alive %v", line, err, err == nil && alive(pid))
	}
	u.signal(syscall.SIGTERM)
	u.waitLog("upgrade abandoned: this process is stopping", 20*time.Second)
	select {
	case <-u.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit within 20s of SIGTERM")
	}
	if alive(pid) {
		t.Fatalf("the new process %d outlived the old one", pid)
	}
	keep.stop().requireOnlyRefused(t, "traffic across a shutdown during an upgrade")
}
