package features

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channel names a notification channel, without the Store's prefix.
type Channel string

// Notification channels. Messages are hints to re-read state, not the state
// itself: a subscriber that misses one catches up on the next, or through a
// Resync message.
const (
	// CatalogUpdates carries the new catalog version (decimal) after PutItems.
	CatalogUpdates Channel = "catalog-updates"
	// ModelUpdates carries the variant whose model PutModel replaced.
	ModelUpdates Channel = "model-updates"
)

// Resync is delivered by Subscribe after the subscription was re-established
// following a connection loss: messages may have been lost meanwhile, so the
// subscriber should re-read whatever it follows (CatalogVersion, GetModel of
// every variant).
const Resync = ""

// Tuning of Subscribe: how long a subscription may stay quiet before it
// pings the server (Store.pingEvery), how long to wait for a subscription to
// be confirmed, and the reconnect backoff.
const (
	defaultPingEvery = 15 * time.Second
	subscribeConfirm = 10 * time.Second
	backoffMin       = 50 * time.Millisecond
	backoffMax       = 2 * time.Second
)

// ChannelName returns the Redis channel name of c under the Store's prefix.
func (s *Store) ChannelName(c Channel) string { return s.prefix + string(c) }

// Subscribe delivers the messages published on channel which until ctx is
// done. It returns once Redis has confirmed the subscription, so anything
// published after it returns is delivered; the error reports a failure to
// subscribe in the first place.
//
// The goroutine Subscribe starts is owned by ctx: cancelling ctx is the
// only way to stop it, and then it closes its connection and the returned
// channel. Across connection losses it reconnects with
// backoff (detecting dead connections with periodic pings) and then
// delivers Resync. Delivery blocks while the receiver is not reading; Redis
// buffers meanwhile, so the receiver should not stall for long.
func (s *Store) Subscribe(ctx context.Context, which Channel) (<-chan string, error) {
	name := s.ChannelName(which)
	ps, err := s.subscribe(ctx, name)
	if err != nil {
		return nil, err
	}
	var (
		mu  sync.Mutex
		cur = ps
	)
	// Closing the PubSub unblocks a pending receive when ctx is done.
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		_ = cur.Close()
		mu.Unlock()
	})
	out := make(chan string, 16)
	go func() {
		defer close(out)
		defer stop()
		defer func() {
			mu.Lock()
			_ = cur.Close()
			mu.Unlock()
		}()
		send := func(m string) bool {
			select {
			case out <- m:
				return true
			case <-ctx.Done():
				return false
			}
		}
		// sleep waits for d or ctx; it reports whether to go on.
		sleep := func(d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return true
			case <-ctx.Done():
				return false
			}
		}
		backoff := backoffMin
		pingPending := false
		for {
			mu.Lock()
			ps := cur
			mu.Unlock()
			msg, err := ps.ReceiveTimeout(ctx, s.pingEvery)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				switch timeout := isTimeout(err); {
				case timeout && !pingPending:
					// Quiet channel: ask the server for a sign of life. A
					// failed write makes go-redis reconnect on the next
					// receive, like a broken read below.
					pingPending = true
					_ = ps.Ping(ctx)
					continue
				case !timeout:
					// go-redis reconnects and resubscribes on the next
					// receive after a broken connection; just pace it.
					if !sleep(backoff) {
						return
					}
					backoff = min(2*backoff, backoffMax)
					continue
				}
				// No answer to a ping: the connection is dead without
				// having been closed (e.g. a vanished host). Start over.
				_ = ps.Close()
				for {
					if !sleep(backoff) {
						return
					}
					backoff = min(2*backoff, backoffMax)
					nps, err := s.subscribe(ctx, name)
					if err != nil {
						continue
					}
					mu.Lock()
					if ctx.Err() != nil {
						mu.Unlock()
						_ = nps.Close()
						return
					}
					cur = nps
					mu.Unlock()
					break
				}
				pingPending = false
				if !send(Resync) {
					return
				}
				continue
			}
			backoff, pingPending = backoffMin, false
			switch m := msg.(type) {
			case *redis.Message:
				if !send(m.Payload) {
					return
				}
			case *redis.Subscription:
				// A subscribe confirmation after the first one means
				// go-redis reconnected and resubscribed.
				if m.Kind == "subscribe" && !send(Resync) {
					return
				}
			}
		}
	}()
	return out, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// subscribe opens a PubSub on name and waits for the server's confirmation.
func (s *Store) subscribe(ctx context.Context, name string) (*redis.PubSub, error) {
	ps := s.rdb.Subscribe(ctx)
	if err := ps.Subscribe(ctx, name); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("features: subscribe %q: %w", name, err)
	}
	msg, err := ps.ReceiveTimeout(ctx, subscribeConfirm)
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("features: subscribe %q: %w", name, err)
	}
	if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != "subscribe" {
		_ = ps.Close()
		return nil, fmt.Errorf("features: subscribe %q: unexpected reply %v", name, msg)
	}
	return ps, nil
}
