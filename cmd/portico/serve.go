package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portico-lb/portico/admin"
	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/internal/handover"
	"github.com/portico-lb/portico/proxy"
)

// daemon is a serving portico process: one loop (run) owns the signals,
// reloads, upgrades and the stop.
type daemon struct {
	path   string
	logs   *logs
	log    *slog.Logger
	srv    *proxy.Server
	notify notifier
	up     *upgrader
	// logCfg is the [log] section of the configuration that is serving:
	// SIGUSR1 reopens with it, and a failed reload keeps it.
	logCfg config.Log
}

// serve runs portico on the configuration at path until it is stopped or
// steps down for a successor. args are its command-line arguments, which
// a binary upgrade starts the successor with.
func serve(path string, args []string, noFast bool, stderr io.Writer) int {
	// First of all: until then a signal has its default action, and
	// SIGUSR2's (or SIGHUP's) is to end the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	inh, err := handover.FromEnv()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer inh.Close() // a no-op after Ready; on a failed start the predecessor learns it
	cfg, err := config.Load(path)
	if err != nil {
		for _, line := range errorLines(err) {
			fmt.Fprintln(stderr, line)
		}
		return 1
	}
	logs := newLogs(cfg.Log, stderr)
	log := logs.process
	for _, w := range cfg.Warnings {
		log.Warn("configuration warning", "warning", w)
	}
	access, err := logs.openAccess(cfg.Log)
	if err != nil {
		log.Error("cannot open the access log", "err", err)
		return 1
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Access: access, Version: version(), NoFastPath: noFast,
		Inherited: func(bind string) (net.Listener, error) { return inh.Take(socketKey(bind)) },
		Admin:     func(s *proxy.Server) http.Handler { return admin.New(s, log) }})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	d := &daemon{path: path, logs: logs, log: log, srv: srv, notify: notifierFromEnv(), logCfg: cfg.Log,
		up: newUpgrader(log, args)}
	srv.Start()
	connCap := srv.ConnCap()
	attrs := []any{"version", version(), "pid", os.Getpid(), "config", cfg.Path, "listeners", len(cfg.Listeners),
		"admin", srv.AdminAddr(), "max_conns", connCap.Max, "max_conns_source", connCap.Source,
		"open_files_limit", connCap.OpenFiles}
	if inh != nil {
		// systemd learns the new main process before the old one can
		// step down and exit: with the old one gone first, it would
		// count the service as stopped.
		d.notify.send(fmt.Sprintf("MAINPID=%d", os.Getpid()), "READY=1", "STATUS=serving")
		if err := inh.Ready(); err != nil {
			log.Error("cannot tell the previous process that this one serves", "err", err)
		}
		attrs = append(attrs, "took_over_from", os.Getppid(), "inherited_sockets", inh.Taken())
	} else {
		d.notify.send("READY=1", "STATUS=serving")
	}
	log.Info("portico started", attrs...)
	return d.run(sigs)
}

// socketKey is a listening socket's key in a hand-over: network and
// address as configured, so a successor matches it to its own config.
func socketKey(bind string) string { return "tcp:" + bind }

// run serves signals and upgrade outcomes until the process stops.
func (d *daemon) run(sigs chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // a successor still starting is killed if this process stops
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				d.reload()
			case syscall.SIGUSR1:
				d.reopenAccess()
			case syscall.SIGUSR2:
				d.up.start(ctx, d.srv, d.notify)
			case syscall.SIGTERM, syscall.SIGINT:
				cancel() // a new process still starting is killed: stop means stop
				d.up.abandon()
				d.notify.send("STOPPING=1", "STATUS=stopping")
				if !d.leave(sigs) {
					return 1
				}
				return d.stop(sigs, false, "signal", sig.String())
			}
		case res := <-d.up.done:
			if !d.up.finish(res, d.notify) {
				continue
			}
			// No STOPPING=1 here: the successor is the main process
			// now, and systemd would take a stop notification from this
			// one as the whole service stopping.
			return d.stop(sigs, true, "successor", res.pid)
		}
	}
}

func (d *daemon) reload() {
	d.notify.send("RELOADING=1", monotonicUsec(), "STATUS=reloading")
	next, err := config.Load(d.path)
	if err != nil {
		d.srv.ReloadFailed(err) // problems already name the file, line and key
	} else {
		for _, w := range next.Warnings {
			d.log.Warn("configuration warning", "warning", w)
		}
		changed, err := d.srv.Reload(next)
		if err == nil {
			d.logCfg = next.Log
			if !changed {
				d.log.Info("reload: configuration unchanged")
			}
		}
	}
	// SIGHUP reopens the access log whatever became of the reload:
	// logrotate may have sent it.
	d.reopenAccess()
	d.notify.send("READY=1", "STATUS=serving")
}

func (d *daemon) reopenAccess() {
	if a, err := d.logs.openAccess(d.logCfg); err != nil {
		d.log.Error("cannot reopen the access log", "err", err)
	} else {
		d.srv.SetAccessLogger(a)
		d.log.Info("access log reopened")
	}
}

// leave serves on for shutdown_delay with /healthz failing, so that an
// outer balancer checking it stops sending connections before the
// listeners close (a connection the kernel queued on a listener that then
// closes is reset, and its request is lost). A second SIGTERM or SIGINT
// ends the wait: false means exit at once.
func (d *daemon) leave(sigs chan os.Signal) bool {
	delay := d.srv.ShutdownDelay()
	if delay <= 0 {
		return true
	}
	d.srv.Leave()
	d.log.Info("shutting down after shutdown_delay: /healthz fails, listeners still serve", "delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case s := <-sigs:
			switch s {
			case syscall.SIGTERM, syscall.SIGINT:
				d.log.Warn("second signal: exiting at once", "signal", s.String())
				return false
			case syscall.SIGUSR2:
				d.log.Warn("upgrade refused: this process is stopping")
			}
		}
	}
}

// stop ends the process within shutdown_grace: a shutdown (signal), or a
// step-down after an upgrade, which keeps tunnels until
// they end. A SIGTERM or SIGINT meanwhile ends a shutdown at once, and a
// step-down's wait for tunnels.
func (d *daemon) stop(sigs chan os.Signal, stepDown bool, attrs ...any) int {
	msg := "shutting down"
	if stepDown {
		msg = "stepping down for the new process"
	}
	grace := d.srv.ShutdownGrace()
	d.log.Info(msg, append(attrs, "grace", grace)...)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if stepDown {
			d.srv.StepDown(ctx)
		} else {
			d.srv.Shutdown(ctx)
		}
	}()
	for {
		select {
		case <-done:
			d.logs.close()
			d.log.Info("stopped")
			return 0
		case s := <-sigs:
			switch {
			case (s == syscall.SIGTERM || s == syscall.SIGINT) && stepDown:
				d.log.Info("signal while stepping down: closing the tunnels left", "signal", s.String())
				cancel()
			case s == syscall.SIGTERM || s == syscall.SIGINT:
				d.log.Warn("second signal: exiting at once", "signal", s.String())
				return 1
			case s == syscall.SIGUSR2:
				d.log.Warn("upgrade refused: this process is stopping")
			}
			// SIGHUP or SIGUSR1 while stopping: nothing to reload.
		}
	}
}
