package proxy

import (
	"net/netip"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand: no sleeps.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// 100 requests from one address get exactly burst successes, then
// refusals with a Retry-After; another address is unaffected; tokens come
// back at the rate.
func TestRateLimiterBurstThenRefuses(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := newRateLimiter(20.0/60, 40, 100000, clk.now) // 20/m, burst 40
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	ok, refused := 0, 0
	var wait time.Duration
	for i := 0; i < 100; i++ {
		if got, w := l.take(a); got {
			if refused > 0 {
				t.Fatalf("request %d admitted after a refusal", i)
			}
			ok++
		} else {
			refused++
			wait = w
		}
	}
	if ok != 40 || refused != 60 {
		t.Fatalf("%d admitted, %d refused; want 40 and 60", ok, refused)
	}
	if wait != 3*time.Second {
		t.Errorf("retry after %v, want 3s (one token at 20/m)", wait)
	}
	if got, _ := l.take(b); !got {
		t.Error("another address was refused")
	}
	if l.peek(a) {
		t.Error("peek says a token is left")
	}
	clk.t = clk.t.Add(3 * time.Second)
	if !l.peek(a) {
		t.Error("peek does not see the new token")
	}
	if got, _ := l.take(a); !got {
		t.Error("no token after 3s at 20/m")
	}
	if got, _ := l.take(a); got {
		t.Error("two tokens after 3s at 20/m")
	}
}

func TestRateLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := newRateLimiter(1, 1, 2, clk.now)
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	l.take(a)
	l.take(b)
	if got, _ := l.take(a); got {
		t.Fatal("a has a second token")
	}
	l.take(c) // evicts b, the least recently used
	if l.size() != 2 {
		t.Fatalf("%d buckets, want 2", l.size())
	}
	if got, _ := l.take(a); got {
		t.Error("a was evicted instead of b")
	}
	if got, _ := l.take(b); !got {
		t.Error("b was not evicted")
	}
}

// Not parallel: it counts allocations.
func TestRateLimiterKnownClientDoesNotAllocate(t *testing.T) {
	l := newRateLimiter(1000, 1000, 10, nil)
	a := netip.MustParseAddr("192.0.2.1")
	l.take(a)
	if n := testing.AllocsPerRun(100, func() { l.take(a) }); n != 0 {
		t.Errorf("take of a known client allocates %v times", n)
	}
}

// BenchmarkRateLimiterManyClients takes one token for each of a million
// distinct addresses: the table stays at clients buckets, and once full a
// new client allocates nothing.
func BenchmarkRateLimiterManyClients(b *testing.B) {
	const clients = 100000
	l := newRateLimiter(20.0/60, 40, clients, nil)
	addrs := make([]netip.Addr, 1_000_000)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	for i := 0; i < clients; i++ {
		l.take(addrs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.take(addrs[i%len(addrs)])
	}
	b.StopTimer()
	if n := l.size(); n > clients {
		b.Fatalf("%d buckets, more than %d", n, clients)
	}
	b.ReportMetric(float64(l.size()), "buckets")
}
