package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// statusPageConf is one http listener in front of servers, with an admin listener
// and the given health settings.
func statusPageConf(listen, admin, servers, health string) string {
	return fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "http"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
connect_timeout = "1s"
health = %s
`, admin, listen, servers, health)
}

func TestStatusPageShowsNodeGoingDown(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	a, b := ns[0].Addr(), ns[1].Addr()
	listen, admin := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	conf := strings.Replace(statusPageConf(listen, admin, serverList(ns),
		`{ interval = "300ms", timeout = "250ms", rise = 1, fall = 1 }`),
		"[admin]\n", fmt.Sprintf("[admin]\ntoken_file = %q\n", writeToken(t, dir)), 1)
	p := startPortico(t, dir, conf)

	br := startChromium(t)
	pg := br.newPage(t)
	art := testArtifactDir(t)
	shot := func(name string) string {
		return filepath.Join(art, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	}
	t.Cleanup(func() {
		if t.Failed() {
			pg.screenshot(t, shot("failed"))
		}
	})
	pg.navigate(t, "http://"+admin+"/")

	pg.waitFor(t, 15*time.Second, "both servers shown up", func(s pageState) bool {
		return len(s.Servers) == 2 && s.server(a).is("up") && s.server(b).is("up")
	})
	// The configuration's fingerprint, shortened, to compare instances at a glance.
	fp := statusIdentity(t, admin).Fingerprint[:12]
	pg.waitFor(t, 5*time.Second, "the config fingerprint "+fp, func(s pageState) bool {
		return strings.Contains(s.Text, "config fingerprint") && strings.Contains(s.Text, fp)
	})

	// Traffic until the page shows a request rate for both servers.
	stop := make(chan struct{})
	done := make(chan struct{})
	var mu sync.Mutex
	answered := map[string]int{}
	var failure atomic.Value
	go func() {
		defer close(done)
		c := client(listen, nil)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			res, err := c.Get("http://app.example.com/page")
			if err != nil {
				failure.CompareAndSwap(nil, err.Error())
				continue
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				failure.CompareAndSwap(nil, "status "+res.Status)
				continue
			}
			mu.Lock()
			answered[res.Header.Get("X-Node")]++
			mu.Unlock()
		}
	}()
	pg.waitFor(t, 15*time.Second, "a request rate above 0 for both servers", func(s pageState) bool {
		return s.server(a).rate() > 0 && s.server(b).rate() > 0
	})
	close(stop)
	<-done
	if f := failure.Load(); f != nil {
		t.Fatalf("a request through portico failed: %v", f)
	}
	mu.Lock()
	wantA, wantB := strconv.Itoa(answered["a"]), strconv.Itoa(answered["b"])
	mu.Unlock()
	pg.waitFor(t, 10*time.Second, fmt.Sprintf("request totals a=%s b=%s", wantA, wantB), func(s pageState) bool {
		return s.server(a).Total == wantA && s.server(b).Total == wantB
	})
	pg.screenshot(t, shot("up"))

	// a drained: shown as draining, in a colour of its own, not as down.
	if code, _ := adminCall(t, admin, "PUT", "/pools/nodes/servers/"+a+"/state", drainToken, "drain"); code != http.StatusOK {
		t.Fatalf("drain a: %d", code)
	}
	dst := pg.waitFor(t, 10*time.Second, "a shown draining", func(s pageState) bool {
		return s.server(a).is("drain") && strings.Contains(s.Text, "DRAINING")
	})
	if dr, up := dst.server(a).Color, dst.server(b).Color; dr == "" || dr == up {
		t.Fatalf("a draining is shown in %q, like b up (%q)", dr, up)
	}
	pg.screenshot(t, shot("drain"))
	if code, _ := adminCall(t, admin, "PUT", "/pools/nodes/servers/"+a+"/state", drainToken, "ready"); code != http.StatusOK {
		t.Fatalf("a back to ready: %d", code)
	}
	pg.waitFor(t, 10*time.Second, "a shown up again", func(s pageState) bool { return s.server(a).is("up") })

	// Node b dies: one failed check (300 ms) plus one page refresh (1 s), and
	// a generous margin for a loaded machine running -race.
	killed := time.Now()
	ns[1].Close()
	st := pg.waitFor(t, 10*time.Second, "b shown down, a still up, b's transition listed", func(s pageState) bool {
		return s.server(b).is("down") && s.server(a).is("up") && s.transition(b, "down")
	})
	t.Logf("the page showed b down %v after it died", time.Since(killed).Round(time.Millisecond))
	if st.server(a).is("down") {
		t.Fatalf("a is shown down; page text:\n%s", st.Text)
	}
	// What the operator sees, not only the class: b's state in red, a's in green.
	if got := st.server(b).hue(); got != "red" {
		t.Errorf("b's state is shown in %s, want red", got)
	}
	if got := st.server(a).hue(); got != "green" {
		t.Errorf("a's state is shown in %s, want green", got)
	}
	if !strings.Contains(st.Text, "up 1 / 2") {
		t.Errorf("the pool card does not say \"up 1 / 2\"; page text:\n%s", st.Text)
	}
	pg.screenshot(t, shot("down"))
	pg.viewport(t, 390, 844, true)
	pg.screenshot(t, shot("phone"))
	pg.viewport(t, 1280, 900, false)

	// Portico gone: the page says so instead of showing stale data silently.
	p.stop()
	pg.waitFor(t, 10*time.Second, "the cannot-reach banner", func(s pageState) bool {
		return strings.Contains(strings.ToLower(s.Banner), "cannot reach portico")
	})
	pg.screenshot(t, shot("unreachable"))
}

// pageState is what the test reads from the status page's DOM.
type pageState struct {
	Servers []struct {
		Addr  string `json:"addr"`
		Class string `json:"class"`
		Rate  string `json:"rate"`
		Total string `json:"total"`
		Color string `json:"color"` // the state cell's computed colour, "rgb(r, g, b)"
	} `json:"servers"`
	Transitions []struct {
		Server string `json:"server"`
		Class  string `json:"class"`
		Text   string `json:"text"`
	} `json:"transitions"`
	Banner string `json:"banner"` // "" while hidden
	Text   string `json:"text"`
}

type pageRow struct{ Class, Rate, Total, Color string }

func (s pageState) server(addr string) pageRow {
	for _, r := range s.Servers {
		if r.Addr == addr {
			return pageRow{r.Class, r.Rate, r.Total, r.Color}
		}
	}
	return pageRow{}
}

// hue says which of red and green dominates the colour the browser shows.
func (r pageRow) hue() string {
	var red, green, blue int
	if _, err := fmt.Sscanf(r.Color, "rgb(%d, %d, %d)", &red, &green, &blue); err != nil {
		return "unknown " + r.Color
	}
	switch {
	case red > green+60 && red > blue+60:
		return "red"
	case green > red+60 && green > blue+30:
		return "green"
	}
	return r.Color
}

func (r pageRow) is(class string) bool {
	for _, c := range strings.Fields(r.Class) {
		if c == class {
			return true
		}
	}
	return false
}

func (r pageRow) rate() float64 {
	f, _ := strconv.ParseFloat(r.Rate, 64)
	return f
}

func (s pageState) transition(addr, to string) bool {
	for _, tr := range s.Transitions {
		if tr.Server == addr && (pageRow{Class: tr.Class}).is(to) {
			return true
		}
	}
	return false
}

const pageStateJS = `(() => {
  const attr = (e, sel, a) => { const x = e.querySelector(sel); return x ? (x.getAttribute(a) || "") : ""; };
  const banner = document.getElementById("banner");
  return JSON.stringify({
    servers: Array.from(document.querySelectorAll(".server[data-server]")).map(e => ({
      addr: e.getAttribute("data-server"), class: e.className,
      rate: attr(e, "[data-rate]", "data-rate"), total: attr(e, "[data-total]", "data-total"),
      color: (c => c ? getComputedStyle(c).color : "")(e.querySelector("td.state")) })),
    transitions: Array.from(document.querySelectorAll("#transitions [data-server]")).map(e => ({
      server: e.getAttribute("data-server"), class: e.className, text: e.textContent })),
    banner: banner && !banner.hidden ? banner.textContent : "",
    text: document.body ? document.body.innerText : "",
  });
})()`

// testArtifactDir is $PORTICO_ARTIFACTS when set (kept after the run), else a
// temporary folder.
func testArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PORTICO_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
