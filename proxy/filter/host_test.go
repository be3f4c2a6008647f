package filter

import (
	"net/netip"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"example.com", "example.com", true},
		{"MANAGE.Example.COM", "manage.example.com", true},
		{"manage.example.com.", "manage.example.com", true},
		{"MANAGE.example.com.:443", "manage.example.com", true},
		{"example.com:8080", "example.com", true},
		{"example.com:", "example.com", true},
		{"login_1.example-2.com", "login_1.example-2.com", true},
		{"10.1.2.3", "10.1.2.3", true},
		{"10.1.2.3:80", "10.1.2.3", true},
		{"[::1]", "::1", true},
		{"[::1]:443", "::1", true},
		{"[2001:DB8:0::1]:443", "2001:db8::1", true},
		{"[::ffff:10.1.2.3]", "10.1.2.3", true},
		{"localhost", "localhost", true},
		{"1e100.net", "1e100.net", true},
		{"1.2.3", "1.2.3", true},         // not an address: a name of digits
		{"010.1.2.3", "010.1.2.3", true}, // nor with a leading zero
		{"10.1.2.3.", "10.1.2.3", true},

		{"::1", "", false},
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"[::1]:x", "", false},
		{"[10.1.2.3]", "", false},
		{"[fe80::1%25eth0]", "", false},
		{"example.com:http", "", false},
		{"example.com:123456", "", false},
		{"a..b", "", false},
		{".example.com", "", false},
		{"example.com..", "", false},
		{".", "", false},
		{":443", "", false},
		{"exa mple.com", "", false},
		{"user@example.com", "", false},
		{"example.com\r\n", "", false},
		{"ex\x00ample.com", "", false},
		{"exämple.com", "", false},
		{"example.com/x", "", false},
		{"*.example.com", "", false},
	}
	for _, tc := range cases {
		got, ok := NormalizeHost(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestNormalizeHostAllocs: a name costs no allocation (it is not parsed
// as an address), nor does an address already in its normal form; every
// request's Host goes through here.
func TestNormalizeHostAllocs(t *testing.T) {
	for _, h := range []string{"manage.example.com", "manage.example.com:443", "10.1.2.3"} {
		if n := testing.AllocsPerRun(100, func() { NormalizeHost(h) }); n > 0 {
			t.Errorf("NormalizeHost(%q): %.0f allocations", h, n)
		}
	}
}

// TestIPv4NormalForm holds what NormalizeHost relies on to leave an IPv4
// address unparsed: the ones netip takes are already in normal form.
func TestIPv4NormalForm(t *testing.T) {
	for _, h := range []string{"0.0.0.0", "1.2.3.4", "10.1.2.3", "255.255.255.255", "010.1.2.3", "1.2.3", "256.1.1.1"} {
		if a, err := netip.ParseAddr(h); err == nil && a.String() != h {
			t.Errorf("%q parses to %q", h, a)
		}
	}
}
