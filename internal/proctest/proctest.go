// Package proctest runs a command's main as a child process of the
// command's own test binary, so that a test can send the real command
// signals (SIGTERM for a graceful stop, SIGKILL for a crash) and start it
// again, without building it separately.
//
// The test binary's TestMain calls RunMain(main) first; Start then runs the
// test binary with an environment variable that makes RunMain run main
// instead of the tests.
package proctest

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/novarec/novarec/internal/logtest"
)

const envRunMain = "NOVAREC_PROCTEST_RUN_MAIN"

// RunMain runs main and exits 0 when this process was started by Start; it
// returns at once otherwise. Call it first in TestMain.
func RunMain(main func()) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
}

// Process is one running child.
type Process struct {
	Cmd *exec.Cmd
	// Log is what the child wrote to stdout and stderr (its log lines).
	Log  *logtest.Buffer
	done chan error
}

// Start runs the command (this test binary in RunMain mode) with args. When
// the test ends the child is killed, and its output is logged if the test
// failed.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	p := &Process{Cmd: cmd, Log: &logtest.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		if t.Failed() {
			t.Logf("%s log (pid %d):\n%s", args, cmd.Process.Pid, p.Log.String())
		}
	})
	return p
}

// Run runs the command with args to completion and returns its combined
// output and exit error (a minute at most: a hang guard).
func Run(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	return cmd.CombinedOutput()
}

// Stop sends sig and returns the child's exit error (nil for status 0)
// once it has exited. It fails the test if the child has not exited within
// a minute (a hang guard: a graceful stop takes seconds).
func (p *Process) Stop(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for Cleanup and later calls
		return err
	case <-time.After(time.Minute):
		// SIGQUIT makes the Go runtime print every goroutine's stack to
		// the child's log, which Cleanup prints: the hang's own evidence.
		_ = p.Cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("pid %d did not exit within a minute of %v (goroutine dump in its log)", p.Cmd.Process.Pid, sig)
		return nil
	}
}

// Killed reports whether err, from Stop, says the child died of SIGKILL.
func Killed(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
