package config

import (
	"fmt"
	"math"
	"time"
)

// The raw structs mirror the TOML schema. Every leaf is a field, which takes
// any TOML value: a value of the wrong type becomes a Problem naming its key
// instead of stopping the decoder, and field.set tells an absent key (which
// gets the default) from a present one.

type rawFile struct {
	ShutdownGrace field              `toml:"shutdown_grace"`
	ShutdownDelay field              `toml:"shutdown_delay"`
	Admin         rawAdmin           `toml:"admin"`
	Limits        rawLimits          `toml:"limits"`
	Log           rawLog             `toml:"log"`
	Listener      []rawListener      `toml:"listener"`
	Pool          map[string]rawPool `toml:"pool"`
}

type rawAdmin struct {
	Bind      field `toml:"bind"`
	Allow     field `toml:"allow"`
	TokenFile field `toml:"token_file"`
	StateFile field `toml:"state_file"`
}

type rawLimits struct {
	MaxConns field `toml:"max_conns"`
}

type rawLog struct {
	Format     field `toml:"format"`
	Level      field `toml:"level"`
	Access     field `toml:"access"`
	AccessFile field `toml:"access_file"`
}

type rawListener struct {
	Name                field     `toml:"name"`
	Bind                field     `toml:"bind"`
	Mode                field     `toml:"mode"`
	Pool                field     `toml:"pool"`
	Certificates        []rawCert `toml:"certificates"`
	Allow               field     `toml:"allow"`
	TrustedProxies      field     `toml:"trusted_proxies"`
	AcceptProxyProtocol field     `toml:"accept_proxy_protocol"`
	ProxyHeaderTimeout  field     `toml:"proxy_header_timeout"`
	ReadHeaderTimeout   field     `toml:"read_header_timeout"`
	TLSHandshakeTimeout field     `toml:"tls_handshake_timeout"`
	IdleTimeout         field     `toml:"idle_timeout"`
	TunnelIdleTimeout   field     `toml:"tunnel_idle_timeout"`
	MaxHeaderBytes      field     `toml:"max_header_bytes"`
	MaxHeaderCount      field     `toml:"max_header_count"`
	MaxURLLength        field     `toml:"max_url_length"`
	MaxConns            field     `toml:"max_conns"`
	MaxConnsPerClient   field     `toml:"max_conns_per_client"`
	HTTPSPort           field     `toml:"https_port"`
	ResponseHeaders     field     `toml:"response_headers"`
	RemoveHeaders       field     `toml:"remove_response_headers"`
	ErrorPages          field     `toml:"error_pages"`
	Rule                []rawRule `toml:"rule"`
}

type rawCert struct {
	Cert field `toml:"cert"`
	Key  field `toml:"key"`
}

type rawRule struct {
	Hosts      field     `toml:"hosts"`
	Paths      field     `toml:"paths"`
	Allow      field     `toml:"allow"`
	IgnoreCase field     `toml:"ignore_case"`
	Limit      *rawLimit `toml:"limit"`
}

type rawPool struct {
	Servers           field       `toml:"servers"`
	ConnectTimeout    field       `toml:"connect_timeout"`
	ResponseTimeout   field       `toml:"response_timeout"`
	SendProxyProtocol field       `toml:"send_proxy_protocol"`
	MinHealthy        field       `toml:"min_healthy"`
	RemovedGrace      field       `toml:"removed_grace"`
	QueueTimeout      field       `toml:"queue_timeout"`
	Health            rawHealth   `toml:"health"`
	TLS               *rawNodeTLS `toml:"tls"`
}

type rawNodeTLS struct {
	CAFile      field `toml:"ca_file"`
	ServerName  field `toml:"server_name"`
	SkipVerify  field `toml:"skip_verify"`
	Certificate field `toml:"certificate"`
	Key         field `toml:"key"`
}

type rawHealth struct {
	Enabled       field `toml:"enabled"`
	Path          field `toml:"path"`
	Interval      field `toml:"interval"`
	Timeout       field `toml:"timeout"`
	Rise          field `toml:"rise"`
	Fall          field `toml:"fall"`
	Scheme        field `toml:"scheme"`
	Port          field `toml:"port"`
	Host          field `toml:"host"`
	TLSSkipVerify field `toml:"tls_skip_verify"`
	CAFile        field `toml:"ca_file"`
	Expect        field `toml:"expect"`
}

// field is one TOML leaf value, kept as decoded until it is checked.
type field struct {
	set bool
	v   any
}

// UnmarshalTOML implements toml.Unmarshaler.
func (f *field) UnmarshalTOML(v any) error {
	f.set, f.v = true, v
	return nil
}

// describe names a decoded TOML value's type for messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date/time"
}

// The getters below return the field's value, or def when the key is absent;
// a wrong type is reported at key and def returned.

func (r *report) str(f field, key, def string) string {
	if !f.set {
		return def
	}
	s, ok := f.v.(string)
	if !ok {
		r.errorf(key, "want a string, got %s", describe(f.v))
		return def
	}
	return s
}

func (r *report) boolean(f field, key string, def bool) bool {
	if !f.set {
		return def
	}
	b, ok := f.v.(bool)
	if !ok {
		r.errorf(key, "want true or false, got %s", describe(f.v))
		return def
	}
	return b
}

// integer also checks min <= value <= max.
func (r *report) integer(f field, key string, def, min, max int) int {
	if !f.set {
		return def
	}
	n, ok := f.v.(int64)
	if !ok {
		r.errorf(key, "want an integer, got %s", describe(f.v))
		return def
	}
	if n < int64(min) || n > int64(max) {
		if max == math.MaxInt32 {
			r.errorf(key, "%d is out of range (minimum %d)", n, min)
		} else {
			r.errorf(key, "%d is out of range (%d to %d)", n, min, max)
		}
		return def
	}
	return int(n)
}

// duration parses a Go duration string ("5s", "1h30m"). It must be positive,
// or with zeroOK at least zero.
func (r *report) duration(f field, key string, def time.Duration, zeroOK bool) time.Duration {
	if !f.set {
		return def
	}
	s, ok := f.v.(string)
	if !ok {
		r.errorf(key, "want a duration string such as \"5s\", got %s", describe(f.v))
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		r.errorf(key, "invalid duration %q (want e.g. \"5s\", \"1m30s\", \"1h\")", s)
	case d < 0 || d == 0 && !zeroOK:
		r.errorf(key, "duration %q must be positive", s)
	default:
		return d
	}
	return def
}

// elem is one string of an array, with its key path ("listener[0].allow[2]").
type elem struct {
	key, s string
}

// strings returns the strings of an array; absent or wrongly typed: nil.
// Elements of the wrong type are reported and left out.
func (r *report) strings(f field, key string) []elem {
	if !f.set {
		return nil
	}
	arr, ok := f.v.([]any)
	if !ok {
		r.errorf(key, "want an array of strings, got %s", describe(f.v))
		return nil
	}
	out := make([]elem, 0, len(arr))
	for i, e := range arr {
		k := fmt.Sprintf("%s[%d]", key, i)
		s, ok := e.(string)
		if !ok {
			r.errorf(k, "want a string, got %s", describe(e))
			continue
		}
		out = append(out, elem{key: k, s: s})
	}
	return out
}
