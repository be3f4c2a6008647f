package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// configIdentity is what /status says about the running configuration.
type configIdentity struct {
	Generation  uint64 `json:"generation"`
	Fingerprint string `json:"fingerprint"`
}

func statusIdentity(t testing.TB, admin string) configIdentity {
	t.Helper()
	res, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var id configIdentity
	if err := json.NewDecoder(res.Body).Decode(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

var checkFingerprintRE = regexp.MustCompile(`(?m)^fingerprint: ([0-9a-f]{64})$`)

// checkFingerprint runs portico -check on path and returns the fingerprint it prints.
func checkFingerprint(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command(binary, "-check", "-config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("portico -check %s: %v\n%s", path, err, out)
	}
	m := checkFingerprintRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("portico -check printed no fingerprint:\n%s", out)
	}
	return string(m[1])
}

// requireConfigInfo fails unless /metrics has exactly one
// portico_config_info series, with fingerprint fp and value 1.
func requireConfigInfo(t testing.TB, admin, fp string) {
	t.Helper()
	m := scrapeProm(t, admin)
	if n := len(m["portico_config_info"].GetMetric()); n != 1 {
		t.Fatalf("%d portico_config_info series, want 1:\n%s", n, m.series("portico_config_info"))
	}
	if v, ok := m.value("portico_config_info", map[string]string{"fingerprint": fp}); !ok || v != 1 {
		t.Fatalf("portico_config_info{fingerprint=%q} = %v (present %v):\n%s", fp, v, ok, m.series("portico_config_info"))
	}
}

// The fingerprint of the running configuration is the same in /status,
// /metrics and `portico -check` on the file, so an operator can compare
// instances and a file about to be deployed. A rewrite that configures the
// same (a comment) keeps it and is no new generation; a changed value
// changes it, and the old series leaves /metrics. Under traffic: both are
// reloads.
func TestConfigFingerprintAcrossStatusMetricsAndCheck(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com", "manage.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	conf := coreConf(httpAddr, httpsAddr, admin, serverList(ns))
	p, tr := startUnderTraffic(t, dir, conf, trafficSpec{Kind: trafficHTTP, Addr: httpAddr})

	first := statusIdentity(t, admin)
	if len(first.Fingerprint) != 64 || first.Generation != 1 {
		t.Fatalf("/status at start: %+v", first)
	}
	if fp := checkFingerprint(t, p.conf); fp != first.Fingerprint {
		t.Fatalf("portico -check says %s, /status %s", fp, first.Fingerprint)
	}
	requireConfigInfo(t, admin, first.Fingerprint)

	p.reload("# lb1, deployed from the same template\n"+strings.ReplaceAll(conf, " = ", "  =  "), "reload: configuration unchanged")
	if got := statusIdentity(t, admin); got != first {
		t.Fatalf("after a rewrite that configures the same: %+v, want %+v", got, first)
	}

	p.reload(strings.Replace(conf, `response_timeout = "3s"`, `response_timeout = "4s"`, 1), `"generation":2`)
	second := statusIdentity(t, admin)
	if second.Generation != 2 || second.Fingerprint == first.Fingerprint || len(second.Fingerprint) != 64 {
		t.Fatalf("after a changed value: %+v (was %+v)", second, first)
	}
	if fp := checkFingerprint(t, p.conf); fp != second.Fingerprint {
		t.Fatalf("portico -check says %s, /status %s", fp, second.Fingerprint)
	}
	requireConfigInfo(t, admin, second.Fingerprint)
	tr.stop().requireNoFailures(t, "reloads under traffic")
}
