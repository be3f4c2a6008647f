package config

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"
)

// The fingerprint answers "do these two portico instances (or this file and
// the running configuration) configure the same thing?". It is a SHA-256 over
// the configuration's data, not its text: every table, key and value of the
// TOML document in a canonical order, so comments, white space, key order and
// spelling (inline table or not, quoting style, 1_000 for 1000) do not count;
// and over the content of every file the configuration names and portico
// reads when it loads (certificates, keys, CA bundles, error pages, the admin
// token), framed by the name as written in the file, so two hosts that keep
// the same files in different folders agree. A changed value, file content or
// file name gives another fingerprint. Defaults are not filled in: writing a
// key with its default value is a change.

// FingerprintHex is Fingerprint in lower-case hexadecimal, as /status and
// /metrics show it.
func (c *Config) FingerprintHex() string { return hex.EncodeToString(c.Fingerprint[:]) }

// hashDocument adds the TOML document's data to the fingerprint. data has
// already decoded into the raw structs, so it is valid TOML.
func (b *builder) hashDocument(data []byte) error {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return fmt.Errorf("fingerprint: %w", err)
	}
	b.hashFile("", canonical(nil, doc))
	return nil
}

// hashFile adds one input to the fingerprint, framed so that moving bytes
// between files or names changes the sum.
func (b *builder) hashFile(name string, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	b.hash.Write(n[:])
	b.hash.Write([]byte(name))
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	b.hash.Write(n[:])
	b.hash.Write(data)
}

// canonical appends an unambiguous encoding of a decoded TOML value to out:
// each value is tagged with its type (so 1 and 1.0 and "1" differ), strings
// and keys are length-prefixed, tables list their keys sorted.
func canonical(out []byte, v any) []byte {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out = append(out, 'T')
		out = strconv.AppendInt(out, int64(len(keys)), 10)
		for _, k := range keys {
			out = appendString(out, k)
			out = canonical(out, v[k])
		}
		return out
	case []map[string]any:
		out = append(out, 'A')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		for _, e := range v {
			out = canonical(out, e)
		}
		return out
	case []any:
		out = append(out, 'A')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		for _, e := range v {
			out = canonical(out, e)
		}
		return out
	case string:
		return appendString(append(out, 's'), v)
	case int64:
		return strconv.AppendInt(append(out, 'i'), v, 10)
	case float64:
		return binary.BigEndian.AppendUint64(append(out, 'f'), math.Float64bits(v))
	case bool:
		return strconv.AppendBool(append(out, 'b'), v)
	case time.Time:
		// Local dates and times decode with a location of their own; the
		// layout keeps what was written (offset or none).
		return appendString(append(out, 't'), v.Format(time.RFC3339Nano)+" "+v.Location().String())
	default:
		return appendString(append(out, '?'), fmt.Sprintf("%T %v", v, v))
	}
}

func appendString(out []byte, s string) []byte {
	out = strconv.AppendInt(out, int64(len(s)), 10)
	out = append(out, ':')
	return append(out, s...)
}
