package filter

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portico-lb/portico/config"
)

// Policy is the compiled, immutable rule set of one listener. The zero
// value and a nil *Policy allow everything. Safe for concurrent use.
type Policy struct {
	rules []rule
}

// rule is a private copy of one config.Rule, so that nothing the config
// package (or a test) does to its slices later can change a live policy.
type rule struct {
	present bool     // false for a nil *config.Rule: it never matches
	hosts   []string // normalized; empty = any host
	paths   []string // empty = every path
	allow   []netip.Prefix
	// ignoreCase matches paths ignoring ASCII case.
	ignoreCase bool
}

// Compile builds the policy of one listener from its rules, in order.
// nil/empty rules → a Policy that allows everything (no filtering). A nil
// entry keeps its index (so rule numbers match the configuration file)
// but never matches.
func Compile(rules []*config.Rule) *Policy {
	p := &Policy{rules: make([]rule, len(rules))}
	for i, r := range rules {
		if r == nil {
			continue
		}
		c := rule{present: true, ignoreCase: r.IgnoreCase}
		for _, h := range r.Hosts {
			// config already normalizes; doing it again costs nothing at
			// load time and keeps both sides of the comparison identical.
			// A wildcard ("*.example.com") is kept as config wrote it.
			if strings.HasPrefix(h, "*.") {
				h = strings.ToLower(h)
			} else if n, ok := NormalizeHost(h); ok && n != "" {
				h = n
			}
			c.hosts = append(c.hosts, h)
		}
		c.paths = append([]string(nil), r.Paths...)
		for _, a := range r.Allow {
			c.allow = append(c.allow, unmapPrefix(a))
		}
		p.rules[i] = c
	}
	return p
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form, because clients are unmapped before matching.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// Empty reports whether the policy has no rules, i.e. filters nothing.
func (p *Policy) Empty() bool { return p == nil || len(p.rules) == 0 }

// Len returns the number of rules.
func (p *Policy) Len() int {
	if p == nil {
		return 0
	}
	return len(p.rules)
}

// Decision is the outcome of Policy.Decide. It holds the facts, and
// Explain turns them into text only when someone asks (logs, -explain), so
// deciding never allocates.
type Decision struct {
	// Allow reports whether the request may be proxied.
	Allow bool
	// Rule is the index of the deciding rule, -1 when no rule matched (or
	// there are no rules; Allow tells the two apart).
	Rule int
	// Client is the client address as matched (IPv4-mapped IPv6 unmapped).
	Client netip.Addr
	// Prefix is the path prefix of the deciding rule that matched ("" when
	// the rule has no Paths, or no rule decided).
	Prefix string
	// By is the allow-list entry that admitted the client (the zero Prefix
	// when denied or when there are no rules).
	By netip.Prefix
	// Key is the path the rules were matched against (MatchKey of the
	// canonical path); "" when there are no rules.
	Key string
}

// Explain returns the reason for the decision in one line, e.g.
// "rule 2 matched and client 10.1.2.3 is in 10.0.0.0/8".
func (d Decision) Explain() string {
	switch {
	case d.Rule < 0 && d.Allow:
		return "no rules"
	case d.Rule < 0:
		return "no rule matched"
	case d.Allow:
		return fmt.Sprintf("rule %d matched and client %s is in %s", d.Rule, d.Client, d.By)
	default:
		return fmt.Sprintf("rule %d matched but client %s is not in its allow list", d.Rule, d.Client)
	}
}

// Decide applies the rules to a request: the first rule whose Hosts (if
// any) contains host and one of whose Paths is a segment-boundary prefix
// of the path's MatchKey (ignoring ASCII case for ignore_case rules)
// decides; the request is allowed when client is in that rule's Allow
// list. With rules but no match, the request is denied.
//
// host must come from NormalizeHost and canonicalPath from Canonicalize:
// Decide compares strings and does not re-check them. It does not allocate
// for a path without ';'.
func (p *Policy) Decide(host, canonicalPath string, client netip.Addr) Decision {
	client = client.Unmap()
	if p.Empty() {
		return Decision{Allow: true, Rule: -1, Client: client}
	}
	key := MatchKey(canonicalPath)
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matchHost(host) {
			continue
		}
		prefix, ok := r.matchPath(key)
		if !ok {
			continue
		}
		d := Decision{Rule: i, Client: client, Prefix: prefix, Key: key}
		for _, a := range r.allow {
			if a.Contains(client) {
				d.Allow, d.By = true, a
				break
			}
		}
		return d
	}
	return Decision{Rule: -1, Client: client, Key: key}
}

func (r *rule) matchHost(host string) bool {
	if !r.present {
		return false
	}
	if len(r.hosts) == 0 {
		return true
	}
	for _, h := range r.hosts {
		if h == host || h != "" && h[0] == '*' && matchWildcard(h, host) {
			return true
		}
	}
	return false
}

// matchPath returns the first of the rule's prefixes matching the match
// key p.
func (r *rule) matchPath(p string) (string, bool) {
	if len(r.paths) == 0 {
		return "", true
	}
	for _, prefix := range r.paths {
		if prefixMatch(prefix, p, r.ignoreCase) {
			return prefix, true
		}
	}
	return "", false
}
