package handover

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Inherited is what a process started by Start received: its predecessor's
// sockets by key and the readiness pipe. Its methods may be called from any
// goroutine.
type Inherited struct {
	mu    sync.Mutex
	files map[string]*os.File // not taken yet
	ready *os.File
	taken int
}

// FromEnv picks up the sockets and the pipe that Start passed, and removes
// the hand-over variables from the environment. It returns nil, nil when
// this process was not started by a hand-over.
func FromEnv() (*Inherited, error) {
	sockets, okS := os.LookupEnv(EnvSockets)
	ready, okR := os.LookupEnv(EnvReady)
	if !okS && !okR {
		return nil, nil
	}
	os.Unsetenv(EnvSockets)
	os.Unsetenv(EnvReady)
	fds, readyFD, err := parse(sockets, ready)
	if err != nil {
		return nil, err
	}
	in := &Inherited{files: map[string]*os.File{}, ready: os.NewFile(uintptr(readyFD), "handover-ready")}
	for key, fd := range fds {
		in.files[key] = os.NewFile(uintptr(fd), key)
	}
	return in, nil
}

// parse reads the two variables' values: the descriptor of each key, and
// the pipe's.
func parse(sockets, ready string) (map[string]int, int, error) {
	readyFD, err := strconv.Atoi(ready)
	if err != nil || readyFD < 3 {
		return nil, 0, fmt.Errorf("hand-over: %s=%q is not a descriptor", EnvReady, ready)
	}
	fds := map[string]int{}
	if sockets == "" {
		return fds, readyFD, nil
	}
	for _, e := range strings.Split(sockets, "\n") {
		num, key, ok := strings.Cut(e, "=")
		fd, err := strconv.Atoi(num)
		if _, dup := fds[key]; !ok || err != nil || fd < 3 || fd == readyFD || key == "" || dup {
			return nil, 0, fmt.Errorf("hand-over: bad entry %q in %s", e, EnvSockets)
		}
		fds[key] = fd
	}
	return fds, readyFD, nil
}

// Take returns the inherited socket with key as a listener, or nil when
// there is none (a socket this process must bind itself). Each socket is
// taken at most once.
func (in *Inherited) Take(key string) (net.Listener, error) {
	if in == nil {
		return nil, nil
	}
	in.mu.Lock()
	f := in.files[key]
	delete(in.files, key)
	in.mu.Unlock()
	if f == nil {
		return nil, nil
	}
	defer f.Close() // FileListener holds its own descriptor
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("hand-over: socket %s: %w", key, err)
	}
	in.mu.Lock()
	in.taken++
	in.mu.Unlock()
	return ln, nil
}

// Taken is how many sockets Take returned.
func (in *Inherited) Taken() int {
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.taken
}

// Ready tells the predecessor that this process serves, which lets it stop
// accepting; and closes the sockets no one took (the predecessor's copy
// keeps each open until it steps down). Call it once.
func (in *Inherited) Ready() error {
	if in == nil {
		return nil
	}
	in.closeUntaken()
	in.mu.Lock()
	r := in.ready
	in.ready = nil
	in.mu.Unlock()
	if r == nil {
		return errors.New("hand-over: ready already sent")
	}
	defer r.Close()
	if _, err := r.Write([]byte{1}); err != nil {
		return fmt.Errorf("hand-over: telling the predecessor: %w", err)
	}
	return nil
}

// Close gives up: it closes the pipe without a word (the predecessor reads
// that as a failed start) and every socket not taken.
func (in *Inherited) Close() {
	if in == nil {
		return
	}
	in.closeUntaken()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ready != nil {
		in.ready.Close()
		in.ready = nil
	}
}

func (in *Inherited) closeUntaken() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, f := range in.files {
		f.Close()
		delete(in.files, k)
	}
}
