// Command portico is a load balancer for a multi-node appliance cluster:
// round-robin with active health checks, TLS offloading, TCP passthrough with
// the PROXY protocol, endpoint filtering, and reload on SIGHUP.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy"
	"github.com/portico-lb/portico/proxy/filter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// version is the short version for /status, the build_info metric and the
// start-up log line: the module version (a pseudo-version naming the
// commit, for a build from a checkout), or devel and the revision.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	v := "devel"
	if rev := buildSetting(bi, "vcs.revision"); len(rev) >= 12 {
		v += "+" + rev[:12]
	}
	return v
}

// versionLine is what -version prints: the version, then the commit Go
// embedded at build time, its time and whether the tree had changes,
// and the Go release, e.g.
// "portico v0.0.0-20261202172300-8a71d66e1f2a+dirty (revision 8a71d66e1f2a..., 2026-12-02T17:23:00Z, modified; go1.26.8)".
func versionLine(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var vcs []string
	if rev := buildSetting(bi, "vcs.revision"); rev != "" {
		vcs = append(vcs, "revision "+rev)
		if at := buildSetting(bi, "vcs.time"); at != "" {
			vcs = append(vcs, at)
		}
		if buildSetting(bi, "vcs.modified") == "true" {
			vcs = append(vcs, "modified")
		}
	} else {
		vcs = append(vcs, "no VCS information")
	}
	return fmt.Sprintf("portico %s (%s; %s)", v, strings.Join(vcs, ", "), bi.GoVersion)
}

func buildSetting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("portico", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit (0 = valid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	explain := fs.Bool("explain", false, "explain the rule decision for HOST PATH [CLIENT_IP] and exit")
	listener := fs.String("listener", "", "with -explain: the listener whose rules apply (default: the first http/https listener)")
	noFast := fs.Bool("no-fast-path", false, "serve every HTTP/1.1 request through net/http's server and ReverseProxy (diagnosis and comparison)")
	adminURL := fs.String("admin", "", "the admin API's URL, for the commands state and wait-drained")
	tokenFile := fs.String("token-file", "", "with -admin: the file holding the admin API's bearer token")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: portico [-config FILE] [-check] [-version] [-no-fast-path]\n       portico -explain [-config FILE] [-listener NAME] HOST PATH [CLIENT_IP]\n       portico -admin URL -token-file F state POOL SERVER ready|drain|maint\n       portico -admin URL wait-drained POOL SERVER [-timeout 5m]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case *showVersion:
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			fmt.Fprintln(stdout, "portico devel (no build information)")
			return 0
		}
		fmt.Fprintln(stdout, versionLine(bi))
		return 0
	case *check:
		return runCheck(*cfgPath, stdout, stderr)
	case *explain:
		return runExplain(*cfgPath, *listener, fs.Args(), stdout, stderr)
	case *adminURL != "":
		return runAdmin(*adminURL, *tokenFile, fs.Args(), stdout, stderr)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	return serve(*cfgPath, args, *noFast, stderr)
}

func runCheck(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		for _, line := range errorLines(err) {
			fmt.Fprintln(stderr, line)
		}
		fmt.Fprintf(stderr, "%s: configuration is NOT valid\n", path)
		return 1
	}
	// The cap is judged against this process's open-files limit: run
	// -check under the limit portico runs with (systemd's ExecStartPre does).
	connCap := cfg.ConnCap(proxy.ProcessLimits())
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if connCap.Warning != "" {
		fmt.Fprintln(stderr, "warning:", connCap.Warning)
	}
	fmt.Fprintf(stdout, "%s: configuration is valid (%d listeners, %d pools)\n", path, len(cfg.Listeners), len(cfg.Pools))
	fmt.Fprintf(stdout, "connection cap: %s\n", connCap)
	fmt.Fprintf(stdout, "fingerprint: %s\n", cfg.FingerprintHex())
	return 0
}

// errorLines returns one line per configuration problem.
func errorLines(err error) []string {
	if ps := config.Problems(err); len(ps) > 0 {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.Error()
		}
		return out
	}
	return []string{err.Error()}
}

func runExplain(path, listener string, args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || len(args) > 3 {
		fmt.Fprintln(stderr, "usage: portico -explain [-config FILE] [-listener NAME] HOST PATH [CLIENT_IP]")
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		for _, line := range errorLines(err) {
			fmt.Fprintln(stderr, line)
		}
		return 1
	}
	var l *config.Listener
	for _, c := range cfg.Listeners {
		// By name any listener; by default the first that sees requests.
		if listener == "" && c.Mode != config.ModeTCP || listener != "" && c.Name == listener {
			l = c
			break
		}
	}
	if l == nil {
		if listener == "" {
			fmt.Fprintln(stderr, "no http/https listener; name one with -listener")
		} else {
			fmt.Fprintf(stderr, "no such listener %q\n", listener)
		}
		return 1
	}
	client := netip.IPv4Unspecified()
	if len(args) == 3 {
		a, err := netip.ParseAddr(args[2])
		if err != nil {
			fmt.Fprintf(stderr, "bad CLIENT_IP %q: %v\n", args[2], err)
			return 2
		}
		client = a.Unmap()
	}
	if l.Mode == config.ModeTCP {
		return explainTCP(l, client, len(args) == 3, stdout)
	}
	// The verdict is the one every front gets from the same admission
	// function; filter.Explain adds the account of each rule.
	adm := proxy.NewAdmitter(l)
	fmt.Fprintf(stdout, "listener %s (%s, %s)\n", l.Name, l.Mode, l.Bind)
	if len(args) < 3 {
		fmt.Fprintln(stdout, "(no CLIENT_IP given: 0.0.0.0 stands in for the client in allow lists)")
		adm = adm.WithoutAllowList()
	}
	v := adm.Admit(proxy.AdmitRequest{Target: args[1], Host: args[0], Client: client})
	switch v.Reason {
	case "allow":
		fmt.Fprintf(stdout, "listener allow list: %s is NOT in it -> deny (403)\n", client)
	case "limit":
		fmt.Fprintf(stdout, "limits: %s -> deny (%d)\n", v.Message, v.Status)
	default:
		fmt.Fprint(stdout, filter.Explain(adm.Policy(), args[0], args[1], client))
	}
	if v.Limit != nil {
		// -explain's admitter counts nothing: the buckets live in the
		// running portico.
		what := "over it a client gets 429 with Retry-After"
		if v.Exempt {
			what = fmt.Sprintf("%s is exempt, never limited", client)
		}
		fmt.Fprintf(stdout, "rate limit of rule %d: %s; %s\n", v.Decision.Rule, v.Limit, what)
	}
	if v.Allow {
		fmt.Fprintf(stdout, "verdict: forward to the pool as %s%s\n", filter.Escape(v.Canonical), v.Query)
		return 0
	}
	// The exit status carries the verdict, for scripts that test a policy.
	fmt.Fprintf(stdout, "verdict: %d (%s)\n", v.Status, v.Reason)
	return explainDenied
}

// explainTCP explains a tcp listener's verdict on a connection: it sees
// no host or path, so only its allow list applies.
func explainTCP(l *config.Listener, client netip.Addr, haveClient bool, stdout io.Writer) int {
	adm := proxy.NewAdmitter(l)
	fmt.Fprintf(stdout, "listener %s (tcp, %s)\n", l.Name, l.Bind)
	fmt.Fprintln(stdout, "tcp listener: it sees no host or path, so rules do not apply; only its allow list does")
	allow := adm.AllowList()
	switch {
	case allow == nil:
		fmt.Fprintln(stdout, "allow list: none, every client is admitted")
	case !haveClient:
		fmt.Fprintln(stdout, "(no CLIENT_IP given: the allow list is not applied)")
		adm = adm.WithoutAllowList()
	default:
		fmt.Fprintf(stdout, "client: %s\n", client)
		by := ""
		for _, p := range allow {
			if p.Contains(client) {
				by = p.String()
				break
			}
		}
		if by != "" {
			fmt.Fprintf(stdout, "listener allow list: %s is in %s\n", client, by)
		} else {
			fmt.Fprintf(stdout, "listener allow list: %s is NOT in it -> connection closed\n", client)
		}
	}
	if v := adm.AdmitConn(client); !v.Allow {
		fmt.Fprintf(stdout, "verdict: connection closed (%s)\n", v.Reason)
		return explainDenied
	}
	fmt.Fprintln(stdout, "verdict: connection passed to the pool")
	return 0
}

// explainDenied is -explain's exit status when the request would be refused
// (400 or 403); 0 means it would be forwarded.
const explainDenied = 3
