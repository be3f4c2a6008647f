package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads, parses and validates the file at path. Relative paths inside
// it (certificates, log.access_file) resolve against the file's folder, and
// Config.Path is set to its absolute path. On failure the error joins one
// *Problem per problem found (see Problems) and the *Config is nil.
//
// The returned *Config must not be modified: it is shared by every
// goroutine serving with it, and a reload replaces it as a whole.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, errors.Join(&Problem{File: path, Msg: "cannot resolve path: " + err.Error(), Err: err})
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, errors.Join(&Problem{File: path, Msg: "cannot read configuration: " + err.Error(), Err: err})
	}
	c, err := Parse(data, path, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	c.Path = abs
	return c, nil
}

// Parse decodes and validates a configuration. file names it in messages
// only; dir is the folder relative paths inside it resolve against. Like
// Load it reports every problem, and its result must not be modified.
func Parse(data []byte, file, dir string) (*Config, error) {
	return parse(data, file, dir, time.Now())
}

// builder turns the decoded raw structs into a Config.
type builder struct {
	r    *report
	dir  string
	now  time.Time // certificate expiry is judged against this
	hash hash.Hash // Config.Fingerprint
}

func parse(data []byte, file, dir string, now time.Time) (*Config, error) {
	r := &report{file: file}
	var raw rawFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		r.problems = append(r.problems, decodeProblem(file, err))
		return nil, r.err()
	}
	r.loc = locate(string(data))
	checkKeys(r, md.Undecoded())

	b := &builder{r: r, dir: dir, now: now, hash: sha256.New()}
	if err := b.hashDocument(data); err != nil {
		r.problems = append(r.problems, decodeProblem(file, err))
		return nil, r.err()
	}
	c := b.build(&raw)
	if err := r.err(); err != nil {
		return nil, err
	}
	c.Warnings = r.warningLines()
	copy(c.Fingerprint[:], b.hash.Sum(nil))
	return c, nil
}

// decodeErrRE takes apart the decoder's type errors, which are not
// toml.ParseError values: `toml: line 7 (last key "pool.a.health"): ...`.
var decodeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key "((?:[^"\\]|\\.)*)"\): )?(.*)$`)

// decodeProblem turns a decoder error into a Problem: syntax errors carry
// their line; a value where a table was expected carries line and key.
func decodeProblem(file string, err error) *Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line := pe.Position.Line
		if line > 1 && strings.Contains(pe.Message, `got '\n'`) {
			// The lexer reports an unexpected end of line on the line
			// after it; the mistake is on the line that ended.
			line--
		}
		return &Problem{File: file, Line: line, Msg: "invalid TOML: " + pe.Message, Err: err}
	}
	p := &Problem{File: file, Msg: err.Error(), Err: err}
	if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &p.Line)
		p.Key = strings.ReplaceAll(m[2], `\"`, `"`)
		switch msg := m[3]; {
		case strings.Contains(msg, "expected table"), strings.Contains(msg, "destination has type map"):
			p.Msg = "wrong type: want a table"
		case strings.Contains(msg, "destination has type slice"):
			p.Msg = "wrong type: want an array of tables"
		default:
			p.Msg = msg
		}
	}
	return p
}

func (b *builder) build(raw *rawFile) *Config {
	r := b.r
	c := &Config{
		ShutdownGrace: r.duration(raw.ShutdownGrace, "shutdown_grace", 30*time.Second, true),
		ShutdownDelay: r.duration(raw.ShutdownDelay, "shutdown_delay", 0, true),
		Pools:         make(map[string]*Pool, len(raw.Pool)),
	}

	c.Admin.Bind = r.str(raw.Admin.Bind, "admin.bind", "127.0.0.1:9090")
	if c.Admin.Bind != "" {
		if _, err := hostPort(c.Admin.Bind, true); err != nil {
			r.errorf("admin.bind", "invalid address %q: %w", c.Admin.Bind, err)
		}
	}
	c.Admin.Allow = r.allowList(raw.Admin.Allow, "admin.allow")
	b.admin(&c.Admin, raw.Admin)

	c.Limits = Limits{MaxConns: r.integer(raw.Limits.MaxConns, "limits.max_conns", 0, 0, math.MaxInt32)}
	if raw.Limits.MaxConns.set {
		c.Limits.at = Problem{File: r.file, Line: r.loc.line("limits.max_conns"), Key: "limits.max_conns"}
	}

	c.Log = Log{
		Format: r.oneOf(raw.Log.Format, "log.format", "json", "json", "text"),
		Level:  r.oneOf(raw.Log.Level, "log.level", "info", "debug", "info", "warn", "error"),
		Access: r.boolean(raw.Log.Access, "log.access", false),
	}
	if f := r.str(raw.Log.AccessFile, "log.access_file", ""); f != "" {
		c.Log.AccessFile = resolve(b.dir, f)
	}

	for name := range raw.Pool {
		c.PoolNames = append(c.PoolNames, name)
	}
	sort.Strings(c.PoolNames)
	for _, name := range c.PoolNames {
		c.Pools[name] = b.pool(name, raw.Pool[name])
	}

	if len(raw.Listener) == 0 {
		r.errorf("listener", "no [[listener]] defined")
	}
	for i, rl := range raw.Listener {
		c.Listeners = append(c.Listeners, b.listener(fmt.Sprintf("listener[%d]", i), rl))
	}
	b.crossCheck(c)
	return c
}

// oneOf reads a string that must be one of allowed.
func (r *report) oneOf(f field, key, def string, allowed ...string) string {
	s := r.str(f, key, def)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	r.errorf(key, "unknown value %q (want %s)", s, strings.Join(quoted, " or "))
	return def
}
