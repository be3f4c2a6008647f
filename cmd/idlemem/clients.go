package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// serverName is the name on the proxies' certificate.
const serverName = "idlemem.test"

// exchangeTimeout bounds one request or echo on a connection.
const exchangeTimeout = 30 * time.Second

// idleConn is one client connection, open and idle between exchanges.
type idleConn interface {
	// exchange does one request (or echo) on the connection and checks
	// its answer.
	exchange() error
	close()
}

// dialFunc opens one connection from src and does its first exchange.
type dialFunc func(ctx context.Context, src net.IP) (idleConn, error)

// dialer returns the dial function of kind: "ws" to the plain listener,
// "http1" to the plain listener, "h2" to the https one.
func dialer(kind string, p *peer, roots *x509.CertPool) (dialFunc, error) {
	switch kind {
	case "ws":
		return func(ctx context.Context, src net.IP) (idleConn, error) { return dialWS(ctx, p.plain, src) }, nil
	case "http1":
		return func(ctx context.Context, src net.IP) (idleConn, error) { return dialH1(ctx, p.plain, src) }, nil
	case "h2":
		tr := &http2.Transport{}
		cfg := &tls.Config{RootCAs: roots, ServerName: serverName, NextProtos: []string{"h2"}}
		return func(ctx context.Context, src net.IP) (idleConn, error) { return dialH2(ctx, tr, cfg, p.tls, src) }, nil
	}
	return nil, fmt.Errorf("unknown kind %q (want ws, http1 or h2)", kind)
}

func netDialer(src net.IP) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
}

// wsConn is a websocket tunnel through the proxy to the node's echo.
type wsConn struct{ c *websocket.Conn }

func dialWS(ctx context.Context, addr string, src net.IP) (idleConn, error) {
	d := websocket.Dialer{NetDialContext: netDialer(src).DialContext, ReadBufferSize: 256, WriteBufferSize: 256}
	c, _, err := d.DialContext(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	w := &wsConn{c: c}
	if err := w.exchange(); err != nil {
		c.Close()
		return nil, err
	}
	return w, nil
}

func (w *wsConn) exchange() error {
	w.c.SetReadDeadline(time.Now().Add(exchangeTimeout))
	w.c.SetWriteDeadline(time.Now().Add(exchangeTimeout))
	defer w.c.SetReadDeadline(time.Time{})
	defer w.c.SetWriteDeadline(time.Time{})
	if err := w.c.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		return fmt.Errorf("ws echo: %w", err)
	}
	if _, got, err := w.c.ReadMessage(); err != nil || string(got) != "x" {
		return fmt.Errorf("ws echo: got %q, %v", got, err)
	}
	return nil
}

func (w *wsConn) close() { w.c.Close() }

// h1Conn is a keep-alive HTTP/1.1 connection.
type h1Conn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialH1(ctx context.Context, addr string, src net.IP) (idleConn, error) {
	c, err := netDialer(src).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &h1Conn{c: c, br: bufio.NewReaderSize(c, 512)}
	if err := h.exchange(); err != nil {
		c.Close()
		return nil, err
	}
	return h, nil
}

func (h *h1Conn) exchange() error {
	h.c.SetDeadline(time.Now().Add(exchangeTimeout))
	defer h.c.SetDeadline(time.Time{})
	if _, err := io.WriteString(h.c, "GET / HTTP/1.1\r\nHost: "+serverName+"\r\n\r\n"); err != nil {
		return fmt.Errorf("http1 request: %w", err)
	}
	res, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return fmt.Errorf("http1 answer: %w", err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("http1 answer body: %w", err)
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("http1 answer: %s", res.Status)
	case res.Close:
		return fmt.Errorf("http1 answer: the proxy closes the connection")
	}
	return nil
}

func (h *h1Conn) close() { h.c.Close() }

// h2Conn is one TLS connection speaking HTTP/2: http2.Transport's
// NewClientConn keeps every client on a TCP connection of its own.
type h2Conn struct{ cc *http2.ClientConn }

func dialH2(ctx context.Context, tr *http2.Transport, cfg *tls.Config, addr string, src net.IP) (idleConn, error) {
	d := tls.Dialer{NetDialer: netDialer(src), Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		c.Close()
		return nil, fmt.Errorf("h2: ALPN chose %q", p)
	}
	cc, err := tr.NewClientConn(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("h2: %w", err)
	}
	h := &h2Conn{cc: cc}
	if err := h.exchange(); err != nil {
		cc.Close()
		return nil, err
	}
	return h, nil
}

func (h *h2Conn) exchange() error {
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+serverName+"/", nil)
	res, err := h.cc.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("h2 request: %w", err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("h2 answer body: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("h2 answer: %s", res.Status)
	}
	return nil
}

func (h *h2Conn) close() { h.cc.Close() }

// openAll opens n connections, at most `parallel` at a time, spread over
// source addresses 127.0.0.2 ... 127.0.0.(1+sources) so that no source
// runs out of ports. It returns the connections that opened (nil where
// one failed), how many failed and the first error.
func openAll(ctx context.Context, dial dialFunc, n, sources, parallel int) ([]idleConn, int, error) {
	conns := make([]idleConn, n)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
		first  error
	)
	sem := make(chan struct{}, parallel)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			src := net.IPv4(127, 0, 0, byte(2+i%sources))
			dctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
			defer cancel()
			c, err := dial(dctx, src)
			if err != nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	return conns, failed, first
}

// closeAll closes every open connection.
func closeAll(conns []idleConn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}
