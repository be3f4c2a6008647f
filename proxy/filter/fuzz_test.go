package filter

import (
	"net/url"
	"strings"
	"testing"
)

// fuzzPrefixes is a fixed rule set for the "what we matched is what the
// node sees" invariant.
var fuzzPrefixes = []string{"/", "/login", "/u/", "/.well-known/", "/oauth/token", "/admin", "/a/b", "/café", "/x"}

// nodeView models the server behind portico: it decodes the forwarded
// (escaped) path once and resolves it with path.Clean semantics, keeping a
// trailing slash.
func nodeView(escaped string) (string, bool) {
	dec, err := url.PathUnescape(escaped)
	if err != nil {
		return "", false
	}
	var segs []string
	for _, s := range strings.Split(dec, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && (strings.HasSuffix(dec, "/") || strings.HasSuffix(dec, "/.") || strings.HasSuffix(dec, "/..")) {
		out += "/"
	}
	return out, true
}

func FuzzCanonicalize(f *testing.F) {
	for _, tc := range canonCases {
		f.Add(tc.raw)
	}
	f.Add("/u/..%2f..%2fadmin")
	f.Add("/%u002e%u002e/admin")
	f.Add("/ADMIN;x/y;z/")
	f.Add("/admin%3b/;x")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Canonicalize(raw)
		if err != nil {
			if c != "" {
				t.Fatalf("Canonicalize(%q) = %q with error %v", raw, c, err)
			}
			return
		}
		if !strings.HasPrefix(c, "/") || strings.Contains(c, "//") || strings.Contains(c, "/./") ||
			strings.Contains(c, "/../") || strings.HasSuffix(c, "/..") || strings.HasSuffix(c, "/.") {
			t.Fatalf("Canonicalize(%q) = %q is not canonical", raw, c)
		}
		wire := Escape(c)
		back, err := Canonicalize(wire)
		if err != nil || back != c {
			t.Fatalf("Canonicalize(Escape(%q)) = %q, %v (wire %q)", c, back, err, wire)
		}
		node, ok := nodeView(wire)
		if !ok {
			t.Fatalf("node cannot decode forwarded %q", wire)
		}
		for _, p := range fuzzPrefixes {
			if PrefixMatch(p, c) != PrefixMatch(p, node) {
				t.Fatalf("raw %q: portico matched %q, node sees %q: prefix %q disagrees", raw, c, node, p)
			}
		}
		if node != c {
			t.Fatalf("raw %q: portico matched %q, node sees %q", raw, c, node)
		}
		// A node that strips ";" parameters (and one that also folds
		// case) routes by the key the rules match.
		key := MatchKey(c)
		stripped := stripParams(node)
		if key != stripped || MatchKey(key) != key {
			t.Fatalf("raw %q: match key %q, a parameter-stripping node sees %q", raw, key, stripped)
		}
		for _, p := range fuzzPrefixes {
			if PrefixMatch(p, key) != PrefixMatch(p, stripped) {
				t.Fatalf("raw %q: key %q, stripped %q: prefix %q disagrees", raw, key, stripped, p)
			}
			if PrefixMatchFold(p, key) != PrefixMatch(strings.ToLower(p), asciiLower(stripped)) {
				t.Fatalf("raw %q: key %q: folded prefix %q disagrees with a case-folding node", raw, key, p)
			}
		}
	})
}

// stripParams models a node that removes each segment's ";" parameters
// and then merges the empty segments that leaves.
func stripParams(p string) string {
	var segs []string
	parts := strings.Split(p, "/")
	for _, s := range parts {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		if s != "" {
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	last := parts[len(parts)-1]
	if len(segs) > 0 && (last == "" || last[0] == ';') {
		out += "/"
	}
	return out
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func FuzzUpgradeVerdict(f *testing.F) {
	for _, tc := range upgradeCases {
		f.Add(strings.Join(tc.values, "\n"))
	}
	f.Fuzz(func(t *testing.T, joined string) {
		values := strings.Split(joined, "\n")
		ws, ok := UpgradeVerdict(values)
		if ws && !ok {
			t.Fatalf("UpgradeVerdict(%q) = websocket but not ok", values)
		}
		if ws && strings.Count(strings.ToLower(joined), "websocket") != 1 {
			t.Fatalf("UpgradeVerdict(%q) accepted something besides one websocket token", values)
		}
	})
}
