package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// NormalizeHost brings a host as written in a rule or sent in a Host header
// to the form Rule.Hosts holds: lower-case, without port and without a
// trailing dot; IP addresses in canonical form, IPv6 without brackets.
// It fails for anything that is not a valid host name or IP address
// (wildcards included), so a caller matching requests can use it too and
// both sides agree on what "the same host" means.
func NormalizeHost(host string) (string, error) {
	h := host
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", fmt.Errorf("invalid host %q: missing ]", host)
		}
		if rest := h[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") || !allDigits(rest[1:]) {
				return "", fmt.Errorf("invalid host %q", host)
			}
		}
		a, err := netip.ParseAddr(h[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("invalid IPv6 address in host %q", host)
		}
		return a.Unmap().String(), nil
	case strings.Count(h, ":") > 1: // IPv6 without brackets
		a, err := netip.ParseAddr(h)
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("invalid host %q", host)
		}
		return a.Unmap().String(), nil
	case strings.Contains(h, ":"):
		i := strings.IndexByte(h, ':')
		if !allDigits(h[i+1:]) {
			return "", fmt.Errorf("invalid port in host %q", host)
		}
		h = h[:i]
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if strings.Contains(h, "*") {
		return "", fmt.Errorf("wildcard host %q is not supported here; a rule's hosts accept only a leading \"*.\" label", host)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String(), nil
	}
	if err := checkHostname(h); err != nil {
		return "", fmt.Errorf("invalid host %q: %w", host, err)
	}
	return h, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkHostname accepts DNS names: dot-separated labels of letters, digits,
// '-' and '_' (seen in internal names), 1-63 bytes each, 253 in all, no
// label starting or ending with '-'.
func checkHostname(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if len(h) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("bad label %q", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(isBareKeyByte(c)) {
				return fmt.Errorf("character %q is not allowed", c)
			}
		}
	}
	return nil
}

// hostPort checks a host:port address and returns its canonical form
// (lower-case host name or canonical IP, IPv6 in brackets) for comparisons.
// emptyHost allows ":8080" (every interface) for listen addresses.
func hostPort(s string, emptyHost bool) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(port)
	if err != nil || !allDigits(port) || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	switch {
	case host == "":
		if !emptyHost {
			return "", errors.New("missing host")
		}
	case strings.Contains(host, "%"):
		return "", fmt.Errorf("zone in %q is not supported", host)
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			host = a.Unmap().String()
		} else if strings.Contains(host, ":") {
			return "", fmt.Errorf("invalid IPv6 address %q", host)
		} else if err := checkHostname(strings.ToLower(host)); err != nil {
			return "", fmt.Errorf("invalid host %q: %w", host, err)
		} else {
			host = strings.ToLower(host)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// checkRulePath accepts the prefixes a rule may name. Requests are matched
// on their canonical path, which never contains "..", ".", "//" or
// percent-escapes; a rule naming one could never match and would hide a
// mistake.
func checkRulePath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New(`must begin with "/"`)
	}
	if strings.Contains(p, "//") {
		return errors.New(`must not contain "//"`)
	}
	if strings.Contains(p, "%") {
		return errors.New(`must not contain "%" (write the decoded character)`)
	}
	if strings.Contains(p, ";") {
		return errors.New(`must not contain ";": requests are matched with ";" parameters removed`)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("must not contain a %q segment", seg)
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("must not contain %q", c)
		}
	}
	return nil
}

// ruleHost normalizes a host of a rule: a name, an IP address, or a
// wildcard "*.example.com" (one label, any name, not the apex).
func ruleHost(host string) (string, error) {
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		h, err := NormalizeHost(rest)
		if err != nil {
			return "", fmt.Errorf("wildcard host %q: %w", host, err)
		}
		if _, err := netip.ParseAddr(h); err == nil || !strings.Contains(h, ".") {
			return "", fmt.Errorf("wildcard host %q: want \"*.\" before a domain name with at least two labels", host)
		}
		return "*." + h, nil
	}
	return NormalizeHost(host)
}

// checkName accepts listener and pool names: they appear in logs, metrics
// labels and the status page.
func checkName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isBareKeyByte(c) && c != '.' {
			return fmt.Errorf("name %q: only letters, digits, '-', '_' and '.' are allowed", s)
		}
	}
	return nil
}
