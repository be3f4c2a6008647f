package filter

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// canonCase is one Canonicalize expectation: want, or err when err != nil.
type canonCase struct {
	raw  string
	want string
	err  error
}

var canonCases = []canonCase{
	// Plain and already canonical.
	{"/", "/", nil},
	{"/login", "/login", nil},
	{"/oauth/token", "/oauth/token", nil},
	{"/u/", "/u/", nil},
	{"/.well-known/openid-configuration", "/.well-known/openid-configuration", nil},
	{"/a-b_c~d", "/a-b_c~d", nil},
	{"/a+b", "/a+b", nil},
	{"/a b", "/a b", nil},
	{"/a%20b", "/a b", nil},
	{"/x:y@z$&'()*,=!", "/x:y@z$&'()*,=!", nil},

	// Dot segments.
	{"/.", "/", nil},
	{"/./", "/", nil},
	{"/a/.", "/a/", nil},
	{"/a/./b", "/a/b", nil},
	{"/a/b/..", "/a/", nil},
	{"/a/b/../", "/a/", nil},
	{"/a/../admin", "/admin", nil},
	{"/public/../admin", "/admin", nil},
	{"/a/b/../../c", "/c", nil},
	{"/a/..", "/", nil},
	{"/..", "", ErrAboveRoot},
	{"/../x", "", ErrAboveRoot},
	{"/a/../../x", "", ErrAboveRoot},
	{"/./../x", "", ErrAboveRoot},
	{"/...", "/...", nil},
	{"/a/.../b", "/a/.../b", nil},
	{"/.a/..b/b..", "/.a/..b/b..", nil},

	// Encoded dots are dots.
	{"/%2e%2e/admin", "", ErrAboveRoot},
	{"/a/%2e%2e/admin", "/admin", nil},
	{"/a/%2E%2E/admin", "/admin", nil},
	{"/a/%2E./admin", "/admin", nil},
	{"/a/.%2e/admin", "/admin", nil},
	{"/a/%2e/b", "/a/b", nil},
	{"/%2e", "/", nil},
	{"/%2e%2e", "", ErrAboveRoot},

	// Slashes.
	{"//admin", "/admin", nil},
	{"///", "/", nil},
	{"//", "/", nil},
	{"/a//b", "/a/b", nil},
	{"/a///b//", "/a/b/", nil},
	{"/a/%2fb", "", ErrEncodedSlash},
	{"/a%2Fb", "", ErrEncodedSlash},
	{"/%2F%2Fadmin", "", ErrEncodedSlash},
	{"/a%5cb", "", ErrBackslash},
	{"/a%5Cb", "", ErrBackslash},
	{`/a\b`, "", ErrBackslash},
	{`/..\admin`, "", ErrBackslash},

	// Parameters: ';' is ordinary, except on dot segments.
	{"/login;x", "/login;x", nil},
	{"/login;jsessionid=1/x", "/login;jsessionid=1/x", nil},
	{"/u;x/../admin", "/admin", nil},
	{"/u/..;/admin", "", ErrDotParam},
	{"/u/.;/admin", "", ErrDotParam},
	{"/u/%2e%2e;x/admin", "", ErrDotParam},
	{"/u/;/x", "/u/;/x", nil},
	{"/u/...;/x", "/u/...;/x", nil},

	// Fragment, query, controls.
	{"/login#x", "", ErrFragment},
	{"/login%23x", "/login#x", nil},
	{"/login?x", "", ErrQuery},
	{"/login%3Fx", "/login?x", nil},
	{"/a%00b", "", ErrControl},
	{"/a%0ab", "", ErrControl},
	{"/a%0D%0Ab", "", ErrControl},
	{"/a%7fb", "", ErrControl},
	{"/a%1Fb", "", ErrControl},
	{"/a\x00b", "", ErrControl},
	{"/a\nb", "", ErrControl},
	{"/a\tb", "", ErrControl},
	{"/a\x7fb", "", ErrControl},

	// Escapes.
	{"/%zz", "", ErrBadEscape},
	{"/%4", "", ErrBadEscape},
	{"/%", "", ErrBadEscape},
	{"/a%g1", "", ErrBadEscape},
	{"/%41%42", "/AB", nil},
	{"/%6c%6F%67%69%6e", "/login", nil},
	{"/100%25", "/100%", nil},
	{"/a%25zz", "/a%zz", nil},
	{"/%252e%252e/admin", "", ErrDoubleEncoded},
	{"/a%252Fb", "", ErrDoubleEncoded},
	{"/%2B", "/+", nil},

	// UTF-8.
	{"/caf%C3%A9", "/café", nil},
	{"/caf%c3%a9", "/café", nil},
	{"/café", "/café", nil},
	{"/%c0%af", "", ErrInvalidUTF8},
	{"/%e0%80%af", "", ErrInvalidUTF8},
	{"/%c0%ae%c0%ae/admin", "", ErrInvalidUTF8},
	{"/%f0%80%80%af", "", ErrInvalidUTF8},
	{"/%ed%a0%80", "", ErrInvalidUTF8}, // surrogate
	{"/%ff", "", ErrInvalidUTF8},
	{"/\xc0\xaf", "", ErrInvalidUTF8},
	{"/%C3", "", ErrInvalidUTF8},
	{"/%e2%82%ac", "/€", nil},

	// Look-alikes of separators.
	{"/u/..%ef%bc%8fadmin", "", ErrLookalike}, // fullwidth solidus
	{"/a%ef%bc%bcb", "", ErrLookalike},        // fullwidth reverse solidus
	{"/%ef%bc%8e%ef%bc%8e/admin", "", ErrLookalike},
	{"/a%e2%88%95b", "", ErrLookalike}, // division slash
	{"/a%e2%80%a5", "", ErrLookalike},  // two dot leader
	{"/a%c2%a5b", "", ErrLookalike},    // yen sign

	// Not a path.
	{"", "", ErrNotAbsolute},
	{"login", "", ErrNotAbsolute},
	{"*", "", ErrNotAbsolute},
	{"http://x/a", "", ErrNotAbsolute},
	{"%2flogin", "", ErrNotAbsolute},

	// Case is kept.
	{"/LOGIN", "/LOGIN", nil},
	{"/Login/X", "/Login/X", nil},
}

func TestCanonicalize(t *testing.T) {
	t.Parallel()
	if len(canonCases) < 60 {
		t.Fatalf("only %d cases", len(canonCases))
	}
	for _, tc := range canonCases {
		got, err := Canonicalize(tc.raw)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Canonicalize(%q) = %q, %v; want error %v", tc.raw, got, err, tc.err)
			}
			if err != nil && got != "" {
				t.Errorf("Canonicalize(%q) returned %q with an error", tc.raw, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Canonicalize(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			continue
		}
		if back, err := Canonicalize(Escape(got)); err != nil || back != got {
			t.Errorf("Canonicalize(Escape(%q)) = %q, %v; want it unchanged (escaped %q)", got, back, err, Escape(got))
		}
	}
}

func TestCanonicalizeLong(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("abcdefgh/", 2000) + "end"
	if got, err := Canonicalize(long); err != nil || got != long {
		t.Fatalf("long canonical path changed: err %v, len %d", err, len(got))
	}
	climb := strings.Repeat("/a", 3000) + strings.Repeat("/..", 3000) + "/x"
	if got, err := Canonicalize(climb); err != nil || got != "/x" {
		t.Fatalf("long climb = %q, %v; want /x", got, err)
	}
	over := strings.Repeat("/a", 3000) + strings.Repeat("/..", 3001) + "/x"
	if _, err := Canonicalize(over); !errors.Is(err, ErrAboveRoot) {
		t.Fatalf("long climb above root: err %v", err)
	}
	enc := "/" + strings.Repeat("%41", 1000) + "%"
	_, err := Canonicalize(enc)
	if !errors.Is(err, ErrBadEscape) {
		t.Fatalf("long bad escape: err %v", err)
	}
	if len(err.Error()) > 400 {
		t.Fatalf("error repeats the whole input: %d bytes", len(err.Error()))
	}
}

func TestCanonicalizeErrorNamesInput(t *testing.T) {
	t.Parallel()
	_, err := Canonicalize("/a%2Fb")
	if err == nil || !strings.Contains(err.Error(), `"/a%2Fb"`) || err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
		t.Fatalf("error %v should name the input and start lower-case", err)
	}
}

// TestCanonicalizeNoAlloc checks the no-allocation promise for paths that
// are already canonical: the input string itself comes back. Not parallel:
// AllocsPerRun refuses to run in parallel tests.
func TestCanonicalizeNoAlloc(t *testing.T) {
	for _, p := range []string{"/", "/login", "/oauth/token", "/.well-known/openid-configuration", "/u/x/"} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := Canonicalize(p); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("Canonicalize(%q): %v allocations, want 0", p, n)
		}
	}
}

func TestEscapeMatchesURL(t *testing.T) {
	t.Parallel()
	for _, tc := range canonCases {
		if tc.err != nil {
			continue
		}
		u := &url.URL{Path: tc.want}
		if got, want := Escape(tc.want), u.RequestURI(); got != want {
			t.Errorf("Escape(%q) = %q, url writes %q", tc.want, got, want)
		}
	}
	if got := Escape("/100%/a b/é?#"); got != "/100%25/a%20b/%C3%A9%3F%23" {
		t.Errorf("Escape = %q", got)
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	paths := []string{
		"/login",
		"/oauth/token",
		"/.well-known/openid-configuration",
		"/realms/main/protocol/openid-connect/auth",
		"/u/profile/",
		"/a/%2e%2e/login",
		"//admin//users",
		"/caf%C3%A9",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Canonicalize(paths[i%len(paths)]); err != nil {
			b.Fatal(err)
		}
	}
}
