package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// parsePrefix parses an allow-list entry: a CIDR prefix, or a bare address
// meaning just that address (/32 or /128). A prefix with host bits set
// ("10.1.2.3/8") is refused rather than silently masked: the author may have
// meant either the address or the network, and the two differ a lot.
// IPv4-mapped IPv6 prefixes are unmapped, because client addresses are
// unmapped before they are matched.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("zones are not allowed")
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits are set; did you mean %q (the network) or %q (one address)?",
			m.String(), p.Addr().String())
	}
	return p, nil
}

// prefixes reads an array of CIDR prefixes at key; nil if absent or empty.
func (r *report) prefixes(f field, key string) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range r.strings(f, key) {
		p, err := parsePrefix(e.s)
		if err != nil {
			r.errorf(e.key, "invalid CIDR %q: %w", e.s, err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// allowList reads an allow list where omitting the key admits everyone: an
// explicitly empty list would read as "nobody" to some and "everyone" to
// others, so it is refused.
func (r *report) allowList(f field, key string) []netip.Prefix {
	if arr, ok := f.v.([]any); f.set && ok && len(arr) == 0 {
		r.errorf(key, "empty allow list; omit allow to admit every client")
		return nil
	}
	return r.prefixes(f, key)
}
