package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// An HTTP/2 upload to a node that reads slower than the client sends must
// not grow portico's memory with the upload: portico holds the client to
// the node's pace with flow control and keeps at most a window of body
// unread. On loopback the kernel's large socket buffers would absorb much
// of what a proxy holds, so everything runs in a network namespace of the
// test's own whose TCP buffers are capped (net.ipv4.tcp_wmem and tcp_rmem
// "4096 16384 65536").
//
// Portico runs in the namespace as a child started from a thread switched
// into it (a forked process inherits the forking thread's namespace), so
// the harness's startPortico serves unchanged and its PID is portico's own,
// for /proc/PID/status. The node's listener and the client's socket are
// opened from that thread too; a socket stays in the namespace it was made
// in, whichever thread uses it later.
//
// The binary is built with -race, which inflates RSS, so the bound is on
// the growth over portico's RSS just before the upload, and generous: the
// unbounded buffer this guards against grew by about 3.6× the bytes
// uploaded (about 115 MiB here).
func TestH2UploadMemoryStaysBoundedInCappedNetns(t *testing.T) {
	t.Parallel()
	const (
		upload   = 32 << 20
		maxGrowK = 64 << 10 // KiB
	)
	ns := cappedNetns(t)
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")

	var (
		nodeLn  net.Listener
		p       *proc
		rawConn net.Conn
	)
	inNetns(t, ns, func() {
		var err error
		if nodeLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		// The namespace is this test's alone: a port free now stays free.
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		front := probe.Addr().String()
		probe.Close()
		node := startSlowReader(t, nodeLn, 8<<20)
		p = startPortico(t, dir, fmt.Sprintf(`
[[listener]]
name = "https"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[pool.nodes]
servers = [%q]
`, front, node))
		if rawConn, err = net.DialTimeout("tcp", front, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { rawConn.Close() })
	tc := tls.Client(rawConn, &tls.Config{RootCAs: ca.Pool(), ServerName: "login.example.com", NextProtos: []string{"h2"}})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Time{})
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	roundTrip := func(method, path string, body io.Reader, size int64) string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "https://login.example.com"+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		res, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s %s: status %d, %q, %v", method, path, res.StatusCode, b, err)
		}
		return strings.TrimSpace(string(b))
	}
	// A first exchange on the connection, so the baseline includes what
	// any HTTP/2 connection costs, not only the idle process.
	roundTrip("GET", "/login", nil, 0)

	pid := p.cmd.Process.Pid
	// Peak RSS back to the current RSS (Linux ≥ 4.0): the peak measured
	// is the upload's, not the start's. Without it the peak is sampled.
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	base := procMemKiB(t, pid, "VmRSS")
	peak := base
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if m, err := readProcMemKiB(pid, "VmRSS"); err == nil {
					peak = max(peak, m)
				}
			}
		}
	}()
	got := roundTrip("POST", "/upload", io.LimitReader(zeroReader{}, upload), upload)
	close(stop)
	<-sampled
	peak = max(peak, procMemKiB(t, pid, "VmHWM"))
	if got != strconv.Itoa(upload) {
		t.Fatalf("node read %s bytes of %d", got, upload)
	}
	t.Logf("portico RSS before the upload %d KiB, peak %d KiB, growth %d KiB for %d MiB uploaded",
		base, peak, peak-base, upload>>20)
	if peak-base > maxGrowK {
		t.Fatalf("portico's RSS grew by %d MiB during a %d MiB upload (bound %d MiB): the request body is not held to the node's pace",
			(peak-base)>>10, upload>>20, maxGrowK>>10)
	}
}

// zeroReader reads zero bytes forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// startSlowReader serves on ln: POST /upload reads the body at about rate
// bytes per second and answers the byte count; anything else gets 200
// (portico's health checks, the first request).
func startSlowReader(t *testing.T, ln net.Listener, rate int) string {
	t.Helper()
	const chunk = 32 << 10
	every := time.Second * chunk / time.Duration(rate)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upload" {
			io.WriteString(w, "ok\n")
			return
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		buf := make([]byte, chunk)
		n := 0
		for {
			k, err := io.ReadFull(r.Body, buf)
			n += k
			if err != nil {
				break
			}
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "%d\n", n)
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// cappedNetns creates a network namespace for the test (netns_test.go)
// with TCP buffers capped.
func cappedNetns(t *testing.T) string {
	t.Helper()
	ip := ipTool(t)
	ns := newNetns(t, ip, "upload", netnsSuffix())
	runIP(t, ip, "netns", "exec", ns, "sh", "-c",
		"echo '4096 16384 65536' >/proc/sys/net/ipv4/tcp_wmem && echo '4096 16384 65536' >/proc/sys/net/ipv4/tcp_rmem")
	return ns
}

// procMemKiB reads a Vm* field of /proc/PID/status in KiB.
func procMemKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	v, err := readProcMemKiB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readProcMemKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("portico's memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			fs := strings.Fields(v)
			if len(fs) == 0 {
				break
			}
			n, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", field, v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
