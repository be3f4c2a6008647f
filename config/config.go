// Package config owns portico's configuration: it turns one TOML file into an
// immutable, fully validated *Config. Every problem is reported with its key
// path (and line where it can be found); nothing is parsed at request time.
//
// Invariant: a *Config returned by Load or Parse is complete (every default
// applied, every CIDR compiled, every certificate loaded and matched to its
// key) and is never modified afterwards. Callers share it freely.
//
// Errors: Load and Parse report every problem found, as errors.Join of one
// *Problem (file, line, key path, message) each; Problems returns them.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"time"
)

// DefaultPath is where portico looks for its configuration without -config.
const DefaultPath = "/etc/portico/portico.toml"

// Listener modes.
const (
	ModeHTTP  = "http"
	ModeHTTPS = "https"
	ModeTCP   = "tcp"
	// ModeRedirect answers every request with a redirect to https; it has
	// no pool.
	ModeRedirect = "redirect"
)

// Config is one validated configuration snapshot.
type Config struct {
	// Path is the absolute path of the file this was loaded from ("" for Parse
	// without a file). Relative paths inside the file resolve against its folder.
	Path string
	// Admin is the admin listener (metrics, status, healthz, status page).
	Admin Admin
	// Log configures the process and access logs.
	Log Log
	// Limits are the process-wide limits ([limits]).
	Limits Limits
	// ShutdownGrace is how long in-flight requests may run after SIGTERM
	// before tunnels are closed and the process exits. Default 30s.
	ShutdownGrace time.Duration
	// ShutdownDelay is how long after SIGTERM portico goes on accepting
	// and serving while /healthz fails, so that an outer balancer checking
	// it stops sending new connections before the listeners close.
	// Default 0: the listeners close at once.
	ShutdownDelay time.Duration
	// Listeners in file order; names and binds are unique.
	Listeners []*Listener
	// Pools by name; every listener's Pool names one of these.
	Pools map[string]*Pool
	// PoolNames is the sorted list of pool names, for stable iteration.
	PoolNames []string
	// Fingerprint is a SHA-256 over the configuration's data (not its text:
	// comments, white space and key order do not count) and the content of
	// every file it names and loads (certificates, keys, CA bundles, error
	// pages, the admin token); see fingerprint.go. Equal fingerprints mean a
	// reload would change nothing, and two instances configure the same.
	Fingerprint [32]byte
	// Warnings are non-fatal findings (certificates expiring within 30 days,
	// rule hosts not covered by a listener's certificates, unused pools).
	// -check prints them. Each reads like a Problem: "file:line: key: message".
	Warnings []string
}

// Admin is the [admin] table.
type Admin struct {
	// Bind is the admin listener address. Default "127.0.0.1:9090". "" after
	// `bind = ""` disables the admin listener.
	Bind string
	// Allow restricts admin clients by address. Empty = everyone who can reach Bind.
	Allow []netip.Prefix
	// TokenFile is the file the admin API's bearer token was read from
	// (absolute); "" (default) = no token: every mutating call is refused
	// with 403, the admin API is read-only.
	TokenFile string
	// Token is TokenFile's content without surrounding white space; never
	// empty when TokenFile is set.
	Token string
	// StateFile keeps the servers' run-time admin states across restarts
	// (absolute path); "" (default) = they last until the process ends.
	StateFile string
}

// Limits is the [limits] table.
type Limits struct {
	// MaxConns caps the client connections admitted at once across all
	// listeners; 0 (default) = derived from the open-files limit when the
	// process runs (see ConnCap).
	MaxConns int
	// at places limits.max_conns (file, line, key) for a warning about
	// it, which can only be judged against the running process's
	// open-files limit; zero when the key is absent.
	at Problem
}

// Log is the [log] table.
type Log struct {
	// Format is "json" (default) or "text".
	Format string
	// Level is "debug", "info" (default), "warn" or "error".
	Level string
	// Access turns the access log on (one line per request / TCP connection). Default false.
	Access bool
	// AccessFile, when set, receives the access log instead of stderr; it is
	// reopened on SIGHUP and SIGUSR1 (logrotate). Default "" (stderr).
	AccessFile string
}

// Listener is one [[listener]] table.
type Listener struct {
	Name string
	// Bind is host:port.
	Bind string
	// Mode is ModeHTTP, ModeHTTPS, ModeTCP or ModeRedirect.
	Mode string
	// Pool names the pool that serves this listener ("" for redirect).
	Pool string
	// Certificates (https only, at least one): the first is the default, SNI
	// picks among all by their names.
	Certificates []*Certificate
	// Allow is the client whitelist; nil = everyone. Addresses are matched
	// after IPv4-mapped IPv6 addresses are unmapped.
	Allow []netip.Prefix
	// TrustedProxies are peers whose X-Forwarded-For and PROXY headers are believed.
	TrustedProxies []netip.Prefix
	// AcceptProxyProtocol: every connection must begin with a PROXY v1/v2
	// header from a TrustedProxies source. Requires TrustedProxies.
	AcceptProxyProtocol bool
	// ProxyHeaderTimeout bounds the wait for the PROXY header. Default 5s.
	ProxyHeaderTimeout time.Duration
	// ReadHeaderTimeout: a client must finish its request headers within this. Default 10s.
	ReadHeaderTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake (https). Default 10s.
	TLSHandshakeTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 60s.
	IdleTimeout time.Duration
	// TunnelIdleTimeout closes websockets and tcp connections silent both ways. Default 1h.
	TunnelIdleTimeout time.Duration
	// MaxHeaderBytes caps request line + headers. Default 64 KiB. Over it: 431.
	MaxHeaderBytes int
	// MaxHeaderCount caps the number of request header fields. Default 100. Over it: 431.
	MaxHeaderCount int
	// MaxURLLength caps the request target length. Default 8192. Over it: 414.
	MaxURLLength int
	// MaxConns caps concurrent client connections; 0 = no cap (default).
	MaxConns int
	// MaxConnsPerClient caps concurrent connections from one client
	// address (the peer, or a trusted PROXY header's source); a
	// connection over it is closed. 0 = no cap (default).
	MaxConnsPerClient int
	// Rules are the endpoint rules, in order; empty = no filtering.
	Rules []*Rule
	// HTTPSPort (redirect only) is the port redirects point to; it is
	// left out of the location when 443. Default 443.
	HTTPSPort int
	// ResponseHeaders (not tcp) are set on every answer, replacing the
	// node's fields of the same name, portico's own answers included.
	// Sorted by name. Default none.
	ResponseHeaders []HeaderField
	// RemoveResponseHeaders (not tcp) are canonical field names removed
	// from every answer. Default none.
	RemoveResponseHeaders []string
	// ErrorPages (not tcp) are the bodies of portico's own answers by
	// status, served as text/html; charset=utf-8. Default none: a short
	// text/plain message.
	ErrorPages map[int][]byte
}

// Certificate is one loaded certificate/key pair.
type Certificate struct {
	// CertFile and KeyFile are absolute paths.
	CertFile, KeyFile string
	// Pair is the loaded chain and key; Pair.Leaf is set.
	Pair *tls.Certificate
	// Leaf is the parsed leaf certificate (names, expiry).
	Leaf *x509.Certificate
}

// Rule is one [[listener.rule]]: it matches when Hosts (if any) contains the
// request host (case-insensitive, port and trailing dot ignored) and one of
// Paths is a segment-boundary prefix of the canonical path.
type Rule struct {
	// Hosts are lower-cased, without port or trailing dot, IPv6 without
	// brackets (see NormalizeHost); empty = any host. A leading "*."
	// label ("*.example.com") matches exactly one label, not the apex.
	Hosts []string
	// Paths are prefixes beginning with "/"; empty = every path. They are
	// matched against the path with ";" parameters removed, so they hold
	// no ';'.
	Paths []string
	// IgnoreCase matches Paths ignoring ASCII case, for nodes that route
	// that way.
	IgnoreCase bool
	// Allow are the clients this rule admits; empty = nobody (the rule denies).
	Allow []netip.Prefix
	// Limit, when set, limits the rate of the requests this rule admits,
	// per client. nil = no limit (default).
	Limit *Limit
}

// Pool is one [pool.NAME] table.
type Pool struct {
	Name string
	// Servers are host:port, unique within the pool, in file order.
	Servers []string
	// Members are the same servers with their options: Members[i] is
	// Servers[i]. Names are unique within the pool.
	Members []Server
	// QueueTimeout bounds how long a request waits for a server with a
	// free slot when every ready server is at its max_conns; then 503.
	// Default 5s; 0 = no wait.
	QueueTimeout time.Duration
	// ConnectTimeout bounds a dial to a server; then the next is tried. Default 3s.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for a server's response headers; then 504. Default 60s.
	ResponseTimeout time.Duration
	// SendProxyProtocol is "", "v1" or "v2": a PROXY header written first on
	// every connection to a server (tcp listeners; http/https listeners then
	// never share a server connection between clients).
	SendProxyProtocol string
	// MinHealthy is how many servers must be up for /healthz to answer 200. Default 1.
	MinHealthy int
	// RemovedGrace: tunnels to a server removed by a reload are closed after this. Default 30s.
	RemovedGrace time.Duration
	// Health is the active check.
	Health Health
	// TLS, when set (a tls = { ... } table), makes http/https listeners
	// speak HTTPS to the pool's servers. nil = plain HTTP.
	TLS *NodeTLS
}

// NodeTLS is a pool's tls = { ... } table: TLS from portico to its servers.
type NodeTLS struct {
	// CAFile verifies the servers' certificates; "" = the system roots.
	CAFile string
	// RootCAs is CAFile loaded; nil = the system roots.
	RootCAs *x509.CertPool
	// ServerName is the SNI and the name verified; "" = the request's
	// Host (without port).
	ServerName string
	// SkipVerify turns certificate verification off. Default false.
	SkipVerify bool
	// Certificate is the client certificate presented to the servers
	// (certificate and key files); nil = none.
	Certificate *tls.Certificate
}

// Health is a pool's health = { ... } table.
type Health struct {
	// Path probed with GET. Default "/testall".
	Path string
	// Interval between rounds. Default 5s.
	Interval time.Duration
	// Timeout of one probe. Default 2s.
	Timeout time.Duration
	// Rise consecutive passes bring a server up. Default 2.
	Rise int
	// Fall consecutive failures take a server down. Default 3.
	Fall int
	// Scheme is "http" or "https"; default "https" when the pool has a
	// tls table, else "http".
	Scheme string
	// Port overrides the server's port for the check; 0 = the server's port.
	Port int
	// Host is the Host header and TLS SNI of the check; "" = the server address.
	Host string
	// TLSSkipVerify skips certificate verification of https checks.
	TLSSkipVerify bool
	// CAFile verifies https checks' certificates; "" = the pool's tls
	// ca_file, else the system roots. RootCAs is it loaded.
	CAFile  string
	RootCAs *x509.CertPool
	// ExpectMin and ExpectMax bound the passing status codes. Default 200-399
	// (from expect = "200-399" or expect = "200").
	ExpectMin, ExpectMax int
	// Disabled turns active checks off (health = { enabled = false }).
	Disabled bool
}

// Listener returns the listener with the given name, or nil.
func (c *Config) Listener(name string) *Listener {
	for _, l := range c.Listeners {
		if l.Name == name {
			return l
		}
	}
	return nil
}
