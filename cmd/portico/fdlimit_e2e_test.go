package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// line returns the first line logged so far that contains s, or "".
func (p *proc) line(s string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// lineCount is the number of lines portico has logged so far.
func (p *proc) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// connStatus is the connections part of /status.
type connStatus struct {
	Connections struct {
		Admitted  int    `json:"admitted"`
		Max       int    `json:"max_conns"`
		Source    string `json:"max_conns_source"`
		OpenFiles uint64 `json:"open_files_limit"`
	} `json:"connections"`
}

// fdClients is how many clients connect at once: far more than the
// descriptors portico may open (fdLimit).
const (
	fdLimit         = 256
	fdClients       = 1000
	fdRequests      = 5                // keep-alive requests per client, then it closes
	fdClientTimeout = 60 * time.Second // each client's whole budget: queueing included
)

// TestOpenFilesLimitCapsConnections: portico under an open-files limit of
// 256 and 1000 concurrent clients derives its connection cap from the
// limit, leaves the clients over the cap in the accept queue, and serves
// every one of them in turn: no node is blamed for portico's own lack of
// descriptors, and the log stays a few lines long.
func TestOpenFilesLimitCapsConnections(t *testing.T) {
	t.Parallel()
	prlimit := requirePeer(t, "prlimit")
	ns := nodes(t, "a", "b", "c")
	dir := t.TempDir()
	listen, admin := freeAddr(t), freeAddr(t)
	p := startPorticoCmd(t, dir, fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "500ms" }
`, admin, listen, serverList(ns)), []string{prlimit, fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit)})

	// The start line says the cap and where it comes from.
	var start struct {
		Max       int    `json:"max_conns"`
		Source    string `json:"max_conns_source"`
		OpenFiles uint64 `json:"open_files_limit"`
	}
	if line := p.line("portico started"); json.Unmarshal([]byte(line), &start) != nil {
		t.Fatalf("start line %q is not JSON", line)
	}
	if start.Source != "open-files limit" || start.OpenFiles != fdLimit || start.Max < 1 || 2*start.Max >= fdLimit {
		t.Fatalf("start line: cap %d from %q, limit %d; want a cap under %d from the open-files limit %d",
			start.Max, start.Source, start.OpenFiles, fdLimit/2, fdLimit)
	}
	waitHealthyChecks(t, admin)
	linesBefore := p.lineCount()

	// Sample /status while the clients run: admitted never above the cap.
	stopSampling := make(chan struct{})
	sampled := make(chan [2]int, 1) // highest admitted seen, samples
	go func() {
		peak, n := 0, 0
		defer func() { sampled <- [2]int{peak, n} }()
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			res, err := c.Get("http://" + admin + "/status")
			if err != nil {
				continue
			}
			var st connStatus
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
			if err == nil {
				peak, n = max(peak, st.Connections.Admitted), n+1
			}
		}
	}()

	var wg sync.WaitGroup
	var ok atomic.Int64
	errs := make(chan error, fdClients)
	began := time.Now()
	for i := range fdClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fdClient(listen, i); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	took := time.Since(began)
	close(stopSampling)
	peak := <-sampled
	close(errs)
	var failed []string
	for err := range errs {
		failed = append(failed, err.Error())
	}
	t.Logf("%d clients × %d requests: %d succeeded in %v; /status sampled %d times, peak admitted %d of %d; %d log lines",
		fdClients, fdRequests, ok.Load(), took.Round(time.Millisecond), peak[1], peak[0], start.Max, p.lineCount()-linesBefore)
	if len(failed) > 0 {
		t.Errorf("%d of %d clients failed; first: %s", len(failed), fdClients, strings.Join(failed[:min(5, len(failed))], "\n"))
	}
	if peak[0] > start.Max {
		t.Errorf("/status said %d connections admitted, over the cap %d", peak[0], start.Max)
	}

	// No node was taken down: portico's descriptors are its own problem.
	st := adminStatus(t, admin)
	for _, pl := range st.Pools {
		for _, s := range pl.Servers {
			if !s.Up {
				t.Errorf("server %s is down after the run", s.Address)
			}
		}
	}
	if len(st.Transitions) > 0 {
		t.Errorf("health transitions during the run: %+v", st.Transitions)
	}
	logs := p.Logs()
	if strings.Contains(logs, "server health changed") {
		t.Errorf("a server changed health during the run")
	}
	// A few lines at most: nothing per connection or per failed accept.
	if n := p.lineCount() - linesBefore; n > 10 {
		t.Errorf("portico logged %d lines during the run (%d bytes of log in all)", n, len(logs))
	}
	eventually(t, 10*time.Second, "every connection's place given back", func() bool {
		res, err := http.Get("http://" + admin + "/status")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var st connStatus
		return json.NewDecoder(res.Body).Decode(&st) == nil && st.Connections.Admitted == 0 &&
			st.Connections.Max == start.Max
	})
	m := parseProm(t, fetchMetricsText(t, admin))
	if v, _ := m.value("portico_max_connections", nil); int(v) != start.Max {
		t.Errorf("portico_max_connections = %v, want %d", v, start.Max)
	}
	if v, found := m.value("portico_connections", nil); !found || v != 0 {
		t.Errorf("portico_connections = %v (found %t), want 0", v, found)
	}
}

// fdClient connects, sends fdRequests keep-alive GETs one after another,
// checks each answer, and closes; all within fdClientTimeout.
func fdClient(addr string, i int) error {
	c, err := net.DialTimeout("tcp", addr, fdClientTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(fdClientTimeout))
	br := bufio.NewReader(c)
	for r := range fdRequests {
		if _, err := fmt.Fprintf(c, "GET /c%d/r%d HTTP/1.1\r\nHost: app.example.com\r\n\r\n", i, r); err != nil {
			return fmt.Errorf("request %d: %w", r, err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("response %d: %w", r, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("X-Node") == "" {
			return fmt.Errorf("response %d: %s from node %q", r, res.Status, res.Header.Get("X-Node"))
		}
	}
	return nil
}

// TestCheckSaysConnectionCap: -check prints the connection cap in force
// for its own open-files limit, and warns (exit 0) about a max_conns the
// limit cannot hold.
func TestCheckSaysConnectionCap(t *testing.T) {
	t.Parallel()
	prlimit := requirePeer(t, "prlimit")
	nofile := fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit)
	for _, tc := range []struct {
		name, conf string
		want       []string
		warn       string
	}{
		{"derived", validBase, []string{"connection cap: ", fmt.Sprintf(" (from the open-files limit %d)", fdLimit)}, ""},
		{"configured", "[limits]\nmax_conns = 50\n" + validBase, []string{"connection cap: 50 (limits.max_conns)"}, ""},
		{"configured over the limit", "[limits]\nmax_conns = 5000\n" + validBase,
			[]string{"connection cap: 5000 (limits.max_conns)"},
			fmt.Sprintf("warning: %%s:2: limits.max_conns: 5000 is more than the open-files limit %d allows", fdLimit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "portico.toml")
			if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			cmd := exec.Command(prlimit, nofile, binary, "-check", "-config", path)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("-check: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout %q lacks %q", stdout.String(), w)
				}
			}
			if tc.warn == "" && stderr.Len() > 0 {
				t.Errorf("unexpected warnings: %s", stderr.String())
			}
			if w := strings.Replace(tc.warn, "%s", path, 1); tc.warn != "" && !strings.HasPrefix(stderr.String(), w) {
				t.Errorf("stderr %q, want it to begin with %q", stderr.String(), w)
			}
		})
	}
}
