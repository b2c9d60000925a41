// Package redistest gives tests a Redis to talk to: the real one named by the
// REDIS_ADDR environment variable when set (so CI can test against the same
// server version as production), or an in-process miniredis otherwise (so
// `go test ./...` works on a laptop with nothing installed).
//
// A real Redis is shared by test packages running in parallel, so nothing here
// ever flushes a database: every test gets its own key prefix and deletes
// exactly the keys under it when it ends.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// EnvAddr names the environment variable holding the address of a real Redis
// (host:port, or a comma-separated list of cluster nodes).
const EnvAddr = "REDIS_ADDR"

// embedded maps clients backed by a miniredis to that server, for Elapse.
var embedded sync.Map // redis.UniversalClient -> *miniredis.Miniredis

// New returns a client and a key prefix unique to this test. With REDIS_ADDR
// set it connects to that server and fails the test if it is unreachable;
// otherwise it starts a miniredis. When the test ends, every key starting
// with prefix is deleted (SCAN+UNLINK; keys of the form prefix+"{tag}..."
// included) and the client is closed. Callers must put prefix in front of
// every key they create and must not close the client themselves.
func New(t testing.TB) (client redis.UniversalClient, prefix string) {
	t.Helper()
	prefix = Prefix(t)
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		mr := miniredis.RunT(t)
		client = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		embedded.Store(client, mr)
	} else {
		client = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(addr, ",")})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err != nil {
			_ = client.Close()
			t.Fatalf("redistest: %s=%s: %v", EnvAddr, addr, err)
		}
	}
	// Registered after miniredis.RunT, so it runs before the server closes.
	t.Cleanup(func() {
		embedded.Delete(client)
		if addr != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := DeletePrefix(ctx, client, prefix); err != nil {
				t.Errorf("redistest: deleting keys %q*: %v", prefix, err)
			}
		}
		_ = client.Close()
	})
	return client, prefix
}

// Miniredis starts an in-process server regardless of REDIS_ADDR, for tests
// that must stop, restart or time-travel the server (fault and expiry tests).
// Both the server and the client are closed when the test ends.
func Miniredis(t testing.TB) (*miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	embedded.Store(client, mr)
	t.Cleanup(func() {
		embedded.Delete(client)
		_ = client.Close()
	})
	return mr, client
}

// Elapse lets d pass as far as key expiry is concerned: it fast-forwards the
// miniredis behind client (miniredis never expires keys on its own) and
// sleeps for d when client talks to a real Redis. Tests of TTLs use it so the
// same test runs in both modes.
func Elapse(t testing.TB, client redis.UniversalClient, d time.Duration) {
	t.Helper()
	if mr, ok := embedded.Load(client); ok {
		mr.(*miniredis.Miniredis).FastForward(d)
		return
	}
	time.Sleep(d)
}

// Prefix returns a fresh key prefix for t: "t:" + the sanitised test name +
// ":" + random hex + ":". The name part keeps only characters that are
// neither glob metacharacters (so the prefix can be used in SCAN MATCH) nor
// braces (so it never forms a Redis Cluster hash tag of its own).
func Prefix(t testing.TB) string {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand, Go 1.24+)
	name := t.Name()
	if len(name) > 48 {
		name = name[:48]
	}
	var b strings.Builder
	b.Grow(len(name) + 20)
	b.WriteString("t:")
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	b.WriteByte(':')
	b.WriteString(hex.EncodeToString(rnd[:]))
	b.WriteByte(':')
	return b.String()
}

// DeletePrefix unlinks every key starting with prefix, which must contain no
// glob metacharacters (Prefix guarantees that). With a cluster client it
// scans every master and unlinks key by key, since one UNLINK may not span
// slots.
func DeletePrefix(ctx context.Context, client redis.UniversalClient, prefix string) error {
	if strings.ContainsAny(prefix, `*?[]\`) {
		return fmt.Errorf("redistest: prefix %q contains glob metacharacters", prefix)
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return deleteOn(ctx, c, prefix, true)
		})
	}
	return deleteOn(ctx, client, prefix, false)
}

func deleteOn(ctx context.Context, c redis.Cmdable, prefix string, oneByOne bool) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if len(keys) > 0 {
			if oneByOne {
				_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.Unlink(ctx, k)
					}
					return nil
				})
			} else {
				err = c.Unlink(ctx, keys...).Err()
			}
			if err != nil {
				return fmt.Errorf("unlink: %w", err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
