// Package logtest captures what a slog.Logger (or a child process, see
// internal/proctest) writes, for tests that check log lines (audit lines,
// that no secret is logged, what a process said when it stopped).
package logtest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Buffer is a log sink that the goroutines of a server under test, or a
// child process's output copiers, may write to at once while the test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// New returns an empty Buffer and a JSON logger writing to it.
func New() (*Buffer, *slog.Logger) {
	b := &Buffer{}
	return b, slog.New(slog.NewJSONHandler(b, nil))
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines decodes the JSON lines whose "msg" is msg; a line that is not JSON
// fails the test.
func (b *Buffer) Lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}
