package proxy

import (
	"slices"

	"github.com/portico-lb/portico/config"
)

// diffAttrs summarises what a reload changed, for its one log line.
func diffAttrs(old, cfg *config.Config, removedBinds []string) []any {
	var added, removed, changed []string
	for _, l := range cfg.Listeners {
		if ol := old.Listener(l.Name); ol == nil {
			added = append(added, l.Name)
		} else if ol.Bind != l.Bind || ol.Mode != l.Mode || ol.Pool != l.Pool || len(ol.Rules) != len(l.Rules) ||
			len(ol.Certificates) != len(l.Certificates) {
			changed = append(changed, l.Name)
		}
	}
	for _, l := range old.Listeners {
		if cfg.Listener(l.Name) == nil {
			removed = append(removed, l.Name)
		}
	}
	var poolsAdded, poolsRemoved, serversAdded, serversRemoved []string
	for _, name := range cfg.PoolNames {
		op, ok := old.Pools[name]
		if !ok {
			poolsAdded = append(poolsAdded, name)
			continue
		}
		for _, s := range cfg.Pools[name].Servers {
			if !slices.Contains(op.Servers, s) {
				serversAdded = append(serversAdded, name+"/"+s)
			}
		}
		for _, s := range op.Servers {
			if !slices.Contains(cfg.Pools[name].Servers, s) {
				serversRemoved = append(serversRemoved, name+"/"+s)
			}
		}
	}
	for _, name := range old.PoolNames {
		if _, ok := cfg.Pools[name]; !ok {
			poolsRemoved = append(poolsRemoved, name)
		}
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
	add("binds_closed", removedBinds)
	add("pools_added", poolsAdded)
	add("pools_removed", poolsRemoved)
	add("servers_added", serversAdded)
	add("servers_removed", serversRemoved)
	if len(attrs) == 0 {
		attrs = append(attrs, "changes", "settings only")
	}
	return attrs
}
