package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServersWithOptions(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(web+`[pool.p]
servers = [
  "127.0.0.1:9000",
  { address = "127.0.0.1:9001", name = "node2", state = "drain", max_conns = 2 },
  { address = "[::1]:9002", state = "maint" },
]
queue_timeout = "250ms"
`), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pools["p"]
	want := []Server{
		{Address: "127.0.0.1:9000", Name: "127.0.0.1:9000", State: StateReady},
		{Address: "127.0.0.1:9001", Name: "node2", State: StateDrain, MaxConns: 2},
		{Address: "[::1]:9002", Name: "[::1]:9002", State: StateMaint},
	}
	if len(p.Members) != len(want) {
		t.Fatalf("members %+v", p.Members)
	}
	for i, w := range want {
		if p.Members[i] != w || p.Servers[i] != w.Address {
			t.Errorf("server %d: %+v (%s), want %+v", i, p.Members[i], p.Servers[i], w)
		}
	}
	if p.QueueTimeout != 250*time.Millisecond {
		t.Errorf("queue_timeout %v", p.QueueTimeout)
	}
}

func TestQueueTimeoutDefault(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(web+poolP), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Pools["p"].QueueTimeout; got != 5*time.Second {
		t.Errorf("queue_timeout default %v, want 5s", got)
	}
	if m := c.Pools["p"].Members; len(m) != 1 || m[0].State != StateReady || m[0].Name != "127.0.0.1:9000" {
		t.Errorf("members %+v", m)
	}
}

// Each problem in a server table names its key and line.
func TestBrokenServers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, servers, key string
		line               int
		msg                string
	}{
		{"bad state", `{ address = "127.0.0.1:9000", state = "off" }`, "pool.p.servers[1].state", 9, `unknown value "off"`},
		{"negative max_conns", `{ address = "127.0.0.1:9000", max_conns = -1 }`, "pool.p.servers[1].max_conns", 9, "out of range"},
		{"no address", `{ name = "n" }`, "pool.p.servers[1].address", 9, "missing"},
		{"bad address", `{ address = "127.0.0.1" }`, "pool.p.servers[1].address", 9, `invalid server "127.0.0.1"`},
		{"unknown key", `{ address = "127.0.0.1:9000", weight = 3 }`, "pool.p.servers[1].weight", 9, `unknown key "weight"`},
		{"duplicate name", `{ address = "127.0.0.1:9000", name = "a" }`, "pool.p.servers[1].name", 9, `duplicate server name "a"`},
		{"bad name", `{ address = "127.0.0.1:9000", name = "a b" }`, "pool.p.servers[1].name", 9, "invalid server name"},
		{"wrong type", `42`, "pool.p.servers[1]", 9, "integer 42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := web + "[pool.p]\nservers = [\n  { address = \"127.0.0.1:9009\", name = \"a\" },\n  " + tc.servers + ",\n]\n"
			_, err := Parse([]byte(src), "t.toml", t.TempDir())
			ps := Problems(err)
			if len(ps) == 0 {
				t.Fatalf("no problem for %s", tc.servers)
			}
			p := ps[0]
			if p.Key != tc.key || p.Line != tc.line || !strings.Contains(p.Msg, tc.msg) {
				t.Errorf("got %s:%d %q, want %s:%d containing %q", p.Key, p.Line, p.Msg, tc.key, tc.line, tc.msg)
			}
		})
	}
}

func TestAdminTokenAndStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("[admin]\ntoken_file = \"token\"\nstate_file = \"state.json\"\n"+web+poolP), "t.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != "s3cret" || c.Admin.TokenFile != filepath.Join(dir, "token") ||
		c.Admin.StateFile != filepath.Join(dir, "state.json") || len(c.Warnings) != 0 {
		t.Errorf("admin %+v, warnings %q", c.Admin, c.Warnings)
	}

	// group/world readable: a warning naming the file
	if err := os.Chmod(filepath.Join(dir, "token"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte("[admin]\ntoken_file = \"token\"\n"+web+poolP), "t.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "t.toml:2: admin.token_file") || !strings.Contains(c.Warnings[0], "chmod 600") {
		t.Errorf("warnings %q", c.Warnings)
	}

	// missing file: an error at the key
	_, err = Parse([]byte("[admin]\ntoken_file = \"nope\"\n"+web+poolP), "t.toml", dir)
	if ps := Problems(err); len(ps) != 1 || ps[0].Key != "admin.token_file" || ps[0].Line != 2 {
		t.Errorf("missing token file: %v", err)
	}
}
