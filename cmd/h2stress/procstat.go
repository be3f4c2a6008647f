package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memory is a process's resident set, in KiB, from /proc/PID/status.
type memory struct {
	rss, hwm int64 // VmRSS now, VmHWM (peak since start or the last reset)
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("proxy memory: %w", err)
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n
		case "VmHWM":
			m.hwm = n
		}
	}
	return m, sc.Err()
}

// resetPeak sets pid's VmHWM back to its current RSS (Linux ≥ 4.0, needs
// the right to write the process's clear_refs), so the peak measured
// belongs to the scenario, not to the proxy's start.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// goroutines reads go_goroutines from a Prometheus text endpoint.
func goroutines(ctx context.Context, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("metrics: go_goroutines %q: %w", v, err)
			}
			return int64(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	return 0, fmt.Errorf("metrics: no go_goroutines at %s", url)
}

// sampler polls the proxy's RSS (and goroutines when a metrics URL is
// set) until stopped, keeping the peaks.
type sampler struct {
	pid     int
	metrics string
	stopc   chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	peakRSS int64 // KiB
	peakG   int64
}

// sample starts a sampler; pid 0 and metrics "" sample nothing.
func sample(ctx context.Context, pid int, metrics string, every time.Duration) *sampler {
	s := &sampler{pid: pid, metrics: metrics, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.once(ctx)
			select {
			case <-tick.C:
			case <-s.stopc:
				s.once(ctx)
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

func (s *sampler) once(ctx context.Context) {
	var rss, g int64
	if s.pid > 0 {
		if m, err := readMemory(s.pid); err == nil {
			rss = m.rss
		}
	}
	if s.metrics != "" {
		g, _ = goroutines(ctx, s.metrics)
	}
	s.mu.Lock()
	s.peakRSS = max(s.peakRSS, rss)
	s.peakG = max(s.peakG, g)
	s.mu.Unlock()
}

// stop ends the sampling and returns the peaks: RSS in KiB, goroutines.
func (s *sampler) stop() (rssKiB, gor int64) {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRSS, s.peakG
}
