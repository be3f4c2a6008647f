package proxy

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
)

// wsAcceptValid: the node's 101 carries the Sec-WebSocket-Accept that
// the client's Sec-WebSocket-Key calls for (RFC 6455, 4.1 and 4.2.2).
// A client fails a handshake without it; a proxy that opens a raw tunnel
// on the node's word must too, or a node that merely claims the switch
// turns the connection into a tunnel in which the client's next request
// reaches the node unjudged.
func wsAcceptValid(req, res http.Header) bool {
	key := req.Get("Sec-WebSocket-Key")
	if key == "" {
		return false
	}
	got := res["Sec-Websocket-Accept"]
	return len(got) == 1 && got[0] == wsAccept(key)
}

// wsAccept is the Sec-WebSocket-Accept for key.
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
