package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// browser is a headless Chromium driven over the DevTools protocol on one
// websocket; pages are attached in flat mode, so every command carries the
// page's session id.
type cdpBrowser struct {
	conn   *websocket.Conn
	wmu    sync.Mutex // one writer at a time
	mu     sync.Mutex
	nextID int64
	wait   map[int64]chan cdpReply
	dead   chan struct{} // closed when the read loop ends
	err    error         // why it ended
}

type cdpReply struct {
	ID     int64           `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startChromium runs chromium in its own process group, reads the DevTools
// address from its stderr and connects; cleanup kills the group by id.
func startChromium(t testing.TB) *cdpBrowser {
	t.Helper()
	bin := requirePeer(t, "chromium")
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--window-size=1280,900", "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--user-data-dir="+t.TempDir(), "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		logMu  sync.Mutex
		logs   strings.Builder
		wsURL  = make(chan string, 1)
		exited = make(chan struct{})
	)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			logMu.Lock()
			logs.WriteString(l + "\n")
			logMu.Unlock()
			if i := strings.Index(l, "DevTools listening on "); i >= 0 {
				select {
				case wsURL <- strings.TrimSpace(l[i+len("DevTools listening on "):]):
				default:
				}
			}
		}
		cmd.Wait()
		close(exited)
	}()
	chromiumLogs := func() string { logMu.Lock(); defer logMu.Unlock(); return logs.String() }
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", chromiumLogs())
		}
	})
	var url string
	select {
	case url = <-wsURL:
	case <-exited:
		t.Fatalf("chromium exited before it listened:\n%s", chromiumLogs())
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium did not print its DevTools address within 30s:\n%s", chromiumLogs())
	}
	if !strings.HasPrefix(url, "ws://127.0.0.1:") {
		t.Fatalf("chromium's DevTools address %q is not on 127.0.0.1", url)
	}
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("connecting to chromium at %s: %v", url, err)
	}
	b := &cdpBrowser{conn: conn, wait: map[int64]chan cdpReply{}, dead: make(chan struct{})}
	go b.readLoop()
	t.Cleanup(func() { conn.Close(); <-b.dead })
	return b
}

func (b *cdpBrowser) readLoop() {
	var err error
	for {
		var data []byte
		if _, data, err = b.conn.ReadMessage(); err != nil {
			break
		}
		var r cdpReply
		if json.Unmarshal(data, &r) != nil || r.ID == 0 {
			continue // an event; this client does not subscribe to any
		}
		b.mu.Lock()
		ch := b.wait[r.ID]
		delete(b.wait, r.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
	close(b.dead)
}

// call sends one command (to the page session if session != "") and decodes
// the result into out.
func (b *cdpBrowser) call(session, method string, params, out any) error {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.wait[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b.wmu.Lock()
	err := b.conn.WriteJSON(msg)
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-b.dead:
		b.mu.Lock()
		defer b.mu.Unlock()
		return fmt.Errorf("%s: connection to chromium lost: %v", method, b.err)
	case <-timer.C:
		return fmt.Errorf("%s: no answer from chromium within 20s", method)
	}
}

// page is one tab.
type cdpPage struct {
	b       *cdpBrowser
	session string
}

func (b *cdpBrowser) newPage(t testing.TB) *cdpPage {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	return &cdpPage{b: b, session: att.SessionID}
}

func (p *cdpPage) navigate(t testing.TB, url string) {
	t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.b.call(p.session, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		t.Fatal(err)
	}
	if r.ErrorText != "" {
		t.Fatalf("navigating to %s: %s", url, r.ErrorText)
	}
}

// eval runs a JavaScript expression and returns its value.
func (p *cdpPage) eval(expr string) (json.RawMessage, error) {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.b.call(p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return nil, err
	}
	if e := r.ExceptionDetails; e != nil {
		return nil, fmt.Errorf("javascript: %s %s", e.Text, e.Exception.Description)
	}
	return r.Result.Value, nil
}

func (p *cdpPage) state() (pageState, error) {
	var st pageState
	v, err := p.eval(pageStateJS)
	if err != nil {
		return st, err
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return st, fmt.Errorf("page state %s: %w", v, err)
	}
	return st, json.Unmarshal([]byte(s), &st)
}

// waitFor polls the page until cond holds; on timeout the failure message
// carries the page's text.
func (p *cdpPage) waitFor(t testing.TB, d time.Duration, what string, cond func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last pageState
	var lastErr error
	for {
		st, err := p.state()
		if err == nil {
			last, lastErr = st, nil
			if cond(st) {
				return st
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for the status page to show %s (last error: %v)\nrows: %+v\ntransitions: %+v\npage text:\n%s",
				d, what, lastErr, last.Servers, last.Transitions, last.Text)
		}
		<-tick.C
	}
}

func (p *cdpPage) viewport(t testing.TB, w, h int, mobile bool) {
	t.Helper()
	if err := p.b.call(p.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile}, nil); err != nil {
		t.Fatal(err)
	}
}

// screenshot saves a PNG of the page; failing to take one is only logged,
// so it can run from a cleanup after a failure.
func (p *cdpPage) screenshot(t testing.TB, path string) {
	t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	err := p.b.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	var png []byte
	if err == nil {
		png, err = base64.StdEncoding.DecodeString(r.Data)
	}
	if err == nil && len(png) == 0 {
		err = errors.New("empty screenshot")
	}
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		t.Logf("screenshot %s: %v", path, err)
		return
	}
	t.Logf("screenshot: %s", path)
}
