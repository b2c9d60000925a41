package features

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/recommend"
)

// CollabUpdates carries the version of each collaborative model PutCollab
// stores.
const CollabUpdates Channel = "collab-updates"

func (s *Store) collabKey() string        { return s.prefix + "collab" }
func (s *Store) collabVersionKey() string { return s.prefix + "collab:version" }

// PutCollab stores an encoded collaborative model (collab.Model) with its
// version and announces the version on CollabUpdates, so every process's
// CatalogCache folds the new model into its catalog snapshot.
func (s *Store) PutCollab(ctx context.Context, version uint64, data []byte) error {
	v := strconv.FormatUint(version, 10)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.collabKey(), data, 0)
		p.Set(ctx, s.collabVersionKey(), v, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("features: put collaborative model: %w", err)
	}
	if err := s.rdb.Publish(ctx, s.ChannelName(CollabUpdates), v).Err(); err != nil {
		return fmt.Errorf("features: announce collaborative model: %w", err)
	}
	return nil
}

// CollabVersion returns the stored collaborative model's version, 0 when
// there is none.
func (s *Store) CollabVersion(ctx context.Context) (uint64, error) {
	v, err := s.rdb.Get(ctx, s.collabVersionKey()).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("features: collaborative model version: %w", err)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("features: collaborative model version %q: %w", v, err)
	}
	return n, nil
}

// GetCollab returns the stored collaborative model; the error wraps
// ErrNotFound when none was published.
func (s *Store) GetCollab(ctx context.Context) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.collabKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: collaborative model: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("features: get collaborative model: %w", err)
	}
	return b, nil
}

// RecentHistory returns a user's n most recent engaged items, newest first.
func (s *Store) RecentHistory(ctx context.Context, userID string, n int) ([]recommend.Consumed, error) {
	if userID == "" {
		return nil, errNoUser
	}
	var (
		packed *redis.StringCmd
		legacy *redis.StringSliceCmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		packed = p.Get(ctx, s.histKey(userID))
		legacy = p.LRange(ctx, s.legacyHistKey(userID), 0, int64(n)-1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: recent history: %w", err)
	}
	return readHistory(packed.Val(), legacy.Val(), n), nil
}

// historyScanBatch is how many users' histories one pipelined round trip
// of ScanHistories reads.
const historyScanBatch = 256

// ScanHistories calls fn with every stored user's history (newest first),
// reading Redis with SCAN and pipelined reads, so it walks millions of
// users without blocking the server. A user written while the scan runs
// may be seen in either state, or (SCAN's guarantee) not at all if created
// meanwhile. On Redis Cluster it scans every master. It scans the packed
// histories, then the legacy lists of users who have no packed one yet
// (history.go).
func (s *Store) ScanHistories(ctx context.Context, fn func(userID string, hist []recommend.Consumed) error) error {
	// scanSuffix walks the keys {u:ID}suffix.
	scanSuffix := func(ctx context.Context, c redis.Cmdable, suffix string) error {
		pattern := globEscape(s.prefix) + "{u:*}" + suffix
		legacy := suffix == ":hist"
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, historyScanBatch).Result()
			if err != nil {
				return fmt.Errorf("features: scan histories: %w", err)
			}
			users := make([]string, 0, len(keys))
			for _, k := range keys {
				user, ok := strings.CutPrefix(k, s.prefix+"{u:")
				if ok {
					user, ok = strings.CutSuffix(user, "}"+suffix)
				}
				if ok {
					users = append(users, user)
				}
			}
			if len(users) > 0 {
				packed := make([]*redis.StringCmd, len(users))
				lists := make([]*redis.StringSliceCmd, len(users))
				if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for i, u := range users {
						packed[i] = p.Get(ctx, s.histKey(u))
						if legacy {
							lists[i] = p.LRange(ctx, s.legacyHistKey(u), 0, -1)
						}
					}
					return nil
				}); err != nil && !errors.Is(err, redis.Nil) {
					return fmt.Errorf("features: read histories: %w", err)
				}
				for i, u := range users {
					if legacy && packed[i].Val() != "" {
						continue // seen with its packed history
					}
					var hist []recommend.Consumed
					if legacy {
						hist = decodeHistory(lists[i].Val())
					} else if v := packed[i].Val(); len(v) == 1 && v[0] == packedVersion {
						continue // an empty history (queueSave, ApplyFeedback)
					} else if hist = decodePacked(v, -1); len(hist) == 0 {
						hist = nil
					}
					if err := fn(u, hist); err != nil {
						return err
					}
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	scan := func(ctx context.Context, c redis.Cmdable) error {
		if err := scanSuffix(ctx, c, ":h"); err != nil {
			return err
		}
		return scanSuffix(ctx, c, ":hist")
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		// Masters are scanned concurrently; fn is not called so.
		var mu sync.Mutex
		serial := fn
		fn = func(user string, hist []recommend.Consumed) error {
			mu.Lock()
			defer mu.Unlock()
			return serial(user, hist)
		}
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.rdb)
}

// globEscape escapes the characters special to SCAN's MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
