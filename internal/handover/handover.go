// Package handover passes listening sockets from a running process to the
// process that replaces it, and tells the old process when the new one
// serves.
//
// The invariant: a socket handed over stays open in at least one process
// that accepts on it, so no connection is refused. The kernel keeps one
// accept queue per socket; both processes accept from it while the new one
// starts, and the old one closes its copy only after the new one said it is
// ready. A successor that exits or never says so is killed, and the old
// process has lost nothing: it still holds and serves every socket.
//
// The old process (the parent) starts the new one with Start: each socket
// is an inherited descriptor named in the environment by a key (the network
// and address as configured, e.g. "tcp:127.0.0.1:443"), plus the write end
// of a pipe. The new process (the child) picks up its sockets with FromEnv,
// takes the ones its configuration still has by key (Take), binds new ones
// itself, and calls Ready once it serves: one byte on the pipe.
package handover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The environment of a child started by Start. FromEnv removes both from
// the process environment, so nothing the child starts later sees them.
const (
	// EnvSockets lists the inherited sockets as "FD=KEY" entries joined by
	// newlines, e.g. "3=tcp:127.0.0.1:443\n4=tcp:127.0.0.1:9090".
	EnvSockets = "PORTICO_HANDOVER_SOCKETS"
	// EnvReady is the descriptor of the pipe the child writes to when it
	// serves.
	EnvReady = "PORTICO_HANDOVER_READY"
)

// Socket is a listening socket to hand over.
type Socket struct {
	// Key names the socket for the child: network and address as
	// configured, e.g. "tcp:127.0.0.1:443". Keys are unique.
	Key string
	// File is a descriptor of the socket. Start does not close it.
	File *os.File
}

// Spawn says how to start the successor.
type Spawn struct {
	Path string   // the executable
	Args []string // its arguments, without the program name
	// Env is the child's environment; nil: this process's. Earlier
	// hand-over variables in it are replaced.
	Env            []string
	Stdin          *os.File // nil: /dev/null
	Stdout, Stderr *os.File // nil: /dev/null
	Sockets        []Socket
}

// Child is a successor that Start started.
type Child struct {
	cmd    *exec.Cmd
	ready  chan error    // one value: nil (ready) or why not
	exited chan struct{} // closed once the process was reaped
	err    error         // the exit status, set before exited closes
}

// Start starts the successor with sp's sockets. It returns once the process
// runs; WaitReady then says whether it took over.
func Start(sp Spawn) (*Child, error) {
	keys := make(map[string]bool, len(sp.Sockets))
	for _, s := range sp.Sockets {
		if s.Key == "" || strings.ContainsAny(s.Key, "\n") || keys[s.Key] {
			return nil, fmt.Errorf("hand-over: bad or repeated socket key %q", s.Key)
		}
		keys[s.Key] = true
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("hand-over: readiness pipe: %w", err)
	}
	defer w.Close() // the child holds its own copy; EOF on r means it is gone
	cmd := exec.Command(sp.Path, sp.Args...)
	cmd.Stdout, cmd.Stderr = sp.Stdout, sp.Stderr
	if sp.Stdin != nil {
		cmd.Stdin = sp.Stdin
	}
	var entries []string
	for i, s := range sp.Sockets {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.File)
		entries = append(entries, fmt.Sprintf("%d=%s", 3+i, s.Key))
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	env := sp.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(withoutHandover(env),
		EnvSockets+"="+strings.Join(entries, "\n"),
		EnvReady+"="+strconv.Itoa(3+len(sp.Sockets)))
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("hand-over: starting %s: %w", sp.Path, err)
	}
	c := &Child{cmd: cmd, ready: make(chan error, 1), exited: make(chan struct{})}
	// The reaper ends when the child exits; after a successful hand-over
	// that is usually after this process is gone, and it goes with it.
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	// The reader ends at the child's byte or at EOF, when the child's
	// copy of the write end closed: it exited (or closed it without
	// writing, which Ready never does).
	go func() {
		defer r.Close()
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			c.ready <- errors.New("exited before it was ready")
			return
		}
		c.ready <- nil
	}()
	return c, nil
}

// PID is the successor's process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// WaitReady waits until the successor says it serves, and returns nil then.
// If it exits first, or timeout passes or ctx ends before, it returns why,
// with the exit status when there is one; the successor is then killed and
// reaped, so it serves nothing.
func (c *Child) WaitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var why error
	select {
	case err := <-c.ready:
		if err == nil {
			return nil
		}
		why = err
	case <-t.C:
		why = fmt.Errorf("not ready within %v", timeout)
	case <-ctx.Done():
		why = fmt.Errorf("not ready: %w", ctx.Err())
	}
	if ctx.Err() == nil {
		// It may have closed the pipe a moment before it exits: give it
		// that moment before killing it, so the status says how it ended.
		select {
		case <-c.exited:
		case <-time.After(2 * time.Second):
		}
	}
	c.cmd.Process.Signal(syscall.SIGKILL) // reaped or not: an error here is harmless
	<-c.exited
	return fmt.Errorf("successor pid %d %w (%v)", c.PID(), why, c.err)
}

// withoutHandover returns env without this package's variables.
func withoutHandover(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, EnvSockets+"=") || strings.HasPrefix(kv, EnvReady+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ListenerFile returns a new descriptor of ln's socket for a Socket. Unlike
// (*net.TCPListener).File's, it stays non-blocking when exec passes it on:
// a descriptor shares that mode with ln's own, and a blocking one would
// leave ln's accept loop stuck in accept(2), where closing ln cannot end
// it.
func ListenerFile(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("hand-over: %T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("hand-over: %s: %w", ln.Addr(), err)
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("hand-over: %s: %w", ln.Addr(), err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("hand-over: duplicating %s: %w", ln.Addr(), dupErr)
	}
	// os.NewFile, not net's file wrapper: its Fd leaves the mode alone.
	return os.NewFile(uintptr(fd), "listener "+ln.Addr().String()), nil
}
