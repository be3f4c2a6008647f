package examples

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestUnitSupportsUpgrades: the shipped unit lets a binary upgrade work.
// The new process announces itself with MAINPID= and READY=1, which
// systemd takes from a process it did not start only with
// NotifyAccess=all; without it systemd would stop the unit when the old
// process exits. Reload stays SIGHUP, and the comment gives the upgrade
// command with --kill-whom=main (a new process still starting dies of a
// SIGUSR2 sent to the whole unit).
func TestUnitSupportsUpgrades(t *testing.T) {
	t.Parallel()
	f, err := os.Open("portico.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	service := map[string][]string{}
	var comments strings.Builder
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#"):
			comments.WriteString(line + "\n")
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			if k, v, ok := strings.Cut(line, "="); ok {
				service[k] = append(service[k], v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Type": "notify", "NotifyAccess": "all"}
	for k, v := range want {
		if got := service[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if km := service["KillMode"]; len(km) > 0 && km[len(km)-1] != "control-group" && km[len(km)-1] != "mixed" {
		t.Errorf("KillMode = %q: a stop must reach an old process still stepping down", km)
	}
	reload := strings.Join(service["ExecReload"], "\n")
	if !strings.Contains(reload, "kill -HUP $MAINPID") {
		t.Errorf("ExecReload %q does not send SIGHUP to the main process", reload)
	}
	if !strings.Contains(comments.String(), "systemctl kill --kill-whom=main --signal=SIGUSR2 portico") {
		t.Errorf("the unit's comment does not give the upgrade command")
	}
}
