package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/portico-lb/portico/internal/handover"
	"github.com/portico-lb/portico/proxy"
)

// upgradeReadyTimeout is how long a new process started by SIGUSR2 may take
// to serve (load its configuration and certificates, take the sockets,
// bind new ones) before it is killed and the upgrade counts as failed. It
// is below systemd's default TimeoutStartSec (90 s), which also bounds the
// "reloading" state the upgrade puts the unit in.
const upgradeReadyTimeout = 60 * time.Second

// upgrader runs binary upgrades (SIGUSR2): it starts the executable this
// process was started from, as installed now, with the same arguments and
// the listening sockets, and waits for it to serve. One at a time; the
// daemon's loop owns it and reads its outcomes from done.
type upgrader struct {
	log     *slog.Logger
	exe     string // "" when it could not be found at start
	exeErr  error
	args    []string
	timeout time.Duration
	running bool
	// done receives each started upgrade's outcome, exactly once; it has
	// room for it, so the waiting goroutine never blocks.
	done chan upgradeResult
}

type upgradeResult struct {
	pid int
	err error // nil: the new process serves
}

// newUpgrader finds this process's executable now, at start: a package
// upgrade replaces the file at that path, and the path is what the next
// process starts from.
func newUpgrader(log *slog.Logger, args []string) *upgrader {
	exe, err := os.Executable()
	return &upgrader{log: log, exe: exe, exeErr: err, args: args, timeout: upgradeReadyTimeout,
		done: make(chan upgradeResult, 1)}
}

// start begins an upgrade unless one is running. A new process that
// cannot be started leaves this one serving, as any failure does.
func (u *upgrader) start(ctx context.Context, srv *proxy.Server, n notifier) {
	if u.running {
		u.log.Warn("upgrade refused: one is in progress")
		return
	}
	if u.exeErr != nil {
		u.log.Error("upgrade refused: the executable's path is unknown", "err", u.exeErr)
		return
	}
	files, err := srv.ListenerFiles()
	if err != nil {
		u.log.Error("upgrade failed; this process keeps serving", "err", err)
		return
	}
	sockets := make([]handover.Socket, 0, len(files))
	for bind, f := range files {
		sockets = append(sockets, handover.Socket{Key: socketKey(bind), File: f})
	}
	sort.Slice(sockets, func(i, j int) bool { return sockets[i].Key < sockets[j].Key })
	n.send("RELOADING=1", monotonicUsec(), "STATUS=upgrading")
	child, err := handover.Start(handover.Spawn{Path: u.exe, Args: u.args, Stdout: os.Stdout, Stderr: os.Stderr,
		Sockets: sockets})
	for _, f := range files {
		f.Close() // the new process has its own copies
	}
	if err != nil {
		u.log.Error("upgrade failed; this process keeps serving", "err", err)
		n.send("READY=1", "STATUS=serving; the last upgrade failed")
		return
	}
	u.running = true
	u.log.Info("upgrade: new process started", "exe", u.exe, "new_pid", child.PID(), "sockets", len(sockets))
	// Ends with the new process's word, its exit, the timeout, or ctx:
	// the daemon cancels it when this process stops.
	go func() {
		u.done <- upgradeResult{pid: child.PID(), err: child.WaitReady(ctx, u.timeout)}
	}()
}

// finish takes an upgrade's outcome and reports whether this process now
// steps down.
func (u *upgrader) finish(res upgradeResult, n notifier) bool {
	u.running = false
	if res.err != nil {
		u.log.Error("upgrade failed; this process keeps serving", "new_pid", res.pid, "err", res.err)
		n.send("READY=1", fmt.Sprintf("STATUS=serving; the last upgrade failed: %v", res.err))
		return false
	}
	u.log.Info("upgrade: the new process serves", "new_pid", res.pid)
	return true
}

// abandon waits for the upgrade in progress, if any, to end after its
// context was cancelled: the new process is then killed and reaped, and
// cannot outlive this one.
func (u *upgrader) abandon() {
	if !u.running {
		return
	}
	res := <-u.done
	u.running = false
	u.log.Warn("upgrade abandoned: this process is stopping", "new_pid", res.pid, "err", res.err)
}
