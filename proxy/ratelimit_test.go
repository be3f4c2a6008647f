package proxy

import (
	"net/netip"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
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
	clk.t = clk.t.Add(2 * time.Second)
	if got, w := l.take(a); got || w < time.Second-time.Millisecond || w > time.Second+time.Millisecond {
		t.Errorf("a token after 2s at 20/m (retry after %v, want 1s)", w)
	}
	clk.t = clk.t.Add(time.Second)
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

// Admit takes a token only for the rule that admitted the request, only
// for clients not exempt; NewAdmitter (-explain's) names the limit and
// never takes one.
func TestAdmitRateLimit(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
[[listener]]
name = "web"
bind = "127.0.0.1:1"
mode = "http"
pool = "nodes"
  [[listener.rule]]
  paths = ["/login"]
  allow = ["0.0.0.0/0"]
  limit = { rate = "1/m", burst = 2, exempt = ["10.0.0.0/8"] }
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0"]
[pool.nodes]
servers = ["127.0.0.1:2"]
`), "rl.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	reg := newRegistry()
	lc := cfg.Listeners[0]
	a := newAdmitter(lc, func(r *config.Rule) *rateLimiter { return reg.limiterFor(lc.Name, r, clk.now) })
	user, ops := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.1.2.3")
	login := func(c netip.Addr) Admission {
		return a.Admit(AdmitRequest{Target: "/login", Host: "x.test", Client: c})
	}
	for i := 0; i < 2; i++ {
		if v := login(user); !v.Allow || v.Limit == nil || v.Exempt {
			t.Fatalf("request %d: %+v", i, v)
		}
	}
	v := login(user)
	if v.Allow || v.Status != 429 || v.Reason != "rate-limit" || v.Decision.Rule != 0 || v.RetryAfter != time.Minute {
		t.Errorf("over the limit: %+v", v)
	}
	if got := retryAfter(v.RetryAfter); got != "60" {
		t.Errorf("Retry-After %q", got)
	}
	for i := 0; i < 10; i++ {
		if v := login(ops); !v.Allow || !v.Exempt {
			t.Fatalf("exempt client, request %d: %+v", i, v)
		}
		if v := a.Admit(AdmitRequest{Target: "/other", Host: "x.test", Client: user}); !v.Allow || v.Limit != nil {
			t.Fatalf("unlimited rule, request %d: %+v", i, v)
		}
	}
	explain := NewAdmitter(lc)
	for i := 0; i < 5; i++ {
		if v := explain.Admit(AdmitRequest{Target: "/login", Host: "x.test", Client: user}); !v.Allow || v.Limit != lc.Rules[0].Limit {
			t.Fatalf("-explain's admitter, request %d: %+v", i, v)
		}
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1",
		1500 * time.Millisecond: "2", time.Hour: "3600"} {
		if got := retryAfter(d); got != want {
			t.Errorf("retryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

// BenchmarkLimiterMillionClients feeds one million distinct client
// addresses to a limiter of clients buckets and reports the heap it holds
// afterwards: bounded by clients, whatever the number of addresses.
func BenchmarkLimiterMillionClients(b *testing.B) {
	const clients, addrs = config.DefaultLimitClients, 1_000_000
	var heap uint64
	var size int
	for i := 0; i < b.N; i++ {
		goruntime.GC()
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		l := newRateLimiter(20.0/60, 40, clients, nil)
		for j := 0; j < addrs; j++ {
			l.take(netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}))
		}
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		size = l.size()
		heap = after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
		goruntime.KeepAlive(l)
	}
	if size != clients {
		b.Fatalf("%d buckets after %d addresses, want %d", size, addrs, clients)
	}
	// a bucket and its map entry: well under 256 bytes
	if heap > clients*256 {
		b.Fatalf("%d bytes held for %d buckets", heap, clients)
	}
	b.ReportMetric(float64(size), "buckets")
	b.ReportMetric(float64(heap), "heap-bytes")
	b.ReportMetric(float64(heap)/float64(size), "bytes/bucket")
}
