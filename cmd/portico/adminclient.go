package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The admin API's client: the same binary sets a server's admin state and
// waits for it to drain, for scripts (an Ansible loop over the nodes).
//
//	portico -admin URL -token-file F state POOL SERVER ready|drain|maint
//	portico -admin URL wait-drained POOL SERVER [-timeout 5m]
//
// Exit status: 0 done, 1 refused, failed or timed out, 2 bad arguments.

// serverState is the part of the admin API's server status the client reads.
type serverState struct {
	Pool       string `json:"pool"`
	Name       string `json:"name"`
	AdminState string `json:"admin_state"`
	InFlight   int64  `json:"in_flight"`
	Tunnels    int64  `json:"tunnels"`
}

func runAdmin(base, tokenFile string, args []string, stdout, stderr io.Writer) int {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimSuffix(base, "/")
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: portico -admin URL [-token-file F] state POOL SERVER ready|drain|maint\n       portico -admin URL wait-drained POOL SERVER [-timeout 5m]")
		return 2
	}
	c := &http.Client{Timeout: 30 * time.Second}
	switch args[0] {
	case "state":
		if len(args) != 4 {
			fmt.Fprintln(stderr, "usage: portico -admin URL -token-file F state POOL SERVER ready|drain|maint")
			return 2
		}
		token := ""
		if tokenFile != "" {
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				fmt.Fprintf(stderr, "token file: %v\n", err)
				return 1
			}
			token = strings.TrimSpace(string(b))
		}
		st, err := putState(c, stateURL(base, args[1], args[2]), token, args[3])
		if err != nil {
			fmt.Fprintf(stderr, "portico: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s/%s: %s (%d requests, %d tunnels)\n", st.Pool, st.Name, st.AdminState, st.InFlight, st.Tunnels)
		return 0
	case "wait-drained":
		fs := flag.NewFlagSet("wait-drained", flag.ContinueOnError)
		fs.SetOutput(stderr)
		timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long (exit 1)")
		// POOL SERVER, with -timeout before or after them
		rest := args[1:]
		var pos []string
		for len(rest) > 0 {
			if err := fs.Parse(rest); err != nil {
				return 2
			}
			rest = fs.Args()
			if len(rest) > 0 {
				pos, rest = append(pos, rest[0]), rest[1:]
			}
		}
		if len(pos) != 2 {
			fmt.Fprintln(stderr, "usage: portico -admin URL wait-drained POOL SERVER [-timeout 5m]")
			return 2
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		st, err := waitDrained(ctx, c, stateURL(base, pos[0], pos[1]))
		if err != nil {
			fmt.Fprintf(stderr, "portico: %s/%s: %v\n", pos[0], pos[1], err)
			return 1
		}
		fmt.Fprintf(stdout, "%s/%s: drained (%s)\n", st.Pool, st.Name, st.AdminState)
		return 0
	}
	fmt.Fprintf(stderr, "portico: unknown admin command %q (want state or wait-drained)\n", args[0])
	return 2
}

func stateURL(base, pool, server string) string {
	return base + "/pools/" + url.PathEscape(pool) + "/servers/" + url.PathEscape(server) + "/state"
}

func putState(c *http.Client, u, token, state string) (serverState, error) {
	req, err := http.NewRequest(http.MethodPut, u, strings.NewReader(state))
	if err != nil {
		return serverState{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doState(c, req)
}

func doState(c *http.Client, req *http.Request) (serverState, error) {
	res, err := c.Do(req)
	if err != nil {
		return serverState{}, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return serverState{}, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, res.Status, strings.TrimSpace(string(body)))
	}
	var st serverState
	if err := json.Unmarshal(body, &st); err != nil {
		return serverState{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return st, nil
}

// waitDrained polls the server's state until it holds no requests and no
// tunnels, or ctx ends.
func waitDrained(ctx context.Context, c *http.Client, u string) (serverState, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last serverState
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return last, err
		}
		st, err := doState(c, req)
		switch {
		case err == nil && st.InFlight == 0 && st.Tunnels == 0:
			return st, nil
		case err == nil:
			last = st
		case ctx.Err() == nil:
			return last, err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return last, fmt.Errorf("not drained in time: %d requests, %d tunnels", last.InFlight, last.Tunnels)
			}
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}
