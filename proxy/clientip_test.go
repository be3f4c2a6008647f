package proxy

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/portico-lb/portico/config"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	lr := &listenerRuntime{cfg: &config.Listener{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}}
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.9", nil, "203.0.113.9"},
		{"203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"}, // untrusted peer: XFF ignored
		{"10.0.0.1", nil, "10.0.0.1"},
		{"10.0.0.1", []string{"1.2.3.4"}, "1.2.3.4"},
		{"10.0.0.1", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},           // rightmost untrusted
		{"10.0.0.1", []string{"6.6.6.6, 1.2.3.4, 10.0.0.7"}, "1.2.3.4"}, // trusted hops skipped
		{"10.0.0.1", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},         // several headers
		{"10.0.0.1", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},        // all trusted: leftmost
		{"10.0.0.1", []string{"garbage, 1.2.3.4"}, "1.2.3.4"},
		{"10.0.0.1", []string{"1.2.3.4, garbage"}, "10.0.0.1"}, // garbage right of client: stop
		{"10.0.0.1", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"10.0.0.1", []string{"1.2.3.4:5678"}, "1.2.3.4"},
		{"10.0.0.1", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},
		{"fd00::1", []string{"2001:db8::2"}, "2001:db8::2"},
	} {
		h := http.Header{}
		for _, v := range tc.xff {
			h.Add("X-Forwarded-For", v)
		}
		got := clientAddr(netip.MustParseAddr(tc.peer), h, lr)
		if got.String() != tc.want {
			t.Errorf("peer %s xff %q: got %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestScrubIdentity(t *testing.T) {
	t.Parallel()
	mk := func() http.Header {
		return http.Header{
			"X-Forwarded-For": {"1"}, "X-Forwarded-Proto": {"1"}, "X-Forwarded-Host": {"1"},
			"X-Forwarded-Port": {"1"}, "X_forwarded_for": {"1"}, "X-Real-Ip": {"1"}, "Forwarded": {"1"},
			"X-Original-Url": {"1"}, "X-Rewrite-Url": {"1"}, "X-Client-Ip": {"1"}, "Accept": {"1"},
		}
	}
	h := mk()
	scrubIdentity(h, false)
	if len(h) != 1 || h.Get("Accept") == "" {
		t.Fatalf("untrusted: left %v", h)
	}
	h = mk()
	scrubIdentity(h, true)
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Accept"} {
		if h.Get(k) == "" {
			t.Errorf("trusted: %s removed", k)
		}
	}
	for _, k := range []string{"X_forwarded_for", "X-Real-Ip", "Forwarded", "X-Original-Url", "X-Forwarded-Port"} {
		if _, ok := h[k]; ok {
			t.Errorf("trusted: %s kept", k)
		}
	}
}

// Spellings a node might fold together are all caught, and the common case
// (nothing to remove) allocates nothing.
func TestScrubIdentitySpellings(t *testing.T) {
	for _, k := range []string{"x_real_ip", "X-REAL-IP", "True-Client-Ip", "X-Cluster-Client-Ip",
		"X_Original_URL", "x-host", "X-Original-Host", "FORWARDED", "X-Forwarded-Server", "X_FORWARDED_PROTO"} {
		h := http.Header{k: {"6.6.6.6"}, "Accept": {"*/*"}}
		scrubIdentity(h, true)
		if _, ok := h[k]; ok {
			t.Errorf("%s passed from a trusted proxy", k)
		}
	}
	h := http.Header{"Accept": {"*/*"}, "User-Agent": {"x"}, "Cookie": {"a=b"}, "X-Forwarded-For": {"1.2.3.4"}}
	if n := testing.AllocsPerRun(100, func() { scrubIdentity(h, true) }); n != 0 {
		t.Errorf("scrubIdentity allocates %.0f times per request", n)
	}
}
