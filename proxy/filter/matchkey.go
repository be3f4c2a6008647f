package filter

import "strings"

// MatchKey returns the path the rules are matched against: the canonical
// path with each segment's ";" parameters removed ("/admin;x/y" is
// "/admin/y"), and a segment left empty by that dropped like a repeated
// slash ("/;x/admin" is "/admin"). Servlet containers and many routers
// strip matrix parameters before routing, so a rule for "/admin" must also
// decide "/admin;jsessionid=1".
//
// The canonical path is decoded text, so an encoded ";" ("%3b") is a
// parameter delimiter here too: "/admin%3b" is judged as "/admin". That is
// the safe reading: a node that decodes first and then strips parameters
// routes it to "/admin". The key is only for matching; the node still gets
// the canonical path, parameters included.
//
// For a path without ';' (the common case) it returns canonical itself,
// without allocating.
func MatchKey(canonical string) string {
	if strings.IndexByte(canonical, ';') < 0 {
		return canonical
	}
	b := make([]byte, 0, len(canonical))
	b = append(b, '/')
	trailing := false
	for i := 1; i <= len(canonical); {
		end := i
		for end < len(canonical) && canonical[end] != '/' {
			end++
		}
		seg := canonical[i:end]
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		if seg == "" {
			trailing = true
		} else {
			b = append(b, seg...)
			b = append(b, '/')
			trailing = false
		}
		i = end + 1
	}
	if !trailing && len(b) > 1 {
		b = b[:len(b)-1]
	}
	return string(b)
}

// PrefixMatch reports whether prefix matches the canonical path p on a
// segment boundary. "/login" matches "/login", "/login/" and "/login/x",
// not "/loginx". A prefix ending in "/" names a subtree: "/u/" matches
// "/u/" and "/u/x" but not the bare "/u", which is a different resource
// (a rule meaning both lists both). "/" matches every path. Matching is
// case-sensitive, like the paths themselves.
func PrefixMatch(prefix, p string) bool {
	return prefixMatch(prefix, p, false)
}

// PrefixMatchFold is PrefixMatch ignoring ASCII case ("/admin" matches
// "/ADMIN/x"), for rules with ignore_case. Other letters ("é") are
// compared as they are: nodes that fold case disagree on them.
func PrefixMatchFold(prefix, p string) bool {
	return prefixMatch(prefix, p, true)
}

func prefixMatch(prefix, p string, fold bool) bool {
	if prefix == "" || len(p) < len(prefix) {
		return false
	}
	if fold {
		if !equalFoldASCII(p[:len(prefix)], prefix) {
			return false
		}
	} else if p[:len(prefix)] != prefix {
		return false
	}
	return len(p) == len(prefix) || prefix[len(prefix)-1] == '/' || p[len(prefix)] == '/'
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x != y && lowerASCII(x) != lowerASCII(y) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchWildcard reports whether host matches a "*.example.com" pattern:
// exactly one label before the suffix, never the apex itself.
func matchWildcard(pattern, host string) bool {
	suffix := pattern[1:] // ".example.com"
	if len(host) <= len(suffix) || !strings.HasSuffix(host, suffix) {
		return false
	}
	return strings.IndexByte(host[:len(host)-len(suffix)], '.') < 0
}
