package apikey

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// reloadState is the reloader's memory of what it last complained about,
// so that polling a broken file logs the problem once, not every poll.
type reloadState struct {
	mu        sync.Mutex
	failedSum [sha256.Size]byte
	failedErr string
}

// Reload re-reads the keys file and puts its keys in force. An unreadable
// or invalid file leaves the keys in force as they were. Every call writes
// an audit line; trigger says what asked for it ("start", "sighup").
func (k *Keyring) Reload(trigger string) error {
	return k.reload(trigger, true)
}

// reload reads the file; unless force, it does nothing when the content is
// the one in force or the one that failed last time.
func (k *Keyring) reload(trigger string, force bool) error {
	if k.opts.Path == "" {
		return nil
	}
	k.state.mu.Lock()
	defer k.state.mu.Unlock()
	prev := k.cur.Load()
	b, err := os.ReadFile(k.opts.Path)
	if err != nil {
		err = fmt.Errorf("api keys: %w", err)
		if force || err.Error() != k.state.failedErr {
			k.state.failedErr = err.Error()
			k.failed(trigger, prev, err)
		}
		return err
	}
	sum := sha256.Sum256(b)
	if !force && (sum == prev.sum || sum == k.state.failedSum) {
		return nil
	}
	keys, err := Parse(b)
	var next *keySet
	if err == nil {
		next, err = k.build(keys, prev)
	}
	if err != nil {
		err = fmt.Errorf("api keys %s: %w", k.opts.Path, err)
		k.state.failedSum, k.state.failedErr = sum, ""
		k.failed(trigger, prev, err)
		return err
	}
	next.sum = sum
	k.state.failedSum, k.state.failedErr = [sha256.Size]byte{}, ""
	k.cur.Store(next)
	k.metrics.keys.Set(float64(len(next.entries)))
	k.metrics.reloads.WithLabelValues("ok").Inc()
	k.metrics.lastOK.Set(1)
	added, removed, replaced := diff(prev, next)
	k.log.LogAttrs(context.Background(), slog.LevelInfo, "audit", slog.String("action", "keys.reload"),
		slog.String("trigger", trigger), slog.String("outcome", "ok"), slog.Int("keys", len(next.entries)),
		slog.Any("added", added), slog.Any("removed", removed), slog.Any("replaced", replaced))
	return nil
}

func (k *Keyring) failed(trigger string, prev *keySet, err error) {
	k.metrics.reloads.WithLabelValues("error").Inc()
	k.metrics.lastOK.Set(0)
	k.log.LogAttrs(context.Background(), slog.LevelError, "audit", slog.String("action", "keys.reload"),
		slog.String("trigger", trigger), slog.String("outcome", "error"), slog.Int("keys", len(prev.entries)),
		slog.String("err", err.Error()))
}

// diff lists the ids that came, went, and stayed with a new key (rotation
// in place).
func diff(prev, next *keySet) (added, removed, replaced []string) {
	old := map[string]*entry{}
	for _, e := range prev.entries {
		old[e.ID] = e
	}
	added, removed, replaced = []string{}, []string{}, []string{}
	for _, e := range next.entries {
		switch o, ok := old[e.ID]; {
		case !ok:
			added = append(added, e.ID)
		case o.Hash != e.Hash:
			replaced = append(replaced, e.ID)
		}
		delete(old, e.ID)
	}
	for id := range old {
		removed = append(removed, id)
	}
	slices.Sort(removed)
	return added, removed, replaced
}

// DefaultPoll is how often Run looks at the keys file. Kubernetes updates
// a mounted Secret within about a minute; a few seconds more do not matter,
// and reading a small file that often costs nothing.
const DefaultPoll = 5 * time.Second

// Run reloads the keys file whenever its content changes (looked at every
// poll) and on every value from hup (SIGHUP), until ctx ends. The caller
// owns the goroutine that runs it. Without a keys file it returns at once.
func (k *Keyring) Run(ctx context.Context, poll time.Duration, hup <-chan os.Signal) {
	if k.opts.Path == "" {
		return
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = k.reload("sighup", true) // logged by reload; the keys in force stay
		case <-t.C:
			_ = k.reload("file change", false)
		}
	}
}
