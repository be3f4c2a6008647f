// Package examples holds example configurations (*.toml), the systemd unit
// (portico.service), keepalived for an active/passive pair (keepalived/,
// exercised by cmd/portico's pair test), stand-in appliance nodes (standin)
// and a runnable demo (demo). It has no code of its own; its test loads
// every example.
package examples
