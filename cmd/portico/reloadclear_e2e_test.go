package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// lastReloadSuccess is /status's last_reload.last_success.
func lastReloadSuccess(t *testing.T, admin string) time.Time {
	t.Helper()
	res, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct {
		LastReload struct {
			LastSuccess time.Time `json:"last_success"`
		} `json:"last_reload"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.LastReload.LastSuccess
}

// TestValidReloadClearsReportedFailure: a broken config on SIGHUP shows in
// /status; writing back the identical valid config and sending SIGHUP
// clears it, though nothing changed.
func TestValidReloadClearsReportedFailure(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com", "manage.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	good := coreConf(httpAddr, httpsAddr, admin, serverList(ns))
	p := startPortico(t, dir, good)

	p.reload(strings.Replace(good, `mode = "http"`, "mode = \"http\"\nidle_timout = \"1s\"", 1), "reload failed")
	st := adminStatus(t, admin)
	if st.LastReload.OK || !strings.Contains(st.LastReload.Error, "idle_timout") {
		t.Fatalf("after a broken reload /status says ok=%v error=%q", st.LastReload.OK, st.LastReload.Error)
	}
	failedAt := lastReloadSuccess(t, admin)

	p.reload(good, "reload: configuration unchanged")
	st = adminStatus(t, admin)
	if !st.LastReload.OK || st.LastReload.Error != "" {
		t.Fatalf("after the valid config came back /status says ok=%v error=%q", st.LastReload.OK, st.LastReload.Error)
	}
	if got := lastReloadSuccess(t, admin); !got.After(failedAt) {
		t.Errorf("last_success %v did not move past %v", got, failedAt)
	}
	if st.Generation != 1 {
		t.Errorf("generation %d: an unchanged config is not a new generation", st.Generation)
	}
	if code, _, _ := get(t, client(httpAddr, nil), "http://app/login"); code != 200 {
		t.Errorf("serving after the reloads: %d", code)
	}
}
