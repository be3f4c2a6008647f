package healthcheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// maxDrain bounds how much of a response body a probe reads: enough to let a
// well-behaved node finish writing, never enough for a chatty one to matter.
const maxDrain = 64 << 10

// HTTPProber checks a node by speaking its wire: TCP, an optional PROXY
// header, optional TLS, then one HTTP/1.1 GET with Connection: close.
// Its zero value probes GET /testall over http and expects 200-399.
type HTTPProber struct {
	// Path requested; "" = DefaultPath ("/testall").
	Path string
	// Host is the Host header and TLS server name; "" = the probed address
	// (with the check port). When "" and the address host is a name, that
	// name is the SNI; an IP address is verified but not sent as SNI.
	Host string
	// Scheme is "http" or "https"; "" = "http".
	Scheme string
	// Port overrides the port of the probed address; 0 = the address's port.
	Port int
	// TLSSkipVerify disables certificate verification for https.
	TLSSkipVerify bool
	// RootCAs verifies https certificates; nil = the system pool.
	RootCAs *x509.CertPool
	// TLS, when set, is the TLS configuration of https checks instead of
	// one made of TLSSkipVerify and RootCAs (a client certificate, the
	// node traffic's settings). Its ServerName, when "", is chosen as
	// Host's documentation says.
	TLS *tls.Config
	// ExpectMin and ExpectMax bound the passing status codes, inclusive.
	// Both 0 = 200-399; ExpectMax 0 alone = ExpectMin exactly.
	ExpectMin, ExpectMax int
	// Timeout bounds the whole probe (dial to last byte); 0 = DefaultTimeout.
	Timeout time.Duration
	// ProxyProtocol is "", "v1" or "v2". When set, the connection begins with
	// a PROXY header, as the node expects from portico: v2 with the LOCAL
	// command, v1 in its "PROXY UNKNOWN\r\n" form. Both mean "this is the
	// proxy itself speaking", so the node does not attribute the check to a
	// client.
	ProxyProtocol string
	// Dial opens the TCP connection; nil = a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Probe performs one check of addr (host:port) and never returns an error:
// the failure is described by Result.Err.
func (p *HTTPProber) Probe(ctx context.Context, addr string) Result {
	start := time.Now()
	status, err := p.probe(ctx, addr)
	r := Result{Status: status, Latency: time.Since(start), At: time.Now()}
	if err != nil {
		r.Err = err.Error()
		r.Local = localError(err)
		return r
	}
	lo, hi := p.expect()
	if status < lo || status > hi {
		r.Err = "status " + strconv.Itoa(status)
		return r
	}
	r.OK = true
	return r
}

// localError reports a failure of the prober's own resources, as the
// kernel names them on socket or connect.
func localError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

func (p *HTTPProber) expect() (lo, hi int) {
	lo, hi = p.ExpectMin, p.ExpectMax
	switch {
	case lo == 0 && hi == 0:
		return 200, 399
	case hi == 0:
		return lo, lo
	}
	return lo, hi
}

func (p *HTTPProber) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultTimeout
}

// probe returns the status code read, with a short error when the exchange
// failed before a status could be judged.
func (p *HTTPProber) probe(parent context.Context, addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("bad address %q", addr)
	}
	if p.Port != 0 {
		port = strconv.Itoa(p.Port)
	}
	addr = net.JoinHostPort(host, port)
	path := p.Path
	if path == "" {
		path = DefaultPath
	}
	hostHdr := p.Host
	if hostHdr == "" {
		hostHdr = addr
	}
	// Refuse anything that would let configuration inject bytes into the
	// request line or headers.
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n") {
		return 0, fmt.Errorf("bad path %q", path)
	}
	if strings.ContainsAny(hostHdr, " \r\n") {
		return 0, fmt.Errorf("bad host %q", hostHdr)
	}
	var header []byte
	switch p.ProxyProtocol {
	case "":
	case "v1", "v2":
		header, err = proxyHeader(p.ProxyProtocol)
		if err != nil {
			return 0, fmt.Errorf("proxy header: %w", err)
		}
	default:
		return 0, fmt.Errorf("unknown proxy protocol %q", p.ProxyProtocol)
	}
	var tlsConf *tls.Config
	switch p.Scheme {
	case "", "http":
	case "https":
		if p.TLS != nil {
			tlsConf = p.TLS.Clone()
			if tlsConf.ServerName == "" {
				tlsConf.ServerName = serverName(p.Host, host)
			}
			break
		}
		tlsConf = &tls.Config{
			ServerName:         serverName(p.Host, host),
			InsecureSkipVerify: p.TLSSkipVerify,
			RootCAs:            p.RootCAs,
		}
	default:
		return 0, fmt.Errorf("unknown scheme %q", p.Scheme)
	}

	timeout := p.timeout()
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	status, err := p.exchange(ctx, addr, header, tlsConf, path, hostHdr)
	if err != nil {
		return status, shorten(ctx, err, timeout)
	}
	return status, nil
}

func (p *HTTPProber) exchange(ctx context.Context, addr string, header []byte, tlsConf *tls.Config, path, host string) (int, error) {
	dial := p.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	// The deadline bounds every read and write; the AfterFunc unblocks them
	// at once if the caller cancels (reload, shutdown) before the deadline.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if header != nil {
		if _, err := conn.Write(header); err != nil {
			return 0, err
		}
	}
	if tlsConf != nil {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return 0, tlsError(err)
		}
		conn = tc
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: portico-health\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errors.New("read response: connection closed")
		}
		return 0, fmt.Errorf("read response: %w", err)
	}
	// Drain a little so the node sees an orderly close rather than a reset;
	// the outcome no longer depends on it.
	io.CopyN(io.Discard, res.Body, maxDrain)
	res.Body.Close()
	return res.StatusCode, nil
}

// proxyHeader renders the PROXY header a check sends: LOCAL/UNSPEC carries
// no addresses, which go-proxyproto renders as "PROXY UNKNOWN\r\n" for v1.
func proxyHeader(version string) ([]byte, error) {
	h := &proxyproto.Header{
		Version:           2,
		Command:           proxyproto.LOCAL,
		TransportProtocol: proxyproto.UNSPEC,
	}
	if version == "v1" {
		h.Version = 1
	}
	return h.Format()
}

// serverName picks the TLS name: the configured Host without a port, else
// the host part of the address. crypto/tls verifies an IP against IP SANs
// and leaves it out of SNI, as the spec requires.
func serverName(hostCfg, addrHost string) string {
	if hostCfg == "" {
		return addrHost
	}
	if h, _, err := net.SplitHostPort(hostCfg); err == nil {
		return h
	}
	return hostCfg
}

func tlsError(err error) error {
	if strings.HasPrefix(err.Error(), "tls: ") {
		return err
	}
	return fmt.Errorf("tls: %w", err)
}

// shorten turns an exchange error into the short reason shown in logs and
// /status, e.g. "connect: connection refused" or "timeout after 2s".
func shorten(ctx context.Context, err error, timeout time.Duration) error {
	// The context decides first: cancellation also surfaces as a deadline
	// error, because cancelling moves the connection's deadline.
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("timeout after %v", timeout)
	case ctx.Err() != nil:
		return errors.New("canceled")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("timeout after %v", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connect: connection refused")
	case errors.Is(err, syscall.ECONNRESET):
		return errors.New("connection reset")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		// Drop the "dial tcp 10.0.0.11:80" prefix: the server is already
		// named in every log line carrying this reason.
		return op.Err
	}
	return err
}
