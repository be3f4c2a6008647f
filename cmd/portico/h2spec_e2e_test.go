package main

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// h2spec (github.com/summerwind/h2spec), the HTTP/2 conformance suite,
// against portico's TLS h2 listener: every test of its default suite
// must pass.
func TestH2Spec(t *testing.T) {
	t.Parallel()
	h2spec := requirePeer(t, "h2spec")
	cs, _ := startCore(t, "a")
	host, port, err := net.SplitHostPort(cs.httpsAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// -o: each test's own timeout (h2spec waits that long for an answer
	// that should not come)
	out, err := exec.CommandContext(ctx, h2spec, "-t", "-k", "-h", host, "-p", port, "-o", "2").CombinedOutput()
	sum := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindSubmatch(out)
	if sum == nil {
		t.Fatalf("h2spec: %v\n%s", err, out)
	}
	if string(sum[4]) != "0" || err != nil {
		t.Fatalf("h2spec: %s\n%s", sum[0], out)
	}
	t.Logf("h2spec: %s", sum[0])
}
