package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Network namespaces for end-to-end tests that need more than loopback: a
// pair of hosts sharing a virtual IP, a balancer in front of a fleet, TCP
// buffers capped. Every namespace, and the bridge joining them, belongs to
// the test that made it: names carry a suffix unique to the test process
// and the test (parallel tests and leftovers of a killed run never
// collide), and t.Cleanup deletes them. Nothing is added to the machine's
// own namespace: the bridge lives in a namespace of its own, so traffic
// between the test's hosts never leaves them.

// netnsSeq numbers the namespace sets made by this test process.
var netnsSeq atomic.Uint32

// netnsUnavailable skips the test, or fails it under CI
// (PORTICO_REQUIRE_PEERS=1), where namespaces must be available.
func netnsUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("PORTICO_REQUIRE_PEERS") != "" {
		t.Fatalf("network namespaces unavailable: "+format, args...)
	}
	t.Skipf("network namespaces unavailable (run as root with iproute2; CI requires it): "+format, args...)
}

// ipTool returns the path of iproute2's ip, once it is known that the test
// can create namespaces with it (root).
func ipTool(t testing.TB) string {
	t.Helper()
	ip, err := exec.LookPath("ip")
	if err != nil {
		for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
			if fileExists(p) {
				ip, err = p, nil
				break
			}
		}
	}
	if err != nil {
		netnsUnavailable(t, "no ip command")
	}
	if os.Geteuid() != 0 {
		netnsUnavailable(t, "not root")
	}
	return ip
}

// runIP runs ip with args and fails the test on error.
func runIP(t testing.TB, ip string, args ...string) {
	t.Helper()
	if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a namespace named portico-ROLE-SUFFIX with loopback up,
// deleted at cleanup (after everything started in it was stopped: cleanups
// registered later run first).
func newNetns(t testing.TB, ip, role, suffix string) string {
	t.Helper()
	ns := fmt.Sprintf("portico-%s-%s", role, suffix)
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		netnsUnavailable(t, "ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	runIP(t, ip, "-n", ns, "link", "set", "lo", "up")
	return ns
}

// netnsSuffix is unique to this test process and call.
func netnsSuffix() string { return fmt.Sprintf("%d-%d", os.Getpid(), netnsSeq.Add(1)) }

// withNetns runs fn on the calling goroutine, locked to a thread that is
// switched into the named namespace for the duration. Sockets opened and
// processes started by fn belong to the namespace; a socket stays in the
// namespace it was made in, whichever thread uses it later. If the thread
// cannot be switched back it stays locked, and the runtime discards it
// when the goroutine ends.
func withNetns(ns string, fn func()) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own network namespace: %w", err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns back from %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return nil
}

// inNetns is withNetns for the test's goroutine: an error fails the test.
func inNetns(t testing.TB, ns string, fn func()) {
	t.Helper()
	if err := withNetns(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// netnsDialer returns a DialContext that opens its connections from inside
// namespace ns, whatever thread calls it.
func netnsDialer(ns string, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var (
			c   net.Conn
			err error
		)
		d := net.Dialer{Timeout: timeout}
		if serr := withNetns(ns, func() { c, err = d.DialContext(ctx, network, addr) }); serr != nil {
			return nil, serr
		}
		return c, err
	}
}

// netLab is a set of namespaces ("hosts") on one bridge, each with an
// address in labNet. The bridge sits in a namespace of its own.
type netLab struct {
	t     testing.TB
	ip    string
	hosts map[string]string // host name → namespace
	addrs map[string]string // host name → address
}

// labNet is the lab's subnet. Every lab is isolated in namespaces of its
// own, so parallel labs use the same addresses without meeting.
const labNet = "10.99.0.%d"

// newNetLab creates the hosts named in hosts (name → last octet of the
// address), each with an interface eth0 on a shared bridge.
func newNetLab(t testing.TB, hosts map[string]int) *netLab {
	t.Helper()
	ip := ipTool(t)
	suffix := netnsSuffix()
	lab := &netLab{t: t, ip: ip, hosts: map[string]string{}, addrs: map[string]string{}}
	sw := newNetns(t, ip, "sw", suffix)
	runIP(t, ip, "-n", sw, "link", "add", "br0", "type", "bridge")
	runIP(t, ip, "-n", sw, "link", "set", "br0", "up")
	for name, octet := range hosts {
		ns := newNetns(t, ip, name, suffix)
		addr := fmt.Sprintf(labNet, octet)
		port := "v-" + name
		runIP(t, ip, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		runIP(t, ip, "-n", sw, "link", "set", port, "master", "br0", "up")
		runIP(t, ip, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		runIP(t, ip, "-n", ns, "link", "set", "eth0", "up")
		lab.hosts[name], lab.addrs[name] = ns, addr
	}
	return lab
}

// ns is the namespace of host.
func (l *netLab) ns(host string) string {
	ns, ok := l.hosts[host]
	if !ok {
		l.t.Fatalf("no host %q in the lab", host)
	}
	return ns
}

// addr is host's address on the bridge.
func (l *netLab) addr(host string) string { l.ns(host); return l.addrs[host] }

// prefix is the command prefix that runs a program in host's namespace.
// iproute2 executes the program in its own place, so the process started
// has the program's PID, to be signalled directly.
func (l *netLab) prefix(host string) []string { return []string{l.ip, "netns", "exec", l.ns(host)} }

// dial returns a DialContext that connects from inside host.
func (l *netLab) dial(host string, timeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	return netnsDialer(l.ns(host), timeout)
}

// hasAddr reports whether host's eth0 holds addr now.
func (l *netLab) hasAddr(host, addr string) bool {
	l.t.Helper()
	out, err := exec.Command(l.ip, "-n", l.ns(host), "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip addr show in %s: %v: %s", host, err, out)
	}
	return strings.Contains(string(out), " "+addr+"/")
}
