package filter

import "strings"

// UpgradeVerdict inspects all Upgrade header values (possibly several
// headers, comma lists, any case) and reports whether the request is a
// plain request (no Upgrade), a websocket upgrade (exactly the token
// "websocket", case-insensitive, possibly with whitespace), or something
// else (h2c, websocket mixed with others, empty tokens) which must be
// refused.
//
// Results: (false, true) plain; (true, true) websocket; (false, false)
// refuse. Only websocket is let through because any other protocol switch
// (h2c above all) opens a channel whose later requests portico never sees
// and so never filters. A repeated "websocket" is refused too: the
// request is not what a conforming client sends.
func UpgradeVerdict(values []string) (websocket bool, ok bool) {
	if len(values) == 0 {
		return false, true
	}
	n := 0
	for _, v := range values {
		for {
			tok, rest, more := strings.Cut(v, ",")
			tok = strings.Trim(tok, " \t")
			if !isWebsocketToken(tok) {
				return false, false
			}
			n++
			if !more {
				break
			}
			v = rest
		}
	}
	if n != 1 {
		return false, false
	}
	return true, true
}

// isWebsocketToken compares ASCII case-insensitively. strings.EqualFold
// would also accept Unicode folds such as the Kelvin sign for 'k', which no
// HTTP implementation treats as the token.
func isWebsocketToken(tok string) bool {
	const want = "websocket"
	if len(tok) != len(want) {
		return false
	}
	for i := 0; i < len(want); i++ {
		c := tok[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}
