package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs the README's first command, as built by go build, on a
// loopback address of its own, and follows what it prints: round-robin
// over the three nodes with curl, TLS offloading with the demo CA, the
// endpoint filter, and a clean exit on Ctrl-C (SIGINT).
func TestDemo(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("PORTICO_REQUIRE_PEERS") != "" {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	bin := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// 127.79.0.1 is this test's alone, so the demo's fixed ports are free.
	const host = "127.79.0.1"
	cmd := exec.Command(bin, "-host", host)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	defer cmd.Process.Kill() // only if the test failed before Ctrl-C

	var cfgFile string
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended before it was ready:\n%s", stderr.String())
			}
			if f, ok := strings.CutPrefix(strings.TrimSpace(l), "config: "); ok {
				cfgFile = f
			}
			if strings.Contains(l, "Press Ctrl-C") {
				break wait
			}
		case <-deadline:
			t.Fatalf("demo not ready within 30s:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines { // the rest of the output, so the demo never blocks on it
		}
	}()
	ca := filepath.Join(filepath.Dir(cfgFile), "ca.pem")

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-s", "--max-time", "10"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return string(out)
	}
	seen := map[string]bool{}
	for range 6 {
		seen[strings.TrimSpace(run(fmt.Sprintf("http://%s:8080/login", host)))] = true
	}
	if len(seen) != 3 || !seen["node a"] || !seen["node b"] || !seen["node c"] {
		t.Errorf("round-robin over six requests reached %v, want nodes a, b and c", seen)
	}
	login := []string{"--cacert", ca, "--resolve", "login.example.com:8443:" + host}
	if got := run(append(login, "https://login.example.com:8443/login", "-D", "-", "-o", "/dev/null")...); !strings.Contains(strings.ToLower(got), "x-node:") {
		t.Errorf("https through the demo CA: headers %q lack X-Node", got)
	}
	for path, want := range map[string]string{"/admin": "403", "/login/../admin": "403"} {
		got := run(append(login, "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", "https://login.example.com:8443"+path)...)
		if got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if got := run(fmt.Sprintf("http://%s:9090/status", host)); !strings.Contains(got, `"pools"`) {
		t.Errorf("/status: %.200q", got)
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exit after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop on Ctrl-C")
	}
}
