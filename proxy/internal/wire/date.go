package wire

import (
	"net/http"
	"sync/atomic"
	"time"
)

// DateCache formats the Date field a response gets when its node sent
// none, once per second rather than once per response. The zero value is
// ready; it is safe for concurrent use. A formatted second is published
// whole with one atomic store, so a reader never sees half of one.
type DateCache struct {
	cur atomic.Pointer[dateLine]
}

// dateLine is one second, formatted as a whole field line and as a value.
type dateLine struct {
	sec   int64
	line  []byte // "Date: ...\r\n"
	value string // "Mon, 02 Jan 2006 15:04:05 GMT"
}

// at returns the formatted second of t.
func (d *DateCache) at(t time.Time) *dateLine {
	sec := t.Unix()
	if l := d.cur.Load(); l != nil && l.sec == sec {
		return l
	}
	l := &dateLine{sec: sec, value: t.UTC().Format(http.TimeFormat)}
	l.line = append(append(append(l.line, "Date: "...), l.value...), "\r\n"...)
	d.cur.Store(l)
	return l
}

// AppendField appends the field line "Date: <t>\r\n" for t's second.
func (d *DateCache) AppendField(b []byte, t time.Time) []byte {
	return append(b, d.at(t).line...)
}

// Value is the Date field's value for t's second.
func (d *DateCache) Value(t time.Time) string { return d.at(t).value }
