package proxy

import (
	"context"
	"sync"
	"time"
)

// Shutdown stops accepting, lets in-flight requests finish until ctx is done,
// then closes every tunnel and connection. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error { return s.stop(ctx, false) }

// StepDown is Shutdown for a process whose successor took over its
// listening sockets: it stops accepting (the admin listener first, so
// /healthz is answered by the successor only), lets in-flight requests
// finish, and keeps websockets and tcp tunnels until they end by
// themselves or ctx is done; then it closes what is left.
func (s *Server) StepDown(ctx context.Context) error { return s.stop(ctx, true) }

func (s *Server) stop(ctx context.Context, keepTunnels bool) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	slots := make([]*slot, 0, len(s.slots))
	for _, sl := range s.slots {
		slots = append(slots, sl)
	}
	admin := s.admin
	s.mu.Unlock()
	if keepTunnels && admin != nil {
		admin.stop()
	}

	var wg sync.WaitGroup
	for _, sl := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sl.stop(ctx)
		}()
	}
	wg.Wait()
	if keepTunnels {
		s.waitTunnels(ctx, slots)
	}
	s.cancelDrain() // tunnels and tcp connections end here
	// Only now wait for the slots' connections: a tcp connection holds its
	// gate goroutine until the cancellation above ends it.
	for _, sl := range slots {
		sl.wg.Wait()
	}
	// Websockets go away with a close frame; give them the moment that
	// takes before the process exits under them.
	ended := make(chan struct{})
	go func() {
		s.websocks.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(goAwayWait + time.Second):
	}
	s.l4.Stop() // after the websockets' close frames; ends what is left
	close(s.bgStop)
	s.stopCheckers()
	if admin != nil && !keepTunnels {
		admin.stop()
	}
	for _, p := range s.cur.Load().pools {
		p.closeIdle()
	}
	s.bg.Wait()
	return ctx.Err()
}

// waitTunnels waits until the slots' tcp connections and every websocket
// have ended, or ctx is done. Its waiter goroutine ends with them: after
// ctx, the drain cancellation that follows ends them all.
func (s *Server) waitTunnels(ctx context.Context, slots []*slot) {
	ended := make(chan struct{})
	go func() {
		for _, sl := range slots {
			sl.wg.Wait()
		}
		s.websocks.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
	}
}
