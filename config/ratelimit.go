package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limit is a rule's limit = { ... } table: a token bucket per client
// address for the requests that rule admits. Each client may make Burst
// requests at once, then Count per Per.
type Limit struct {
	// Rate is the rate as written: "20/m" is Count 20 per Per time.Minute.
	Rate  string
	Count int
	Per   time.Duration // time.Second, time.Minute or time.Hour
	// Burst is the bucket's size, the requests a client may make at once
	// (at least 1). Default: Count.
	Burst int
	// By is what a bucket belongs to: "client", the client address as
	// the identity pipeline decides it (the only value). Default "client".
	By string
	// Clients caps the buckets the rule keeps; when full, the least
	// recently used one is reused. Default 100000.
	Clients int
	// Exempt are clients the limit never applies to. Default none.
	Exempt []netip.Prefix
}

// DefaultLimitClients is limit.clients when not set.
const DefaultLimitClients = 100000

// PerSecond is the rate in tokens per second.
func (l *Limit) PerSecond() float64 { return float64(l.Count) / l.Per.Seconds() }

// String is the limit's settings in one line ("20/m, burst 40, per
// client, 100000 clients, exempt 10.0.0.0/8"). Two limits with the same
// settings have the same String.
func (l *Limit) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%s, burst %d, per %s, %d clients", l.Count, perUnit(l.Per), l.Burst, l.By, l.Clients)
	for i, p := range l.Exempt {
		if i == 0 {
			b.WriteString(", exempt ")
		} else {
			b.WriteString(" ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

func perUnit(d time.Duration) string {
	switch d {
	case time.Second:
		return "s"
	case time.Minute:
		return "m"
	}
	return "h"
}

// parseRate reads "N/s", "N/m" or "N/h", N a positive integer.
func parseRate(s string) (int, time.Duration, error) {
	n, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf(`want "N/s", "N/m" or "N/h" (requests per second, minute or hour)`)
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return 0, 0, fmt.Errorf(`unknown unit %q: want "s", "m" or "h"`, unit)
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 || n[0] == '+' {
		return 0, 0, fmt.Errorf("the count %q must be a positive whole number", n)
	}
	return count, per, nil
}

type rawLimit struct {
	Rate    field `toml:"rate"`
	Burst   field `toml:"burst"`
	By      field `toml:"by"`
	Clients field `toml:"clients"`
	Exempt  field `toml:"exempt"`
}

// limit builds a rule's limit table at key; nil when the rule has none.
func (b *builder) limit(key string, rl *rawLimit) *Limit {
	if rl == nil {
		return nil
	}
	r := b.r
	l := &Limit{By: r.oneOf(rl.By, key+".by", "client", "client"), Rate: r.str(rl.Rate, key+".rate", "")}
	count, per, err := parseRate(l.Rate)
	switch {
	case !rl.Rate.set:
		r.errorf(key+".rate", `missing: a limit needs a rate ("20/m": 20 requests a minute per client)`)
	case err != nil && isString(rl.Rate):
		r.errorf(key+".rate", "invalid rate %q: %w", l.Rate, err)
	}
	l.Count, l.Per = count, per
	l.Burst = r.integer(rl.Burst, key+".burst", count, 1, math.MaxInt32)
	l.Clients = r.integer(rl.Clients, key+".clients", DefaultLimitClients, 1, math.MaxInt32)
	l.Exempt = r.prefixes(rl.Exempt, key+".exempt")
	if err != nil {
		return nil
	}
	return l
}

// checkLimit warns about a rule's limit that cannot do what it seems to.
func (b *builder) checkLimit(ru builtRule) {
	l, key := ru.Limit, ru.key+".limit"
	if l == nil {
		return
	}
	switch {
	case len(ru.Allow) == 0:
		b.r.warnf(key, "the rule denies every client, so its limit never applies (a limit counts the requests a rule admits)")
	case subset(ru.Allow, l.Exempt):
		b.r.warnf(key+".exempt", "every client the rule admits is exempt, so the limit never applies")
	}
	if ps := l.PerSecond(); float64(l.Burst) < ps {
		b.r.warnf(key+".burst", "burst %d is below the rate's %g requests a second: a bucket holds at most %d, "+
			"so a client that sends in bursts gets far less than %s; raise burst to at least %d",
			l.Burst, ps, l.Burst, l.Rate, int(math.Ceil(ps)))
	}
	if l.Clients < minUsefulClients {
		b.r.warnf(key+".clients", "clients = %d: a client with more addresses than that (an IPv6 /64 holds billions) "+
			"evicts its own buckets and starts over with full ones; keep it at %d or more", l.Clients, minUsefulClients)
	}
}

// minUsefulClients is the smallest limit.clients -check does not warn
// about.
const minUsefulClients = 1000
