package filter

import "testing"

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
