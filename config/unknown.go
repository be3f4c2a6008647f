package config

import (
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// checkKeys reports every key the schema does not know (a misspelt key would
// otherwise be ignored and its default silently used), with a suggestion
// when one is close. Keys come from the decoder; the locator supplies their
// array indices and lines. Keys inside an unknown table are not repeated.
// The decoder matches field names case-insensitively, so keys that are
// known only up to case are reported too.
func checkKeys(r *report, undecoded []toml.Key) {
	unknown := make(map[string]bool, len(undecoded))
	kept := undecoded[:0:0]
	for _, k := range undecoded {
		if len(k) > 3 && k[0] == "pool" && k[2] == "servers" {
			continue // a server's table: the servers builder checks its keys
		}
		unknown[k.String()] = true
		kept = append(kept, k)
	}
	undecoded = kept
	var reported []string
	under := func(path string) bool {
		for _, q := range reported {
			if strings.HasPrefix(path, q+".") || strings.HasPrefix(path, q+"[") {
				return true
			}
		}
		return false
	}
	found := map[string]bool{}
	for _, e := range r.loc.entries {
		if len(e.key) == 0 {
			continue
		}
		name := e.key[len(e.key)-1]
		fields := knownFields(e.key[:len(e.key)-1])
		if !unknown[e.key.String()] {
			for _, f := range fields {
				if f != name && strings.EqualFold(f, name) {
					r.errorf(e.path, "unknown key %q: keys are case-sensitive, write %q", name, f)
				}
			}
			continue
		}
		found[e.key.String()] = true
		if under(e.path) {
			continue
		}
		reported = append(reported, e.path)
		r.errorf(e.path, "unknown key %q%s", name, suggest(name, fields))
	}
	// Whatever the locator could not place is still reported, without line.
	for _, k := range undecoded {
		path := k.String()
		if found[path] || under(path) {
			continue
		}
		reported = append(reported, path)
		r.errorf(path, "unknown key %q%s", k[len(k)-1], suggest(k[len(k)-1], knownFields(k[:len(k)-1])))
	}
}

// knownFields lists the keys allowed in the table named by parent.
func knownFields(parent toml.Key) []string {
	var v any
	switch p := strings.Join(parent, "\x00"); {
	case len(parent) == 0:
		v = rawFile{}
	case p == "admin":
		v = rawAdmin{}
	case p == "log":
		v = rawLog{}
	case p == "limits":
		v = rawLimits{}
	case p == "listener":
		v = rawListener{}
	case p == "listener\x00rule":
		v = rawRule{}
	case p == "listener\x00rule\x00limit":
		v = rawLimit{}
	case p == "listener\x00certificates":
		v = rawCert{}
	case len(parent) == 2 && parent[0] == "pool":
		v = rawPool{}
	case len(parent) == 3 && parent[0] == "pool" && parent[2] == "health":
		v = rawHealth{}
	case len(parent) == 3 && parent[0] == "pool" && parent[2] == "tls":
		v = rawNodeTLS{}
	default:
		return nil
	}
	t := reflect.TypeOf(v)
	out := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		out = append(out, t.Field(i).Tag.Get("toml"))
	}
	return out
}

// suggest returns ` (did you mean "x"?)` for the known key closest to name,
// if it is close enough to be a typo.
func suggest(name string, known []string) string {
	best, bestD := "", 3
	if len(name) <= 4 {
		bestD = 2
	}
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
