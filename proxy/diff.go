package proxy

import (
	"bytes"
	"reflect"
	"slices"

	"github.com/portico-lb/portico/config"
)

// diffAttrs names what a reload changed, for its one log line: listeners
// added, removed or changed (bind, mode, pool, allow lists, timeouts,
// limits), the listeners whose rules or certificates changed, binds
// closed, pools added, removed or changed (timeouts, PROXY header, ...),
// servers added and removed (pool/server), the pools whose health check
// changed, and the other sections that changed (admin, log, limits,
// shutdown_grace). A reload of an identical file never gets here. It is
// one flat comparison per section, in the order of the log line's fields.
func diffAttrs(old, cfg *config.Config, removedBinds []string) []any {
	var added, removed, changed, rules, certs []string
	for _, l := range cfg.Listeners {
		ol := old.Listener(l.Name)
		if ol == nil {
			added = append(added, l.Name)
			continue
		}
		if !reflect.DeepEqual(ol.Rules, l.Rules) {
			rules = append(rules, l.Name)
		}
		if !sameCertificates(ol.Certificates, l.Certificates) {
			certs = append(certs, l.Name)
		}
		a, b := *ol, *l
		a.Rules, b.Rules, a.Certificates, b.Certificates = nil, nil, nil, nil
		if !reflect.DeepEqual(a, b) {
			changed = append(changed, l.Name)
		}
	}
	for _, l := range old.Listeners {
		if cfg.Listener(l.Name) == nil {
			removed = append(removed, l.Name)
		}
	}
	var poolsAdded, poolsRemoved, poolsChanged, serversAdded, serversRemoved, serversChanged, health []string
	for _, name := range cfg.PoolNames {
		op, ok := old.Pools[name]
		if !ok {
			poolsAdded = append(poolsAdded, name)
			continue
		}
		np := cfg.Pools[name]
		for _, s := range np.Servers {
			if !slices.Contains(op.Servers, s) {
				serversAdded = append(serversAdded, name+"/"+s)
			}
		}
		for _, s := range op.Servers {
			if !slices.Contains(np.Servers, s) {
				serversRemoved = append(serversRemoved, name+"/"+s)
			}
		}
		for _, m := range np.Members {
			if i := slices.IndexFunc(op.Members, func(o config.Server) bool { return o.Address == m.Address }); i >= 0 && op.Members[i] != m {
				serversChanged = append(serversChanged, name+"/"+m.Name)
			}
		}
		if !reflect.DeepEqual(op.Health, np.Health) {
			health = append(health, name)
		}
		a, b := *op, *np
		a.Servers, b.Servers, a.Health, b.Health = nil, nil, config.Health{}, config.Health{}
		a.Members, b.Members = nil, nil
		if !reflect.DeepEqual(a, b) {
			poolsChanged = append(poolsChanged, name)
		}
	}
	for _, name := range old.PoolNames {
		if _, ok := cfg.Pools[name]; !ok {
			poolsRemoved = append(poolsRemoved, name)
		}
	}
	var other []string
	if !reflect.DeepEqual(old.Admin, cfg.Admin) {
		other = append(other, "admin")
	}
	if old.Log != cfg.Log {
		other = append(other, "log")
	}
	if old.Limits.MaxConns != cfg.Limits.MaxConns {
		other = append(other, "limits")
	}
	if old.ShutdownGrace != cfg.ShutdownGrace {
		other = append(other, "shutdown_grace")
	}
	if old.ShutdownDelay != cfg.ShutdownDelay {
		other = append(other, "shutdown_delay")
	}
	attrs := []any{}
	add := func(k string, v []string) {
		if len(v) > 0 {
			attrs = append(attrs, k, v)
		}
	}
	add("listeners_added", added)
	add("listeners_removed", removed)
	add("listeners_changed", changed)
	add("rules_changed", rules)
	add("certificates_changed", certs)
	add("binds_closed", removedBinds)
	add("pools_added", poolsAdded)
	add("pools_removed", poolsRemoved)
	add("pools_changed", poolsChanged)
	add("servers_added", serversAdded)
	add("servers_removed", serversRemoved)
	add("servers_changed", serversChanged)
	add("health_changed", health)
	add("settings_changed", other)
	if len(attrs) == 0 {
		// the file changed, its meaning did not (comments, order, spelling)
		attrs = append(attrs, "changes", "none in effect")
	}
	return attrs
}

// sameCertificates reports two listeners' certificate lists as the same:
// the same files, holding the same certificates (a renewal replaces the
// files and keeps their names).
func sameCertificates(a, b []*config.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *config.Certificate) bool {
		return x.CertFile == y.CertFile && x.KeyFile == y.KeyFile && sameLeaf(x, y)
	})
}

func sameLeaf(x, y *config.Certificate) bool {
	if x.Leaf == nil || y.Leaf == nil {
		return x.Leaf == y.Leaf
	}
	return bytes.Equal(x.Leaf.Raw, y.Leaf.Raw)
}
