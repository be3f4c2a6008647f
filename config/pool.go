package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// pool builds one [pool.NAME].
func (b *builder) pool(name string, rp rawPool) *Pool {
	r := b.r
	key := "pool." + name
	if err := checkName(name); err != nil {
		r.errorf(key, "invalid pool name: %w", err)
	}
	p := &Pool{
		Name:              name,
		ConnectTimeout:    r.duration(rp.ConnectTimeout, key+".connect_timeout", 3*time.Second, false),
		ResponseTimeout:   r.duration(rp.ResponseTimeout, key+".response_timeout", 60*time.Second, false),
		SendProxyProtocol: r.oneOf(rp.SendProxyProtocol, key+".send_proxy_protocol", "", "", "v1", "v2"),
		MinHealthy:        r.integer(rp.MinHealthy, key+".min_healthy", 1, 0, math.MaxInt32),
		RemovedGrace:      r.duration(rp.RemovedGrace, key+".removed_grace", 30*time.Second, true),
		QueueTimeout:      r.duration(rp.QueueTimeout, key+".queue_timeout", 5*time.Second, true),
		TLS:               b.nodeTLS(key+".tls", rp.TLS),
	}
	p.Health = b.health(key+".health", rp.Health, p.TLS != nil)

	members, entries := r.servers(rp.Servers, key+".servers")
	for _, m := range members {
		p.Members = append(p.Members, m)
		p.Servers = append(p.Servers, m.Address)
	}
	switch {
	case !rp.Servers.set:
		r.errorf(key+".servers", `missing: list the pool's servers as "host:port"`)
	case entries == 0 && isArray(rp.Servers):
		r.errorf(key+".servers", "empty: a pool needs at least one server")
	case len(p.Servers) == entries && p.MinHealthy > len(p.Servers):
		r.errorf(key+".min_healthy", "min_healthy = %d but the pool has only %d servers", p.MinHealthy, len(p.Servers))
	}
	return p
}

func isArray(f field) bool {
	switch f.v.(type) {
	case []any, []map[string]any:
		return true
	}
	return false
}

// health builds a pool's health = { ... } table at key.
// withTLS: the pool speaks TLS to its servers, and so do its checks
// unless scheme says otherwise.
func (b *builder) health(key string, rh rawHealth, withTLS bool) Health {
	defScheme := "http"
	if withTLS {
		defScheme = "https"
	}
	r := b.r
	h := Health{
		Disabled:      !r.boolean(rh.Enabled, key+".enabled", true),
		Path:          r.str(rh.Path, key+".path", "/testall"),
		Interval:      r.duration(rh.Interval, key+".interval", 5*time.Second, false),
		Timeout:       r.duration(rh.Timeout, key+".timeout", 2*time.Second, false),
		Rise:          r.integer(rh.Rise, key+".rise", 2, 1, math.MaxInt32),
		Fall:          r.integer(rh.Fall, key+".fall", 3, 1, math.MaxInt32),
		Scheme:        r.oneOf(rh.Scheme, key+".scheme", defScheme, "http", "https"),
		Port:          r.integer(rh.Port, key+".port", 0, 0, 65535),
		Host:          strings.ToLower(r.str(rh.Host, key+".host", "")),
		TLSSkipVerify: r.boolean(rh.TLSSkipVerify, key+".tls_skip_verify", false),
	}
	if !strings.HasPrefix(h.Path, "/") {
		r.errorf(key+".path", "invalid path %q: must begin with \"/\"", h.Path)
	} else if strings.IndexFunc(h.Path, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0 {
		r.errorf(key+".path", "invalid path %q: spaces and control characters are not allowed", h.Path)
	}
	switch {
	case !rh.Timeout.set && h.Timeout > h.Interval:
		// A short interval without a timeout: a probe may take the whole
		// interval, since a round finishes before the next one starts.
		h.Timeout = h.Interval
	case h.Timeout > h.Interval:
		r.errorf(key+".timeout", "timeout %s must not be longer than interval %s", h.Timeout, h.Interval)
	}
	if h.Host != "" {
		if _, err := netip.ParseAddr(h.Host); err != nil {
			if err := checkHostname(strings.TrimSuffix(h.Host, ".")); err != nil {
				r.errorf(key+".host", "invalid host %q (want a host name or IP address, without port): %w", h.Host, err)
			}
		}
	}
	if name := r.str(rh.CAFile, key+".ca_file", ""); rh.CAFile.set {
		h.CAFile, h.RootCAs = b.caFile(key+".ca_file", name)
	}
	h.ExpectMin, h.ExpectMax = 200, 399
	if s := r.str(rh.Expect, key+".expect", ""); rh.Expect.set && isString(rh.Expect) {
		lo, hi, err := parseExpect(s)
		if err != nil {
			r.errorf(key+".expect", "invalid status range %q: %w", s, err)
		} else {
			h.ExpectMin, h.ExpectMax = lo, hi
		}
	}
	return h
}

func isString(f field) bool {
	_, ok := f.v.(string)
	return ok
}

// parseExpect reads "200" or "200-399".
func parseExpect(s string) (lo, hi int, err error) {
	a, z, isRange := strings.Cut(s, "-")
	if lo, err = statusCode(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = statusCode(z); err != nil {
			return 0, 0, err
		}
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("%d is greater than %d", lo, hi)
	}
	return lo, hi, nil
}

func statusCode(s string) (int, error) {
	s = strings.TrimSpace(s)
	if !allDigits(s) {
		return 0, fmt.Errorf(`%q is not a status code (want "200" or "200-399")`, s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, errors.New("status codes go from 100 to 599")
	}
	return n, nil
}
