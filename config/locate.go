package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The TOML decoder does not expose where keys are, so problems would have no
// line numbers. locator is a small, forgiving scanner over the source that
// records the line of every table header, key and array element under the
// same key paths the validator uses ("listener[0].rule[2].allow[1]",
// "pool.appliance.health.interval"). It runs only on input the decoder has
// accepted, but never fails or panics on any input: what it cannot read, it
// skips.

// locEntry is one key (or array element) found in the source.
type locEntry struct {
	path string   // with array indices: listener[1].idle_timeout
	key  toml.Key // as the decoder names it (no indices); nil for array elements
	line int
}

type locator struct {
	entries []locEntry
	lines   map[string]int
}

// maxLocDepth bounds nesting of arrays and inline tables while scanning.
const maxLocDepth = 64

// locate scans src.
func locate(src string) *locator {
	s := &locScanner{src: src, line: 1, arrIdx: map[string]int{}, arrCount: map[string]int{}}
	s.run()
	l := &locator{entries: s.entries, lines: make(map[string]int, len(s.entries))}
	for _, e := range s.entries {
		if _, ok := l.lines[e.path]; !ok {
			l.lines[e.path] = e.line
		}
	}
	return l
}

// line returns the line of path, or of its nearest enclosing key that was
// found (a missing listener[0].pool points at the [[listener]] header); 0 if
// none. A nil locator knows nothing.
func (l *locator) line(path string) int {
	if l == nil {
		return 0
	}
	for path != "" {
		if n, ok := l.lines[path]; ok {
			return n
		}
		if strings.HasSuffix(path, "]") {
			if i := strings.LastIndexByte(path, '['); i >= 0 {
				path = path[:i]
				continue
			}
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

type locScanner struct {
	src     string
	i, line int
	entries []locEntry
	// arrIdx is the current index of each array of tables, by its path
	// (with the indices of its parents): "listener" -> 1, "listener[1].rule" -> 0.
	arrIdx map[string]int
	// arrCount is how many elements each array of tables has had so far.
	arrCount map[string]int
}

func (s *locScanner) eof() bool { return s.i >= len(s.src) }

// adv moves one byte forward, counting lines.
func (s *locScanner) adv() {
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

// skipSpace skips blanks, and with newlines also line breaks and comments.
func (s *locScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t':
			s.i++
		case newlines && (c == '\n' || c == '\r'):
			s.adv()
		case newlines && c == '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine moves to the start of the next line.
func (s *locScanner) skipLine() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.i++
	}
	if !s.eof() {
		s.adv()
	}
}

func (s *locScanner) add(path string, key toml.Key, line int) {
	s.entries = append(s.entries, locEntry{path: path, key: key, line: line})
}

func join(path, part string) string {
	if path == "" {
		return part
	}
	return path + "." + part
}

func (s *locScanner) run() {
	var tablePath string  // current table, with indices
	var tableKey toml.Key // current table, as the decoder names it
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start, line := s.i, s.line
		if s.src[s.i] == '[' {
			array := strings.HasPrefix(s.src[s.i:], "[[")
			s.i++
			if array {
				s.i++
			}
			parts := s.keyParts()
			tablePath, tableKey = s.header(parts, array)
			s.add(tablePath, tableKey, line)
			s.skipLine()
			continue
		}
		parts := s.keyParts()
		s.skipSpace(false)
		if len(parts) == 0 || s.eof() || s.src[s.i] != '=' {
			if s.i == start {
				s.adv()
			}
			s.skipLine()
			continue
		}
		s.i++ // '='
		path, key := tablePath, append(toml.Key(nil), tableKey...)
		for _, p := range parts {
			path = join(path, p)
			key = append(key, p)
		}
		s.add(path, key, line)
		s.value(path, key, 0)
		s.skipLine()
	}
}

// header resolves a [table] or [[array]] header to its path: parents that
// are arrays of tables get their current index, and an [[array]] header
// starts the next element.
func (s *locScanner) header(parts []string, array bool) (string, toml.Key) {
	path := ""
	key := make(toml.Key, 0, len(parts))
	for j, p := range parts {
		path = join(path, p)
		key = append(key, p)
		if array && j == len(parts)-1 {
			n := s.arrCount[path]
			s.arrCount[path] = n + 1
			s.arrIdx[path] = n
			path += "[" + strconv.Itoa(n) + "]"
		} else if n, ok := s.arrIdx[path]; ok {
			path += "[" + strconv.Itoa(n) + "]"
		}
	}
	return path, key
}

// keyParts reads a possibly dotted, possibly quoted key.
func (s *locScanner) keyParts() []string {
	var parts []string
	for {
		s.skipSpace(false)
		if s.eof() {
			return parts
		}
		switch c := s.src[s.i]; {
		case c == '"' || c == '\'':
			parts = append(parts, s.quotedKey(c))
		case isBareKeyByte(c):
			j := s.i
			for j < len(s.src) && isBareKeyByte(s.src[j]) {
				j++
			}
			parts = append(parts, s.src[s.i:j])
			s.i = j
		default:
			return parts
		}
		s.skipSpace(false)
		if s.eof() || s.src[s.i] != '.' {
			return parts
		}
		s.i++
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// quotedKey reads a "basic" or 'literal' key on one line.
func (s *locScanner) quotedKey(q byte) string {
	j := s.i + 1
	for j < len(s.src) && s.src[j] != q && s.src[j] != '\n' {
		if q == '"' && s.src[j] == '\\' && j+1 < len(s.src) && s.src[j+1] != '\n' {
			j++
		}
		j++
	}
	raw := s.src[s.i+1 : j]
	if j < len(s.src) && s.src[j] == q {
		j++
	}
	s.i = j
	if q == '"' {
		// TOML escapes are close enough to Go's for key names.
		if u, err := strconv.Unquote(`"` + raw + `"`); err == nil {
			return u
		}
	}
	return raw
}

// value skips one value, recording the keys of inline tables and the
// elements of arrays under path.
func (s *locScanner) value(path string, key toml.Key, depth int) {
	s.skipSpace(false)
	if s.eof() {
		return
	}
	switch c := s.src[s.i]; {
	case depth >= maxLocDepth:
		s.adv()
	case strings.HasPrefix(s.src[s.i:], `"""`) || strings.HasPrefix(s.src[s.i:], `'''`):
		s.multilineString(s.src[s.i : s.i+3])
	case c == '"' || c == '\'':
		s.quotedKey(c) // same syntax as a one-line string
	case c == '[':
		s.array(path, key, depth)
	case c == '{':
		s.inlineTable(path, key, depth)
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.src[s.i])) {
			s.i++
		}
	}
}

func (s *locScanner) multilineString(delim string) {
	s.i += 3
	for !s.eof() {
		if strings.HasPrefix(s.src[s.i:], delim) {
			s.i += 3
			// Up to two more quotes may belong to the string.
			for k := 0; k < 2 && !s.eof() && s.src[s.i] == delim[0]; k++ {
				s.i++
			}
			return
		}
		if delim[0] == '"' && s.src[s.i] == '\\' && s.i+1 < len(s.src) {
			s.adv()
		}
		s.adv()
	}
}

func (s *locScanner) array(path string, key toml.Key, depth int) {
	s.i++ // '['
	for n := 0; ; {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		switch s.src[s.i] {
		case ']':
			s.i++
			return
		case ',':
			s.i++
			continue
		}
		start := s.i
		elem := path + "[" + strconv.Itoa(n) + "]"
		s.add(elem, nil, s.line)
		s.value(elem, key, depth+1)
		n++
		if s.i == start {
			s.adv()
		}
	}
}

func (s *locScanner) inlineTable(path string, key toml.Key, depth int) {
	s.i++ // '{'
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		switch s.src[s.i] {
		case '}':
			s.i++
			return
		case ',':
			s.i++
			continue
		}
		start, line := s.i, s.line
		parts := s.keyParts()
		s.skipSpace(false)
		if len(parts) == 0 || s.eof() || s.src[s.i] != '=' {
			if s.i == start {
				s.adv()
			}
			continue
		}
		s.i++ // '='
		p, k := path, append(toml.Key(nil), key...)
		for _, part := range parts {
			p = join(p, part)
			k = append(k, part)
		}
		s.add(p, k, line)
		s.value(p, k, depth+1)
	}
}
