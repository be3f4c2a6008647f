package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// h2load (nghttp2), a real HTTP/2 client, multiplexes many streams per
// connection through portico's HTTP/2 server: bodiless GETs on the fast
// path, and POSTs whose bodies are larger than a quarter of the stream
// window, so the window updates are exercised too. Every stream must be
// answered 2xx.
func TestH2LoadThroughPortico(t *testing.T) {
	t.Parallel()
	h2load := requirePeer(t, "h2load")
	cs, ns := startCore(t, "a", "b", "c")
	url := "https://" + cs.httpsAddr + "/login"
	body := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(body, bytes.Repeat([]byte("p"), 600<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, run := range [][]string{
		{"-n", "2000", "-c", "4", "-m", "16"},
		{"-n", "40", "-c", "2", "-m", "4", "-d", body},
	} {
		args := append([]string{"-t", "1", "-H", ":authority: manage.example.com"}, run...)
		out, err := exec.Command(h2load, append(args, url)...).CombinedOutput()
		if err != nil {
			t.Fatalf("h2load %v: %v\n%s", run, err, out)
		}
		n := run[1]
		want := regexp.MustCompile(`requests: ` + n + ` total, ` + n + ` started, ` + n + ` done, ` + n +
			` succeeded, 0 failed, 0 errored, 0 timeout`)
		codes := regexp.MustCompile(`status codes: ` + n + ` 2xx`)
		if !want.Match(out) || !codes.Match(out) || !bytes.Contains(out, []byte("Application protocol: h2")) {
			t.Fatalf("h2load %v:\n%s", run, out)
		}
	}
	// round robin over the three nodes, and every POST reached one
	posts := 0
	for _, n := range ns {
		got := n.Requests()
		if len(got) < 600 {
			t.Errorf("node %s got %d requests of 2040", n.Name, len(got))
		}
		for _, r := range got {
			if r.Method == "POST" {
				posts++
			}
		}
	}
	if posts != 40 {
		t.Errorf("%d POSTs reached the nodes, want 40", posts)
	}
}
