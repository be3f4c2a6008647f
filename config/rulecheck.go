package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// checkRuleShapes warns about rule lists that let a spelling of a
// restricted path reach a broader rule. Rules are tried in order and the
// first match decides, so what a restricted rule does not match falls
// through to the rules after it.
func (b *builder) checkRuleShapes(rules []builtRule) {
	for i := range rules {
		ri := &rules[i]
		if len(ri.paths) == 0 {
			continue
		}
		for _, p := range ri.paths {
			b.denyListShape(rules, i, p)
			b.bareSubtree(rules, i, p)
		}
	}
}

// denyListShape: rule i keeps a path from some clients, a later rule
// admits everyone on a broader path, and rule i matches case-sensitively.
// "/Admin" then misses rule i and is admitted by the later rule, which is
// a bypass on a node that routes case-insensitively.
func (b *builder) denyListShape(rules []builtRule, i int, p elem) {
	ri := &rules[i]
	if ri.IgnoreCase || openToEveryone(ri.Allow) || !hasLetter(p.s) {
		return
	}
	for j := i + 1; j < len(rules); j++ {
		rj := &rules[j]
		if !openToEveryone(rj.Allow) || !hostsOverlap(ri.Hosts, rj.Hosts) {
			continue
		}
		broader := ""
		if len(rj.Paths) == 0 {
			broader = "any path"
		}
		for _, q := range rj.Paths {
			if segmentPrefix(q, p.s, true) && (rj.IgnoreCase || len(q) < len(p.s) && hasLetter(p.s[len(q):])) {
				broader = fmt.Sprintf("%q", q)
				break
			}
		}
		if broader == "" {
			continue
		}
		b.r.warnf(p.key, "deny-list shape: rule %d keeps %q from some clients, but rule %d admits everyone on %s "+
			"and this rule matches case-sensitively, so %q walks past it to a node that routes case-insensitively; "+
			"set ignore_case = true on rule %d, or end the list with a rule that admits only what is public",
			i, p.s, j, broader, strings.ToUpper(p.s), i)
		return
	}
}

// bareSubtree: "/admin/" names the subtree, not "/admin" itself, which
// falls to a later rule; warned about when that rule admits clients this
// one does not.
func (b *builder) bareSubtree(rules []builtRule, i int, p elem) {
	ri := &rules[i]
	if len(p.s) < 2 || !strings.HasSuffix(p.s, "/") {
		return
	}
	bare := strings.TrimSuffix(p.s, "/")
	for _, q := range ri.Paths {
		if segmentPrefix(q, bare, ri.IgnoreCase) {
			return
		}
	}
	for j := range rules {
		rj := &rules[j]
		if j == i || !hostsOverlap(ri.Hosts, rj.Hosts) || !rj.matchesPath(bare) {
			continue
		}
		if j < i || subset(rj.Allow, ri.Allow) {
			return
		}
		b.r.warnf(p.key, "%q does not match %q itself, which falls to rule %d and its broader allow list; "+
			"list %q too if rule %d should decide it", p.s, bare, j, bare, i)
		return
	}
}

// checkTCPBypass warns when a tcp listener without an allow list reaches a
// server that an http/https listener guards with rules: a client can go
// around those rules through the tcp listener.
func (b *builder) checkTCPBypass(c *Config) {
	guarded := map[string]string{} // canonical server address -> listener name
	for _, l := range c.Listeners {
		if l.Mode == ModeTCP || len(l.Rules) == 0 || c.Pools[l.Pool] == nil {
			continue
		}
		for _, s := range c.Pools[l.Pool].Servers {
			if canon, err := hostPort(s, false); err == nil && guarded[canon] == "" {
				guarded[canon] = l.Name
			}
		}
	}
	for i, l := range c.Listeners {
		if l.Mode != ModeTCP || l.Allow != nil || c.Pools[l.Pool] == nil {
			continue
		}
		for _, s := range c.Pools[l.Pool].Servers {
			canon, err := hostPort(s, false)
			if name := guarded[canon]; err == nil && name != "" {
				b.r.warnf(fmt.Sprintf("listener[%d].pool", i), "the tcp listener %q bypasses the rules of listener %q: "+
					"it reaches the same server %s without an allow list; give it an allow list or other servers", l.Name, name, s)
				break
			}
		}
	}
}

func (r *Rule) matchesPath(p string) bool {
	if len(r.Paths) == 0 {
		return true
	}
	for _, q := range r.Paths {
		if segmentPrefix(q, p, r.IgnoreCase) {
			return true
		}
	}
	return false
}

// segmentPrefix is the rule matcher's prefix test (proxy/filter
// PrefixMatch), which this package cannot import.
func segmentPrefix(prefix, p string, fold bool) bool {
	if prefix == "" || len(p) < len(prefix) {
		return false
	}
	head := p[:len(prefix)]
	if head != prefix && (!fold || !strings.EqualFold(head, prefix)) {
		return false
	}
	return len(p) == len(prefix) || prefix[len(prefix)-1] == '/' || p[len(prefix)] == '/'
}

func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; 'a' <= c && c <= 'z' {
			return true
		}
	}
	return false
}

// openToEveryone reports an allow list with a /0 prefix.
func openToEveryone(allow []netip.Prefix) bool {
	for _, p := range allow {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// subset reports whether every client in a is also in b.
func subset(a, b []netip.Prefix) bool {
	for _, x := range a {
		in := false
		for _, y := range b {
			if y.Bits() <= x.Bits() && y.Contains(x.Addr()) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// hostsOverlap reports whether some request host could match both rules'
// hosts (empty = any host).
func hostsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x == y || wildcardCovers(x, y) || wildcardCovers(y, x) {
				return true
			}
		}
	}
	return false
}

func wildcardCovers(pattern, host string) bool {
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok || len(host) <= len(suffix) || !strings.HasSuffix(host, suffix) {
		return false
	}
	return !strings.Contains(host[:len(host)-len(suffix)], ".")
}

// certName is the name whose certificate coverage decides a rule host's
// warning: for a wildcard, a name only a wildcard certificate covers.
func certName(h string) string {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return "portico-wildcard-check." + rest
	}
	return h
}
