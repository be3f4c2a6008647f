package filter

import (
	"fmt"
	"net/netip"
	"strings"
)

// Explain describes, in several lines of human text, what portico does
// with a request for `portico -explain`: the canonical path (or why it is
// refused with 400), the normalized host, each rule tried in order and why
// it matched or not, and the final allow/deny. rawPath is the path as it
// would arrive on the wire; a query after '?' is ignored, as the proxy
// does. It follows exactly the steps of the request path (NormalizeHost,
// Canonicalize, Policy.Decide), so it cannot disagree with them.
func Explain(p *Policy, host, rawPath string, client netip.Addr) string {
	var b strings.Builder
	client = client.Unmap()
	fmt.Fprintf(&b, "client: %s\n", client)

	h, hostOK := NormalizeHost(host)
	switch {
	case !hostOK:
		fmt.Fprintf(&b, "host: %q is malformed\n", host)
	case h == "":
		fmt.Fprintf(&b, "host: none (only rules without hosts can match)\n")
	default:
		fmt.Fprintf(&b, "host: %q -> %s\n", host, h)
	}

	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		fmt.Fprintf(&b, "query: %q ignored (rules match paths only)\n", rawPath[i:])
		rawPath = rawPath[:i]
	}
	canonical, err := Canonicalize(rawPath)
	if err != nil {
		fmt.Fprintf(&b, "path: rejected: %v\n", err)
	} else {
		fmt.Fprintf(&b, "path: %q -> %s (forwarded as %s)\n", rawPath, canonical, Escape(canonical))
	}
	if !hostOK || err != nil {
		b.WriteString("result: 400 bad request (rules not consulted)\n")
		return b.String()
	}

	if p.Empty() {
		b.WriteString("rules: none, every request is forwarded\n")
		b.WriteString("result: ALLOW (no rules)\n")
		return b.String()
	}
	d := p.Decide(h, canonical, client)
	if d.Key != canonical {
		fmt.Fprintf(&b, "match key: %s (\";\" parameters removed for matching)\n", d.Key)
	}
	for i := range p.rules {
		r := &p.rules[i]
		fmt.Fprintf(&b, "rule %d: %s\n", i, describeRule(r))
		switch {
		case d.Rule >= 0 && i > d.Rule:
			fmt.Fprintf(&b, "  not tried (rule %d decided)\n", d.Rule)
		case !r.present:
			b.WriteString("  empty rule, never matches\n")
		case !r.matchHost(h):
			fmt.Fprintf(&b, "  host %s is not listed: no match\n", hostText(h))
		default:
			prefix, ok := r.matchPath(d.Key)
			switch {
			case !ok:
				fmt.Fprintf(&b, "  no path prefix matches %s on a segment boundary%s: no match\n", d.Key, caseText(r))
			case len(r.paths) == 0:
				b.WriteString("  matches (any path)\n")
			default:
				fmt.Fprintf(&b, "  path prefix %q matches %s%s\n", prefix, d.Key, caseText(r))
			}
			if ok {
				if d.Allow {
					fmt.Fprintf(&b, "  client %s is in %s: allow\n", client, d.By)
				} else {
					fmt.Fprintf(&b, "  client %s is not in its allow list: deny\n", client)
				}
			}
		}
	}
	verdict := "DENY (403)"
	if d.Allow {
		verdict = "ALLOW"
	}
	fmt.Fprintf(&b, "result: %s: %s\n", verdict, d.Explain())
	return b.String()
}

func describeRule(r *rule) string {
	if !r.present {
		return "(none)"
	}
	hosts, paths, allow := "any", "any", "nobody"
	if len(r.hosts) > 0 {
		hosts = strings.Join(r.hosts, ", ")
	}
	if len(r.paths) > 0 {
		q := make([]string, len(r.paths))
		for i, s := range r.paths {
			q[i] = fmt.Sprintf("%q", s)
		}
		paths = strings.Join(q, ", ")
	}
	if len(r.allow) > 0 {
		a := make([]string, len(r.allow))
		for i, pf := range r.allow {
			a[i] = pf.String()
		}
		allow = strings.Join(a, ", ")
	}
	s := fmt.Sprintf("hosts [%s] paths [%s] allow [%s]", hosts, paths, allow)
	if r.ignoreCase {
		s += " ignore_case"
	}
	return s
}

func caseText(r *rule) string {
	if r.ignoreCase {
		return " (ignoring case)"
	}
	return ""
}

func hostText(h string) string {
	if h == "" {
		return "(none)"
	}
	return h
}
