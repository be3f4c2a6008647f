package proxy

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

// parseTestConfig loads src as a configuration file in a fresh folder. The
// loader wants real ports; tests then point the binds at free ones.
func parseTestConfig(tb testing.TB, name, src string) *config.Config {
	tb.Helper()
	cfg, err := config.Parse([]byte(src), name, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// startTestServer is how every test of this package runs a Server: quiet
// unless opts names a logger, before (if any) applied between New and
// Start, and shut down (within 10 s) when the test ends.
func startTestServer(tb testing.TB, cfg *config.Config, opts Options, before func(*Server)) *Server {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if before != nil {
		before(s)
	}
	s.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}
