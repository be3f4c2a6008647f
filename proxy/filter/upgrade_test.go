package filter

import "testing"

var upgradeCases = []struct {
	values    []string
	websocket bool
	ok        bool
}{
	{nil, false, true},
	{[]string{}, false, true},
	{[]string{"websocket"}, true, true},
	{[]string{"WebSocket"}, true, true},
	{[]string{" websocket\t"}, true, true},
	{[]string{"h2c"}, false, false},
	{[]string{"websocket, h2c"}, false, false},
	{[]string{"h2c", "websocket"}, false, false},
	{[]string{"websocket", "websocket"}, false, false},
	{[]string{"websocket,"}, false, false},
	{[]string{",websocket"}, false, false},
	{[]string{""}, false, false},
	{[]string{" "}, false, false},
	{[]string{"websocket/13"}, false, false},
	{[]string{"TLS/1.2"}, false, false},
	{[]string{"web socket"}, false, false},
	{[]string{"websocket\x00"}, false, false},
	{[]string{"websoc\u212Aet"}, false, false}, // Kelvin sign folds to 'k' in Unicode, not in tokens
}

func TestUpgradeVerdict(t *testing.T) {
	t.Parallel()
	for _, tc := range upgradeCases {
		ws, ok := UpgradeVerdict(tc.values)
		if ws != tc.websocket || ok != tc.ok {
			t.Errorf("UpgradeVerdict(%q) = %v, %v; want %v, %v", tc.values, ws, ok, tc.websocket, tc.ok)
		}
	}
}
