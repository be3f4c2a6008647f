package proxy

import "time"

// A websocket tunnel whose server leaves its pool, or whose portico shuts
// down, ends with a close frame (1001) at a frame boundary of the node's
// stream (tunnel.WSFramer) rather than with a reset.

// goAwayWait bounds how long a tunnel waits for a frame boundary before it
// is closed the hard way.
const goAwayWait = time.Second

// goAway starts the graceful end of a websocket tunnel: the stream ends at
// the next frame boundary with the close frame. A read deadline a moment
// ahead wakes a reader blocked on a silent node, while giving a frame that
// is on its way time to arrive whole. It reports false when the tunnel is
// not a websocket whose node side portico reads.
func (c *trackedConn) goAway() bool {
	if c == nil || c.ws == nil {
		return false
	}
	c.ws.Going.Store(true)
	if h := c.loop.Load(); h != nil {
		h.GoAway()
		return true
	}
	c.Conn.SetReadDeadline(time.Now().Add(goAwayPoll))
	return true
}

// goAwayPoll is how long a going-away tunnel still waits for the node.
const goAwayPoll = 100 * time.Millisecond
