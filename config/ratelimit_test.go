package config

import (
	"strings"
	"testing"
	"time"
)

// limitConf is web (lines 1-5) with one rule (lines 6-8) whose limit is
// on line 9, then extra listener lines, then the pool.
func limitConf(limit, listenerExtra string) string {
	return web + listenerExtra + `  [[listener.rule]]
  paths = ["/login"]
  allow = ["0.0.0.0/0", "::/0"]
  limit = ` + limit + "\n" + poolP
}

func TestLimitParsed(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(limitConf(`{ rate = "20/m", burst = 40, by = "client", exempt = ["10.0.0.0/8"] }`,
		"max_conns_per_client = 8\n")), "l.toml", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	l := c.Listeners[0].Rules[0].Limit
	if l == nil || l.Count != 20 || l.Per != time.Minute || l.Burst != 40 || l.By != "client" ||
		l.Clients != DefaultLimitClients || len(l.Exempt) != 1 || l.Exempt[0].String() != "10.0.0.0/8" {
		t.Fatalf("limit %+v", l)
	}
	if got, want := l.String(), "20/m, burst 40, per client, 100000 clients, exempt 10.0.0.0/8"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if c.Listeners[0].MaxConnsPerClient != 8 {
		t.Errorf("max_conns_per_client = %d", c.Listeners[0].MaxConnsPerClient)
	}
	// burst defaults to the rate's count
	c, err = Parse([]byte(limitConf(`{ rate = "5/s" }`, "")), "l.toml", "")
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0].Rules[0].Limit; l.Burst != 5 || l.PerSecond() != 5 {
		t.Errorf("limit %+v", l)
	}
	if c.Listeners[0].Rules[0].Limit == nil || c.Listeners[0].MaxConnsPerClient != 0 {
		t.Error("defaults")
	}
}

func TestLimitErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		limit, extra string
		key          string
		line         int
		msg          string
	}{
		{`{ burst = 4 }`, "", "listener[0].rule[0].limit.rate", 9, "missing: a limit needs a rate"},
		{`{ rate = "20/x" }`, "", "listener[0].rule[0].limit.rate", 9, `invalid rate "20/x": unknown unit "x"`},
		{`{ rate = "20" }`, "", "listener[0].rule[0].limit.rate", 9, `want "N/s", "N/m" or "N/h"`},
		{`{ rate = "0/s" }`, "", "listener[0].rule[0].limit.rate", 9, `the count "0" must be a positive whole number`},
		{`{ rate = "1.5/s" }`, "", "listener[0].rule[0].limit.rate", 9, `the count "1.5" must be a positive`},
		{`{ rate = 20 }`, "", "listener[0].rule[0].limit.rate", 9, "want a string, got integer 20"},
		{`{ rate = "20/m", burst = 0 }`, "", "listener[0].rule[0].limit.burst", 9, "0 is out of range (minimum 1)"},
		{`{ rate = "20/m", clients = 0 }`, "", "listener[0].rule[0].limit.clients", 9, "0 is out of range (minimum 1)"},
		{`{ rate = "20/m", by = "host" }`, "", "listener[0].rule[0].limit.by", 9, `unknown value "host" (want "client")`},
		{`{ rate = "20/m", exempt = ["10.1.0.0/8"] }`, "", "listener[0].rule[0].limit.exempt[0]", 9, "host bits are set"},
		{`{ rate = "20/m", exempt = ["ops"] }`, "", "listener[0].rule[0].limit.exempt[0]", 9, `invalid CIDR "ops"`},
		{`{ rate = "20/m", brust = 3 }`, "", "listener[0].rule[0].limit.brust", 9, `unknown key "brust" (did you mean "burst"?)`},
		{`{ rate = "20/m" }`, "max_conns_per_client = -1\n", "listener[0].max_conns_per_client", 6, "-1 is out of range (minimum 0)"},
	} {
		_, err := Parse([]byte(limitConf(c.limit, c.extra)), "l.toml", "")
		ps := Problems(err)
		found := false
		for _, p := range ps {
			if p.Key == c.key && p.Line == c.line && strings.Contains(p.Msg, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s: want %s:%d %q, got %v", c.limit, c.extra, c.key, c.line, c.msg, err)
		}
	}
}

// Each -check warning about limits, and a limit that gets none.
func TestLimitWarnings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"sound", limitConf(`{ rate = "20/m", burst = 40 }`, "max_conns = 100\nmax_conns_per_client = 10\n"), nil},
		{"limit on a deny rule", web + `  [[listener.rule]]
  paths = ["/admin"]
  limit = { rate = "20/m" }
` + poolP, []string{"l.toml:8: listener[0].rule[0].limit: the rule denies every client, so its limit never applies"}},
		{"every admitted client exempt", web + `  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.1.0.0/16"]
  limit = { rate = "20/m", exempt = ["10.0.0.0/8"] }
` + poolP, []string{"listener[0].rule[0].limit.exempt: every client the rule admits is exempt"}},
		{"burst below the rate per second", limitConf(`{ rate = "100/s", burst = 10 }`, ""),
			[]string{"listener[0].rule[0].limit.burst: burst 10 is below the rate's 100 requests a second"}},
		{"few clients", limitConf(`{ rate = "20/m", clients = 50 }`, ""),
			[]string{"listener[0].rule[0].limit.clients: clients = 50: a client with more addresses than that"}},
		{"per-client cap not below max_conns", limitConf(`{ rate = "20/m" }`, "max_conns = 10\nmax_conns_per_client = 10\n"),
			[]string{"l.toml:7: listener[0].max_conns_per_client: 10 is not below max_conns (10)"}},
	} {
		cfg, err := Parse([]byte(c.src), "l.toml", "")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(cfg.Warnings) != len(c.want) {
			t.Errorf("%s: warnings:\n%s", c.name, strings.Join(cfg.Warnings, "\n"))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(cfg.Warnings[i], w) {
				t.Errorf("%s: warning %q lacks %q", c.name, cfg.Warnings[i], w)
			}
		}
	}
}
