package proxy

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portico-lb/portico/config"
)

// rateLimiter is a token bucket per client address: each client may make
// burst requests at once and then rate per second. Memory is bounded: at
// most max buckets, the least recently used one reused for a new client
// when full. A known client costs no allocation, and once the table is
// full neither does a new one.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	lru     bucket // sentinel: lru.next is the most recently used
}

type bucket struct {
	client     netip.Addr
	tokens     float64
	last       time.Time
	prev, next *bucket
}

// newRateLimiter makes a limiter of rate tokens per second, burst at
// most, for at most max clients; now is the clock (time.Now when nil).
func newRateLimiter(rate float64, burst, max int, now func() time.Time) *rateLimiter {
	if now == nil {
		now = time.Now
	}
	l := &rateLimiter{rate: rate, burst: float64(burst), max: max, now: now,
		buckets: make(map[netip.Addr]*bucket)}
	l.lru.next, l.lru.prev = &l.lru, &l.lru
	return l
}

// take spends one token of client's bucket. When none is left it reports
// false and how long until the next token.
func (l *rateLimiter) take(client netip.Addr) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	switch {
	case b != nil:
		l.unlink(b)
		b.tokens += now.Sub(b.last).Seconds() * l.rate
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.last = now
	case len(l.buckets) >= l.max:
		// Reuse the least recently used bucket: its client starts over
		// with a full bucket when it returns, which only errs towards
		// admitting.
		b = l.lru.prev
		l.unlink(b)
		delete(l.buckets, b.client)
		b.client, b.tokens, b.last = client, l.burst, now
		l.buckets[client] = b
	default:
		b = &bucket{client: client, tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	l.pushFront(b)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// size is the number of buckets held.
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *rateLimiter) unlink(b *bucket) {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

func (l *rateLimiter) pushFront(b *bucket) {
	b.prev, b.next = &l.lru, l.lru.next
	l.lru.next.prev = b
	l.lru.next = b
}

// limitKey identifies a rule's limiter across reloads: the same listener,
// a rule that matches the same hosts and paths, the same limit settings.
// A reload that keeps all three keeps the buckets; one that changes the
// limit starts fresh.
type limitKey struct {
	listener, rule, limit string
}

func limitKeyFor(listener string, r *config.Rule) limitKey {
	rule := strings.Join(r.Hosts, ",") + "\x00" + strings.Join(r.Paths, ",") + "\x00" + strconv.FormatBool(r.IgnoreCase)
	return limitKey{listener: listener, rule: rule, limit: r.Limit.String()}
}

// limiterFor returns the rule's limiter, kept from an earlier runtime when
// the key is the same; now is its clock.
func (r *registry) limiterFor(listener string, ru *config.Rule, now func() time.Time) *rateLimiter {
	k := limitKeyFor(listener, ru)
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.limits[k]
	if !ok {
		l = newRateLimiter(ru.Limit.PerSecond(), ru.Limit.Burst, ru.Limit.Clients, now)
		r.limits[k] = l
	}
	return l
}

// sweepLimiters drops the limiters cfg no longer has, once its runtime is
// published.
func (r *registry) sweepLimiters(cfg *config.Config) {
	keep := make(map[limitKey]bool)
	for _, l := range cfg.Listeners {
		for _, ru := range l.Rules {
			if ru != nil && ru.Limit != nil {
				keep[limitKeyFor(l.Name, ru)] = true
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.limits {
		if !keep[k] {
			delete(r.limits, k)
		}
	}
}

// retryAfter is a Retry-After value: whole seconds until wait has passed,
// at least 1.
func retryAfter(wait time.Duration) string {
	s := int64((wait + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// clientConns counts one slot's open connections per client address, for
// max_conns_per_client. An address is held only while it has
// connections, so the table is bounded by the connections open.
type clientConns struct {
	mu sync.Mutex
	m  map[netip.Addr]int
}

// acquire counts a connection from a unless a already has max.
func (c *clientConns) acquire(a netip.Addr, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[a] >= max {
		return false
	}
	if c.m == nil {
		c.m = make(map[netip.Addr]int)
	}
	c.m[a]++
	return true
}

// release gives back one connection of a.
func (c *clientConns) release(a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.m[a]; n > 1 {
		c.m[a] = n - 1
	} else {
		delete(c.m, a)
	}
}

// count is the connections a holds, and the addresses held.
func (c *clientConns) count(a netip.Addr) (n, addrs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[a], len(c.m)
}
