package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// nodeEnv set to "1" makes idlemem the stand-in node process. The node
// runs apart so that its descriptors (one per websocket tunnel) do not
// count against idlemem's own limit.
const nodeEnv = "IDLEMEM_NODE"

// runNode is the node process: it serves a stand-in node on loopback,
// prints its address, and stops when its stdin closes (idlemem is done or
// died).
func runNode() error {
	raiseFDLimit()
	node, err := standin.Start("a", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Println(node.Addr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// startNode starts the node process and returns its address and a stop
// function that ends it and waits for it, killing it after 10 s.
func startNode() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("node process: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), nodeEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, fmt.Errorf("node process: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("node process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("node process: %w", err)
	}
	stop := func() {
		stdin.Close()
		waitOrKill(cmd, 10*time.Second)
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("node process: %w", err)
	}
	return strings.TrimSpace(addr), stop, nil
}

// waitOrKill waits for cmd to end, and kills it (by its PID) if it has
// not after d.
func waitOrKill(cmd *exec.Cmd, d time.Duration) {
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
	}
}
