package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

// TestNewTakesInheritedSockets: New asks Options.Inherited for every bind
// (the listeners' and the admin's), serves on the sockets it returns, binds
// the rest itself; ListenerFiles gives every socket back by bind.
func TestNewTakesInheritedSockets(t *testing.T) {
	t.Parallel()
	handed := map[string]net.Listener{}
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		handed[ln.Addr().String()] = ln
	}
	var binds []string
	for b := range handed {
		binds = append(binds, b)
	}
	slices.Sort(binds)
	web, admin := binds[0], binds[1]
	src := fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "tcp"
pool = "nodes"
[[listener]]
name = "new"
bind = "127.0.0.1:1"
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = ["127.0.0.1:1"]
health = { enabled = false }
`, admin, web)
	cfg, err := config.Parse([]byte(src), "handover.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners[1].Bind = "127.0.0.1:0" // a port of the kernel's choosing
	var asked []string
	s, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Inherited: func(bind string) (net.Listener, error) {
			asked = append(asked, bind)
			return handed[bind], nil // nil for the new bind
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	slices.Sort(asked)
	if want := []string{"127.0.0.1:0", web, admin}; !slices.Equal(asked, want) {
		t.Errorf("New asked for %q, want %q", asked, want)
	}
	if s.slots[web].ln != handed[web] || s.admin.ln != handed[admin] {
		t.Errorf("the handed-over sockets are not the ones serving")
	}
	if s.slots["127.0.0.1:0"].ln.Addr().String() == "127.0.0.1:0" {
		t.Errorf("the new bind was not opened")
	}
	// Reloads bind themselves: New forgot the function.
	if s.inherit != nil {
		t.Errorf("New kept Options.Inherited")
	}

	files, err := s.ListenerFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("ListenerFiles: %d files, want 3", len(files))
	}
	for bind, f := range files {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", bind, err)
		}
		got := ln.Addr().String()
		ln.Close()
		var want string
		switch bind {
		case web, admin:
			want = handed[bind].Addr().String()
		default:
			want = s.slots[bind].ln.Addr().String()
		}
		if got != want {
			t.Errorf("ListenerFiles[%s] is %s, want %s", bind, got, want)
		}
	}
	// The admin listener still answers: the descriptors given out left
	// the sockets usable by this process.
	c, err := net.DialTimeout("tcp", admin, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if len(b) == 0 {
		t.Fatal("no answer from the admin listener after ListenerFiles")
	}
}
