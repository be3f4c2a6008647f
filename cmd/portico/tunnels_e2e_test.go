package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// namedEcho is a raw TCP server that greets each connection with its name
// and then echoes.
func namedEcho(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func tunnelConf(admin, httpAddr, tcpAddr string, ws, raw []string) string {
	q := func(xs []string) string { return `["` + strings.Join(xs, `", "`) + `"]` }
	return fmt.Sprintf(`
[admin]
bind = %q
[log]
access = true
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "ws"
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "raw"
[pool.ws]
servers = %s
removed_grace = "200ms"
health = { interval = "1h" }
[pool.raw]
servers = %s
removed_grace = "200ms"
health = { enabled = false }
`, admin, httpAddr, tcpAddr, q(ws), q(raw))
}

// TestRemovedServerTunnelsEnd: a reload that removes a server keeps every
// other tunnel running, and ends the removed server's tunnels after
// removed_grace: a websocket with a 1001 "going away" close frame, a tcp
// connection by closing it.
func TestRemovedServerTunnelsEnd(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	raw := []string{namedEcho(t, "r1"), namedEcho(t, "r2")}
	admin, httpAddr, tcpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := startPortico(t, t.TempDir(), tunnelConf(admin, httpAddr, tcpAddr, []string{ns[0].Addr(), ns[1].Addr()}, raw))

	// One websocket to each node.
	ws := map[string]*websocket.Conn{}
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, httpAddr) }}
	for i := 0; len(ws) < 2 && i < 6; i++ {
		c, res, err := d.Dial("ws://app.example.com/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		name := res.Header.Get("X-Node")
		if ws[name] != nil {
			c.Close()
			continue
		}
		ws[name] = c
		defer c.Close()
	}
	// One tcp connection to each raw server.
	tcp := map[string]net.Conn{}
	readers := map[string]*bufio.Reader{}
	for i := 0; len(tcp) < 2 && i < 6; i++ {
		c, err := net.Dial("tcp", tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		name, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimSpace(name)
		if tcp[name] != nil {
			c.Close()
			continue
		}
		tcp[name], readers[name] = c, br
		defer c.Close()
	}
	if ws["a"] == nil || ws["b"] == nil || tcp["r1"] == nil || tcp["r2"] == nil {
		t.Fatalf("round robin did not reach every server: ws %v tcp %v", len(ws), len(tcp))
	}
	echoWS := func(name, msg string) error {
		c := ws[name]
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			return err
		}
		_, got, err := c.ReadMessage()
		if err == nil && string(got) != msg {
			err = fmt.Errorf("echo %q, want %q", got, msg)
		}
		return err
	}
	echoTCP := func(name, msg string) error {
		if _, err := io.WriteString(tcp[name], msg+"\n"); err != nil {
			return err
		}
		got, err := readers[name].ReadString('\n')
		if err == nil && got != msg+"\n" {
			err = fmt.Errorf("echo %q, want %q", got, msg)
		}
		return err
	}
	for _, n := range []string{"a", "b"} {
		if err := echoWS(n, "before"); err != nil {
			t.Fatalf("ws %s before the reload: %v", n, err)
		}
	}
	for _, n := range []string{"r1", "r2"} {
		if err := echoTCP(n, "before"); err != nil {
			t.Fatalf("tcp %s before the reload: %v", n, err)
		}
	}

	p.reload(tunnelConf(admin, httpAddr, tcpAddr, []string{ns[0].Addr()}, raw[:1]), `"generation":2`)

	// The removed node's websocket ends with 1001, not a reset.
	ws["b"].SetReadDeadline(time.Now().Add(15 * time.Second))
	_, _, err := ws["b"].ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("websocket to the removed node ended with %v, want close 1001", err)
	}
	// The removed server's tcp connection is closed.
	if _, err := readers["r2"].ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("tcp connection to the removed server: %v, want EOF", err)
	}
	// The others keep running.
	if err := echoWS("a", "after"); err != nil {
		t.Errorf("ws a after the reload: %v", err)
	}
	if err := echoTCP("r1", "after"); err != nil {
		t.Errorf("tcp r1 after the reload: %v", err)
	}
	// The access log is written when the tunnel ends, through a buffered
	// sink: poll for the record.
	eventually(t, 5*time.Second, "the access log to say why the tunnel was closed", func() bool {
		return strings.Contains(p.Logs(), `"closed":"server removed from pool"`)
	})
}
