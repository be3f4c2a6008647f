package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fetchMetricsText fetches /metrics in the text format.
func fetchMetricsText(t testing.TB, admin string) []byte {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", res.Status, body)
	}
	return body
}

// scrape fetches and parses /metrics.
func scrapeProm(t testing.TB, admin string) promSet {
	t.Helper()
	return parseProm(t, fetchMetricsText(t, admin))
}

type promSet map[string]*dto.MetricFamily

// value is the sample of family name whose labels are exactly labels; ok is
// false if there is none.
func (m promSet) value(name string, labels map[string]string) (v float64, ok bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if len(s.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range s.GetLabel() {
			if want, ok := labels[l.GetName()]; !ok || want != l.GetValue() {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.GetCounter().GetValue(), true
		case s.Gauge != nil:
			return s.GetGauge().GetValue(), true
		case s.Untyped != nil:
			return s.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// sum adds up every sample of family name whose labels include labels.
func (m promSet) sum(name string, labels map[string]string) float64 {
	total := 0.0
	for _, s := range m[name].GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			if have[k] != v {
				match = false
			}
		}
		if match {
			total += s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
		}
	}
	return total
}

// series lists a family's samples, for failure messages.
func (m promSet) series(name string) string {
	var out []string
	for _, s := range m[name].GetMetric() {
		var ls []string
		for _, l := range s.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		v := s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
		out = append(out, fmt.Sprintf("%s{%s} %g", name, strings.Join(ls, ","), v))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return name + ": no samples"
	}
	return strings.Join(out, "\n")
}

func TestMetricsPassPromtool(t *testing.T) {
	t.Parallel()
	promtool := requirePeer(t, "promtool")
	cs, _ := startCore(t, "a", "b")
	for range 4 {
		if code, _, _ := get(t, cs.plain, "http://app.example.com/login"); code != http.StatusOK {
			t.Fatalf("http: status %d", code)
		}
		if code, _, _ := get(t, cs.secure, "https://login.example.com/login"); code != http.StatusOK {
			t.Fatalf("https: status %d", code)
		}
	}
	// A traversal attempt is refused by portico itself and counts as a denial.
	code, _, _ := get(t, cs.plain, "http://app.example.com/%2e%2e/x")
	if code < 400 || code > 499 {
		t.Fatalf("/%%2e%%2e/x answered %d, want a 4xx refusal", code)
	}

	var body []byte
	eventually(t, 5*time.Second, "the refusal counted in portico_denied_total", func() bool {
		body = fetchMetricsText(t, cs.admin)
		return parseProm(t, body).sum("portico_denied_total", map[string]string{"listener": "http"}) >= 1
	})
	m := parseProm(t, body)
	for _, name := range []string{"portico_requests_total", "portico_request_duration_seconds", "portico_server_up",
		"portico_connections_total", "portico_config_generation", "portico_build_info",
		"portico_certificate_expiry_timestamp_seconds"} {
		if m[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if got := m.sum("portico_requests_total", map[string]string{"listener": "https", "code": "2xx"}); got != 4 {
		t.Errorf("https 2xx requests = %v, want 4\n%s", got, m.series("portico_requests_total"))
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		t.Logf("promtool check metrics said:\n%s", out)
	}
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func parseProm(t testing.TB, body []byte) promSet {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

func TestRequestCountersFollowTraffic(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, admin := freeAddr(t), freeAddr(t)
	startPortico(t, t.TempDir(), statusPageConf(listen, admin, serverList(ns),
		`{ interval = "200ms", timeout = "150ms", rise = 1, fall = 1 }`))
	addr := map[string]string{"a": ns[0].Addr(), "b": ns[1].Addr()}
	up := func(m promSet, node string) (float64, bool) {
		return m.value("portico_server_up", map[string]string{"pool": "nodes", "server": addr[node]})
	}
	reqs := func(m promSet, node string) float64 {
		v, _ := m.value("portico_requests_total",
			map[string]string{"listener": "http", "pool": "nodes", "server": addr[node], "code": "2xx"})
		return v // a series that does not exist yet counts as 0
	}

	eventually(t, 10*time.Second, "portico_server_up 1 for a and b", func() bool {
		m := scrapeProm(t, admin)
		ua, oka := up(m, "a")
		ub, okb := up(m, "b")
		return oka && okb && ua == 1 && ub == 1
	})

	before := scrapeProm(t, admin)
	c := client(listen, nil)
	answered := map[string]int{}
	for range 11 {
		code, node, _ := get(t, c, "http://app.example.com/count")
		if code != http.StatusOK || addr[node] == "" {
			t.Fatalf("status %d from node %q", code, node)
		}
		answered[node]++
	}
	if answered["a"] == 0 || answered["b"] == 0 {
		t.Fatalf("round robin did not reach both nodes: %v", answered)
	}
	// A request is counted when its response is finished, which may be a
	// moment after the client has read it.
	var after promSet
	eventually(t, 5*time.Second, "request counters to catch up", func() bool {
		after = scrapeProm(t, admin)
		return reqs(after, "a")-reqs(before, "a") >= float64(answered["a"]) &&
			reqs(after, "b")-reqs(before, "b") >= float64(answered["b"])
	})
	for _, node := range []string{"a", "b"} {
		if d := reqs(after, node) - reqs(before, node); d != float64(answered[node]) {
			t.Errorf("portico_requests_total for %s grew by %v, but %s answered %d requests\n%s",
				node, d, node, answered[node], after.series("portico_requests_total"))
		}
	}

	ns[1].SetHealth(http.StatusInternalServerError)
	eventually(t, 10*time.Second, "portico_server_up 0 for b", func() bool {
		v, ok := up(scrapeProm(t, admin), "b")
		return ok && v == 0
	})
	m := scrapeProm(t, admin)
	if v, ok := up(m, "a"); !ok || v != 1 {
		t.Errorf("portico_server_up for a = %v (present %v), want 1\n%s", v, ok, m.series("portico_server_up"))
	}
	if v, _ := m.value("portico_server_transitions_total",
		map[string]string{"pool": "nodes", "server": addr["b"], "to": "down"}); v != 1 {
		t.Errorf("portico_server_transitions_total for b going down = %v, want 1\n%s",
			v, m.series("portico_server_transitions_total"))
	}
}

// TestAdminAllow: with [admin] allow, only those clients reach the admin
// listener; others get 403 on every path.
func TestAdminAllow(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	listen, admin := freeAddr(t), freeAddr(t)
	startPortico(t, t.TempDir(), fmt.Sprintf(`
[admin]
bind = %q
allow = ["127.0.0.2/32"]
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, listen, serverList(ns)))
	from := func(src string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	for _, path := range []string{"/", "/metrics", "/status", "/healthz"} {
		for src, want := range map[string]int{"127.0.0.1": 403, "127.0.0.2": 200} {
			res, err := from(src).Get("http://" + admin + path)
			if err != nil {
				t.Fatalf("%s from %s: %v", path, src, err)
			}
			res.Body.Close()
			if res.StatusCode != want {
				t.Errorf("%s from %s: %d, want %d", path, src, res.StatusCode, want)
			}
		}
	}
}
