// Package features is novarec's Redis-backed state: the item catalog, each
// user's history, long-run statistics and current session, which items a
// session has been shown, and the learners' model snapshots (DESIGN.md §5).
//
// Redis holds derived state only; Kafka is the log of record: the catalog
// comes back from rec.catalog (CatalogKeeper), user state from rec.feedback
// (trainer rebuild). The trainer's
// feature updater is the single writer of user state (ApplyFeedback), except
// that recsvc records shown items (RecordShown), which no other write
// touches, so the two never overwrite each other.
//
// Key layout, all under Options.Prefix:
//
//	{u:ID}:h             string: the history, newest first, capped, packed (history.go)
//	{u:ID}:hist          list, newest first: the history as versions before packed ones wrote it, "TSms|N|itemID" (N = 1 if novel); read (only for a user with stats and no packed history) until the user's next feedback rewrites it packed
//	{u:ID}:stats         hash: clicks novel familiar skips sessions last consumed
//	{u:ID}:seen          string: every item the user consumed, a recommend.Filter (Bloom) of its "consumed" items
//	collab               the collaborative model (collab.Model bytes); channel collab-updates carries its version
//	{u:ID}:s:SID         hash with TTL: id start last clicks skips novel ewma c:CATEGORY...
//	{u:ID}:s:SID:shown   list with TTL: item ids shown in the session, newest first, capped at ShownMax
//	{u:ID}:ev            sorted set with TTL: recently applied event ids (de-duplication)
//	item:ID              hash: cats ("\x1f"-joined) emb (little-endian float32) pop
//	items                set of item ids
//	catalog:version      counter; channel catalog-updates carries each new version
//	catalog:reseeding    lock (token, TTL) of the replica re-seeding the catalog (CatalogKeeper)
//	model:VARIANT        snapshot bytes; channel model-updates carries the variant
//	trainer:ckpt:NAME    a trainer's checkpoint (NAME = "trainer:VARIANT")
//	exp:EXP:VARIANT      a variant's A/B aggregates (JSON), written by its trainer
//
// SID is the client's session id, or "_" for the implicit session of a
// client that sends none (which therefore shares its key with a client
// session literally named "_"). All keys of one user share the hash tag
// {u:ID}, so in Redis Cluster they live on one slot and one pipeline or
// MULTI/EXEC covers them.
package features

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/recommend"
)

// ErrNotFound is returned (wrapped) when a requested object does not exist.
// Check with errors.Is.
var ErrNotFound = errors.New("features: not found")

// Options configure a Store. The zero value is usable.
type Options struct {
	// Prefix is put in front of every key and channel name, so several
	// deployments or tests can share one Redis. It must not contain a
	// complete hash tag ("{...}"), or every key would land on one slot.
	Prefix string
	// History caps the stored history (default recommend.DefaultHistory).
	History int
	// SessionTTL is how long session keys live after their last write
	// (default recommend.SessionGap): an idle session expires on its own.
	SessionTTL time.Duration
}

// De-duplication window of ApplyFeedback: the most recent DedupMax event ids
// of a user are remembered for DedupTTL after the user's last event. That
// covers Kafka redelivery after a consumer crash, which replays at most an
// uncommitted batch, without growing without bound.
const (
	DedupMax = 1000
	DedupTTL = 24 * time.Hour
)

// Store reads and writes novarec's state in Redis. It is safe for concurrent
// use; it holds no state of its own besides the client, options and, with
// BatchLoads, the auto-pipeliner its loads ride.
type Store struct {
	rdb        redis.UniversalClient
	prefix     string
	history    int
	sessionTTL time.Duration
	pingEvery  time.Duration // see Subscribe; a field so tests can shorten it
	// batch, when set, carries Load's reads (BatchLoads, batch.go).
	batch *redis.AutoPipeliner
}

// NewStore wraps a go-redis client, which may be a single node, Sentinel
// failover or Cluster client. The Store does not own the client: closing it
// is up to the caller.
func NewStore(client redis.UniversalClient, opts Options) *Store {
	if opts.History <= 0 {
		opts.History = recommend.DefaultHistory
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = recommend.SessionGap
	}
	return &Store{rdb: client, prefix: opts.Prefix, history: opts.History, sessionTTL: opts.SessionTTL, pingEvery: defaultPingEvery}
}

// Client returns the underlying client, for health checks and wiring.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Ping checks that Redis answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("features: ping: %w", err)
	}
	return nil
}

// Key builders. Each is a single string concatenation (one allocation), as
// they run several times per request.

func (s *Store) userKey(userID, suffix string) string {
	return s.prefix + "{u:" + userID + "}:" + suffix
}

func sessionName(sessionID string) string {
	if sessionID == "" {
		return "_"
	}
	return sessionID
}

func (s *Store) sessionKey(userID, sessionID string) string {
	return s.prefix + "{u:" + userID + "}:s:" + sessionName(sessionID)
}

func (s *Store) shownKey(userID, sessionID string) string {
	return s.prefix + "{u:" + userID + "}:s:" + sessionName(sessionID) + ":shown"
}

func (s *Store) itemKey(id string) string { return s.prefix + "item:" + id }

func (s *Store) itemsKey() string { return s.prefix + "items" }

func (s *Store) versionKey() string { return s.prefix + "catalog:version" }

func (s *Store) modelKey(variant string) string { return s.prefix + "model:" + variant }

var errNoUser = errors.New("features: empty user id")
