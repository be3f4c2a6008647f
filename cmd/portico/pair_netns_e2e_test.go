package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An active/passive pair: portico on lb1 and lb2, keepalived on each with
// the configuration shipped in examples/keepalived (rendered with the lab's
// addresses), the VIP on lb1. A client loop runs through the VIP from its
// own host; portico on lb1 is then killed (SIGKILL), or hung (SIGSTOP:
// keepalived still runs, /healthz times out). Either way the VIP must move
// to lb2 within the bound the README states, and every request sent after
// it moved must succeed.

// The lab's hosts (last octet of 10.99.0.X) and the VIP.
var pairHosts = map[string]int{"client": 10, "lb1": 1, "lb2": 2, "nodes": 20}

const pairVIP = "10.99.0.100"

// The example's check and VRRP timing, which the failover bound is made of.
const (
	pairCheckInterval = time.Second // vrrp_script interval
	pairCheckMaxTime  = time.Second // curl --max-time
	pairCheckFall     = 2           // vrrp_script fall
	pairAdvertInt     = time.Second // advert_int
	pairClientTimeout = time.Second // the client loop's per-request timeout
)

// pairFailoverBound is the README's bound on the longest time a client goes
// without an answer when the active portico dies or hangs: the check
// notices within fall+1 rounds (one may have just passed; each round takes
// at most the interval or curl's max-time, whichever is longer), the peer
// takes the VIP within 3 advertisement intervals (the master-down timer;
// at once when told with a priority-0 advert), and a request caught in
// between fails at the client's timeout.
const pairFailoverBound = (pairCheckFall+1)*max(pairCheckInterval, pairCheckMaxTime) +
	3*pairAdvertInt + pairClientTimeout

// pairPorticoConf is the configuration both porticos run: the same file on
// both hosts, so the same fingerprint. Its ports are fixed: each host is a
// namespace of this test's own, where nothing else binds.
func pairPorticoConf(servers string) string {
	return fmt.Sprintf(`
[admin]
bind = "127.0.0.1:9090"
[[listener]]
name = "http"
bind = "0.0.0.0:8080"
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
connect_timeout = "1s"
response_timeout = "3s"
health = { interval = "1s", timeout = "500ms", rise = 1, fall = 2 }
`, servers)
}

// pairLab is a running pair.
type pairLab struct {
	lab     *netLab
	portico map[string]*proc // by host
}

// startNodesIn starts stand-in nodes a and b in the lab's nodes host and
// returns them as a TOML server list.
func startNodesIn(t *testing.T, lab *netLab) string {
	t.Helper()
	var q []string
	for _, name := range []string{"a", "b"} {
		addr, _ := nodeProcessAt(t, lab.prefix("nodes"), name, lab.addr("nodes")+":0")
		q = append(q, strconv.Quote(addr))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// startPorticoIn starts portico on conf in host and checks that the PID the
// test holds is portico's own, so a signal reaches it.
func startPorticoIn(t *testing.T, lab *netLab, host, conf string) *proc {
	t.Helper()
	p := startPorticoCmd(t, t.TempDir(), conf, lab.prefix(host))
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.cmd.Process.Pid))
	if err != nil || exe != binary {
		t.Fatalf("PID %d in %s runs %q (%v), not portico: signals would miss it", p.cmd.Process.Pid, host, exe, err)
	}
	return p
}

func startPair(t *testing.T) *pairLab {
	t.Helper()
	requirePeer(t, "curl") // the check keepalived runs
	lab := newNetLab(t, pairHosts)
	conf := pairPorticoConf(startNodesIn(t, lab))
	pl := &pairLab{lab: lab, portico: map[string]*proc{}}
	for _, host := range []string{"lb1", "lb2"} {
		pl.portico[host] = startPorticoIn(t, lab, host, conf)
	}
	for host, peer := range map[string]string{"lb1": "lb2", "lb2": "lb1"} {
		startKeepalived(t, lab, host, renderKeepalived(t, host, lab.addr(host), lab.addr(peer)))
	}
	eventually(t, 20*time.Second, "the VIP on lb1", func() bool { return lab.hasAddr("lb1", pairVIP) })
	if lab.hasAddr("lb2", pairVIP) {
		t.Fatal("the VIP is on both hosts")
	}
	return pl
}

// The example's addresses, by host.
var keepalivedExampleAddr = map[string]string{"lb1": "10.0.0.2", "lb2": "10.0.0.3"}

// renderKeepalived reads host's example (examples/keepalived) and puts the
// lab's addresses in place of the example's. Each substitution must find
// its text: an example changed out of this shape fails here, not silently.
func renderKeepalived(t *testing.T, host, self, peer string) string {
	t.Helper()
	file := "examples/keepalived/keepalived-" + host + ".conf"
	b, err := os.ReadFile("../../" + file)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	exSelf, exPeer := keepalivedExampleAddr[host], keepalivedExampleAddr["lb1"]
	if host == "lb1" {
		exPeer = keepalivedExampleAddr["lb2"]
	}
	for _, s := range [][2]string{
		{"unicast_src_ip " + exSelf + "\n", "unicast_src_ip " + self + "\n"},
		{"unicast_peer {\n        " + exPeer + "\n", "unicast_peer {\n        " + peer + "\n"},
		{"10.0.0.100/24 dev eth0", pairVIP + "/24 dev eth0"},
	} {
		if strings.Count(conf, s[0]) != 1 {
			t.Fatalf("%s: want %q exactly once", file, s[0])
		}
		conf = strings.Replace(conf, s[0], s[1], 1)
	}
	for _, want := range []string{"interval 1 ", "fall 2 ", "advert_int 1\n", "--max-time 1 ", "127.0.0.1:9090/healthz"} {
		if !strings.Contains(conf, want) {
			t.Fatalf("%s has no %q: the failover bound here assumes it", file, want)
		}
	}
	return conf
}

// startKeepalived runs keepalived (VRRP only) in the foreground in host.
// It forks a VRRP child; at cleanup the parent gets SIGTERM (it stops the
// child and releases the VIP), and if it hangs, both get SIGKILL by PID.
func startKeepalived(t *testing.T, lab *netLab, host, conf string) {
	t.Helper()
	bin := requirePeer(t, "keepalived")
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "keepalived.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	vrrpPid := filepath.Join(dir, "vrrp.pid")
	argv := append(lab.prefix(host), bin, "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", vrrpPid, "-c", filepath.Join(dir, "checkers.pid"))
	cmd := exec.Command(argv[0], argv[1:]...)
	// A file, not a pipe: the child holds the output too, and Wait must not
	// wait for it.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var child int
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("keepalived in %s did not stop within 10s of SIGTERM: killed", host)
			cmd.Process.Kill()
			<-done
		}
		if child > 0 && isKeepalived(child) {
			syscall.Kill(child, syscall.SIGKILL)
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("keepalived in %s:\n%s", host, out)
		}
	})
	eventually(t, 10*time.Second, "keepalived's VRRP child in "+host, func() bool {
		select {
		case <-done:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("keepalived in %s exited at start:\n%s", host, out)
		default:
		}
		b, err := os.ReadFile(vrrpPid)
		if err != nil {
			return false
		}
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return child > 0
	})
}

// isKeepalived says whether pid is (still) a keepalived process.
func isKeepalived(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == "keepalived"
}

// netnsGet does a GET from inside host and returns the status and body.
func netnsGet(t testing.TB, lab *netLab, host, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: lab.dial(host, 2*time.Second)}}
	defer c.CloseIdleConnections()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, host, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, host, err)
	}
	return res.StatusCode, string(b)
}

// requireSameFingerprint fails unless every host's portico (admin on
// 127.0.0.1:9090) shows one configuration fingerprint in /status and
// /metrics.
func requireSameFingerprint(t *testing.T, lab *netLab, hosts ...string) string {
	t.Helper()
	var first string
	for _, host := range hosts {
		_, body := netnsGet(t, lab, host, "http://127.0.0.1:9090/status")
		i := strings.Index(body, `"fingerprint": "`)
		if i < 0 {
			t.Fatalf("%s: /status has no fingerprint:\n%s", host, body)
		}
		fp, _, _ := strings.Cut(body[i+len(`"fingerprint": "`):], `"`)
		_, metrics := netnsGet(t, lab, host, "http://127.0.0.1:9090/metrics")
		if want := fmt.Sprintf("portico_config_info{fingerprint=%q} 1\n", fp); !strings.Contains(metrics, want) {
			t.Fatalf("%s: /metrics has no %q", host, strings.TrimSpace(want))
		}
		if first == "" {
			first = fp
		} else if fp != first {
			t.Fatalf("%s runs configuration %s, %s runs %s: the same file should give one fingerprint", host, fp, hosts[0], first)
		}
	}
	return first
}

func TestKeepalivedPairMovesVIPWhenPorticoFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"killed", syscall.SIGKILL},
		{"hung", syscall.SIGSTOP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pl := startPair(t)
			lab := pl.lab
			fp := requireSameFingerprint(t, lab, "lb1", "lb2")
			t.Logf("both porticos run configuration %s", fp)

			tr := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: pairVIP + ":8080",
				Dial: lab.dial("client", pairClientTimeout), Timeout: pairClientTimeout,
				Workers: 4, Pace: 20 * time.Millisecond, MaxDuration: 90 * time.Second, ExpectFailures: true})
			tr.waitSince(0, 100, 30*time.Second).requireNoFailures(t, "through the VIP on lb1")

			active := pl.portico["lb1"]
			if tc.sig == syscall.SIGSTOP {
				// Registered after portico's own cleanup, so it runs first:
				// a stopped process would not act on SIGTERM.
				t.Cleanup(func() { active.cmd.Process.Signal(syscall.SIGCONT) })
			}
			before := tr.mark()
			failedAt := time.Now()
			active.signal(tc.sig)
			eventually(t, 30*time.Second, "the VIP on lb2 only", func() bool {
				return lab.hasAddr("lb2", pairVIP) && !lab.hasAddr("lb1", pairVIP)
			})
			moved := time.Since(failedAt)
			after := tr.mark()
			st := tr.waitSince(after, 100, 30*time.Second)
			if st.Failures != 0 {
				t.Fatalf("requests sent after the VIP moved to lb2 failed: %v", st)
			}
			// The longest gap over the whole loop, which ran with answers
			// from lb1 before the failure.
			all := tr.stop()
			outage := tr.window(before, after)
			t.Logf("portico on lb1 %s: the VIP moved after %v; %d of %d requests failed, longest gap without an answer %v (bound %v)",
				tc.name, moved.Round(time.Millisecond), all.Failures, all.Requests, all.LongestGap.Round(time.Millisecond), pairFailoverBound)
			if all.LongestGap > pairFailoverBound {
				t.Errorf("clients went %v without an answer, over the bound of %v: %v", all.LongestGap, pairFailoverBound, all)
			}
			if outage.Failures == 0 {
				t.Errorf("no request failed between the failure and the move: did the failure take effect? %v", outage)
			}
		})
	}
}
