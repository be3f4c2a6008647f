package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Problem is one thing wrong with a configuration file. Load and Parse return
// every problem they find, joined with errors.Join; Problems gets them back.
type Problem struct {
	// File is the file name as given to Load or Parse ("" if none).
	File string
	// Line is the 1-based line of the offending key; 0 when unknown.
	Line int
	// Key is the key path, e.g. "listener[0].rule[2].allow[1]"; "" for
	// problems with the file as a whole (syntax errors, unreadable file).
	Key string
	// Msg says what is wrong, naming the bad input.
	Msg string
	// Err is the underlying error, if any (also part of Msg).
	Err error
}

// Error reads like `portico.toml:23: listener[0].allow[1]: invalid CIDR ...`.
func (p *Problem) Error() string {
	s := p.where()
	if p.Key != "" {
		s += p.Key + ": "
	}
	return s + p.Msg
}

// Unwrap returns the underlying error.
func (p *Problem) Unwrap() error { return p.Err }

// where is the "file:line: " prefix, with whatever of it is known.
func (p *Problem) where() string {
	switch {
	case p.File != "" && p.Line > 0:
		return p.File + ":" + strconv.Itoa(p.Line) + ": "
	case p.File != "":
		return p.File + ": "
	case p.Line > 0:
		return "line " + strconv.Itoa(p.Line) + ": "
	}
	return ""
}

// Problems returns the *Problem values inside err (as returned by Load or
// Parse), in file order; nil if there are none.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// report collects problems and warnings while one file is checked.
type report struct {
	file     string
	loc      *locator
	problems []*Problem
	warnings []*Problem
}

// errorf records a problem at key. When args hold a %w-wrapped error it
// becomes Problem.Err.
func (r *report) errorf(key, format string, args ...any) {
	r.problems = append(r.problems, r.make(key, format, args...))
}

// warnf records a warning at key.
func (r *report) warnf(key, format string, args ...any) {
	r.warnings = append(r.warnings, r.make(key, format, args...))
}

func (r *report) make(key, format string, args ...any) *Problem {
	e := fmt.Errorf(format, args...)
	return &Problem{File: r.file, Line: r.loc.line(key), Key: key, Msg: e.Error(), Err: errors.Unwrap(e)}
}

// sortByLine orders problems by line, keeping the order of those on the same
// line (or without one, which go last).
func sortByLine(ps []*Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Line, ps[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
}

// err joins the problems into the error Parse returns (nil if none).
func (r *report) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	sortByLine(r.problems)
	errs := make([]error, len(r.problems))
	for i, p := range r.problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// warningLines renders the warnings in file order.
func (r *report) warningLines() []string {
	sortByLine(r.warnings)
	out := make([]string, len(r.warnings))
	for i, w := range r.warnings {
		out[i] = w.Error()
	}
	return out
}
