package config

import (
	"math"
	"strings"
	"testing"
)

// capBase: one listener, the default admin listener, a pool of three
// checked servers and one of two unchecked ones (which need no probes).
const capBase = `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
[pool.p]
servers = ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]
[pool.quiet]
servers = ["127.0.0.1:9003", "127.0.0.1:9004"]
health = { enabled = false }
`

func TestConnCapDerivation(t *testing.T) {
	t.Parallel()
	// reserved for capBase with 2 CPUs and a small limit: 3 stdio + 2
	// access log + 2 poller + 4 tunnel loops + 2 for the listener + 1
	// admin + 3 probes + 16 margin = 33.
	for _, tc := range []struct {
		name      string
		toml      string
		p         Process
		max       int
		source    string
		reserved  int
		warn      string // substring of Warning ("" = none)
		checkLine string // the printed form
	}{
		{"derived from 256", capBase, Process{OpenFiles: 256, CPUs: 2}, 111, CapOpenFiles, 33, "",
			"111 (from the open-files limit 256)"},
		{"more CPUs, more loops", capBase, Process{OpenFiles: 256, CPUs: 8}, 105, CapOpenFiles, 45, "", ""},
		{"no admin listener", "[admin]\nbind = \"\"\n" + capBase, Process{OpenFiles: 256, CPUs: 2}, 112, CapOpenFiles, 32, "", ""},
		{"margin grows with the limit", capBase, Process{OpenFiles: 1 << 20, CPUs: 2}, (1<<20 - 17 - 16384) / 2,
			CapOpenFiles, 17 + 16384, "", ""},
		{"limit too small", capBase, Process{OpenFiles: 20, CPUs: 2}, 1, CapOpenFiles, 33,
			"the open-files limit 20 leaves no room for client connections", ""},
		{"unknown limit", capBase, Process{CPUs: 2}, 0, CapNone, 0, "", "none (the open-files limit is unknown)"},
		{"huge limit, clamped to 2^31-1", capBase, Process{OpenFiles: math.MaxUint64, CPUs: 2},
			(math.MaxInt32 - 17 - math.MaxInt32/64) / 2, CapOpenFiles, 17 + math.MaxInt32/64, "", ""},
		{"explicit, within the limit", "[limits]\nmax_conns = 100\n" + capBase, Process{OpenFiles: 256, CPUs: 2},
			100, CapConfigured, 33, "", "100 (limits.max_conns)"},
		{"explicit, over the limit", "[limits]\nmax_conns = 5000\n" + capBase, Process{OpenFiles: 256, CPUs: 2},
			5000, CapConfigured, 33, "c.toml:2: limits.max_conns: 5000 is more than the open-files limit 256 allows (111)", ""},
		{"explicit, unknown limit", "[limits]\nmax_conns = 5000\n" + capBase, Process{}, 5000, CapConfigured, 0, "", ""},
		{"explicit zero is derived", "[limits]\nmax_conns = 0\n" + capBase, Process{OpenFiles: 256, CPUs: 2},
			111, CapOpenFiles, 33, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.toml), "c.toml", "")
			if err != nil {
				t.Fatal(err)
			}
			got := c.ConnCap(tc.p)
			if got.Max != tc.max || got.Source != tc.source || got.Reserved != tc.reserved || got.OpenFiles != tc.p.OpenFiles {
				t.Errorf("got %+v, want max %d source %q reserved %d", got, tc.max, tc.source, tc.reserved)
			}
			if tc.warn == "" && got.Warning != "" || !strings.Contains(got.Warning, tc.warn) {
				t.Errorf("warning %q, want %q", got.Warning, tc.warn)
			}
			if tc.checkLine != "" && got.String() != tc.checkLine {
				t.Errorf("String() = %q, want %q", got.String(), tc.checkLine)
			}
			if tc.source == CapOpenFiles && got.Warning == "" && 2*got.Derived+got.Reserved > int(min(tc.p.OpenFiles, math.MaxInt32)) {
				t.Errorf("derived %d + reserved %d overrun the limit %d", got.Derived, got.Reserved, tc.p.OpenFiles)
			}
		})
	}
}

func TestLimitsProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		toml, key string
		line      int
		msg       string
	}{
		{"[limits]\nmax_conns = -1\n", "limits.max_conns", 2, "-1 is out of range (minimum 0)"},
		{"[limits]\nmax_conns = \"100\"\n", "limits.max_conns", 2, `want an integer, got string "100"`},
		{"[limits]\nmax_conn = 100\n", "limits.max_conn", 2, `unknown key "max_conn" (did you mean "max_conns"?)`},
		{"limits = 5\n", "limits", 1, "want a table"},
	} {
		_, err := Parse([]byte(tc.toml+capBase), "l.toml", "")
		ps := Problems(err)
		if len(ps) != 1 || ps[0].Key != tc.key || ps[0].Line != tc.line || !strings.Contains(ps[0].Msg, tc.msg) {
			t.Errorf("%q: problems %v; want %s at line %d: %s", tc.toml, ps, tc.key, tc.line, tc.msg)
		}
	}
}
