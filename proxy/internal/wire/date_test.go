package wire

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestDateCacheFormatsEachSecond(t *testing.T) {
	t.Parallel()
	var d DateCache
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 100, time.FixedZone("x", 3600))
	if got, want := d.Value(t0), t0.UTC().Format(http.TimeFormat); got != want {
		t.Fatalf("Value = %q, want %q", got, want)
	}
	if got, want := string(d.AppendField([]byte("a\r\n"), t0.Add(500*time.Millisecond))),
		"a\r\nDate: Sun, 01 Mar 2026 11:00:00 GMT\r\n"; got != want {
		t.Fatalf("AppendField within the second = %q, want %q", got, want)
	}
	t1 := t0.Add(time.Second)
	if got, want := d.Value(t1), "Sun, 01 Mar 2026 11:00:01 GMT"; got != want {
		t.Fatalf("Value a second later = %q, want %q", got, want)
	}
}

func TestDateCacheConcurrent(t *testing.T) {
	t.Parallel()
	var d DateCache
	base := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				now := base.Add(time.Duration(g*200+i) * 10 * time.Millisecond)
				if got, want := d.Value(now), now.UTC().Format(http.TimeFormat); got != want {
					t.Errorf("Value(%v) = %q, want %q", now, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
