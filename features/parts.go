package features

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Partitioned state is how several writers share one name's incremental
// state (the replicas of a variant's trainer, docs/trainer-scale.md): it is
// split into parts — one per Kafka partition, owned by one writer at a
// time — and a shared part that every writer changes (the model). A writer
// claims a part (ClaimPart: a new epoch) before loading it, and a commit
// (CommitParts) writes its parts' deltas only while their epochs are still
// the ones it claimed, together with the shared part's new value, which it
// computes from the shared part as stored inside the same optimistic
// transaction (WATCH, read, MULTI/EXEC). So a shared total changes exactly
// when the parts' records that account for it are written, and a writer
// whose part was claimed by another since writes nothing.
//
//	state:{NAME}:PART:epoch   the part's last claim
//	state:{NAME}:PART:head    its head
//	state:{NAME}:PART:h:HASH  its records
//
// The keys keep NAME's hash tag, so one transaction covers them on Redis
// Cluster too (and puts a name's whole state in one slot).

// PartDelta is one part's share of a CommitParts.
type PartDelta struct {
	Part string
	// Epoch is what ClaimPart returned to this writer.
	Epoch int64
	// Delta is the part's changes; its Owner and DropCheckpoint are not
	// used.
	Delta *StateDelta
}

// SharedFields reads fields of the shared part's hash inside a CommitParts
// transaction (nil for a field that is not set).
type SharedFields func(hash string, fields ...string) ([][]byte, error)

// Merge computes the shared part's delta from its stored head (nil when
// there is none) and fields. CommitParts calls it again when another writer
// changed the shared part in between, so it must derive its result from its
// arguments, not accumulate across calls.
type Merge func(head []byte, get SharedFields) (*StateDelta, error)

// maxMergeAttempts bounds CommitParts' optimistic retries: writers that
// commit every few seconds rarely collide twice in a row.
const maxMergeAttempts = 20

// ClaimPart makes the caller part's owner and returns its epoch: commits of
// the part under an older epoch are refused from now on (ErrStateOwner).
// Claim before LoadPart, so whatever the previous owner committed is in what
// is loaded and nothing it would commit after.
func (s *Store) ClaimPart(ctx context.Context, name, part string) (int64, error) {
	if part == "" {
		return 0, errors.New("features: claim part: no part")
	}
	n, err := s.rdb.Incr(ctx, s.partKey(name, part, "epoch")).Result()
	if err != nil {
		return 0, fmt.Errorf("features: claim state %q %s: %w", name, part, err)
	}
	return n, nil
}

// CommitParts writes parts' deltas and the shared part's delta from merge
// in one transaction, if every part's epoch is still the one given; else it
// writes nothing and returns ErrStateOwner. It returns after Redis has
// acknowledged the write, so a caller may then commit the Kafka offsets
// whose effects it holds. merge may be nil (nothing shared to write).
func (s *Store) CommitParts(ctx context.Context, name string, parts []PartDelta, shared string, merge Merge) error {
	watch := make([]string, 0, len(parts)+1)
	for _, p := range parts {
		if p.Part == "" || p.Part == shared || p.Delta == nil || p.Delta.Head == nil {
			return fmt.Errorf("features: commit parts %q: part %q without a head or named like the shared part", name, p.Part)
		}
		watch = append(watch, s.partKey(name, p.Part, "epoch"))
	}
	sharedHead := s.partKey(name, shared, "head")
	if merge != nil {
		watch = append(watch, sharedHead)
	}
	txn := func(tx *redis.Tx) error {
		if len(parts) > 0 {
			epochs, err := tx.MGet(ctx, watch[:len(parts)]...).Result()
			if err != nil {
				return err
			}
			for i, p := range parts {
				v, _ := epochs[i].(string)
				if v != strconv.FormatInt(p.Epoch, 10) {
					return fmt.Errorf("%w: part %s is at epoch %q, not %d", ErrStateOwner, p.Part, v, p.Epoch)
				}
			}
		}
		var sd *StateDelta
		if merge != nil {
			head, err := tx.Get(ctx, sharedHead).Bytes()
			if errors.Is(err, redis.Nil) {
				head, err = nil, nil
			}
			if err != nil {
				return err
			}
			get := func(hash string, fields ...string) ([][]byte, error) {
				out := make([][]byte, 0, len(fields))
				for len(fields) > 0 {
					n := min(len(fields), stateBatch)
					vs, err := tx.HMGet(ctx, s.partKey(name, shared, "h:"+hash), fields[:n]...).Result()
					if err != nil {
						return nil, err
					}
					for _, v := range vs {
						if str, ok := v.(string); ok {
							out = append(out, []byte(str))
						} else {
							out = append(out, nil)
						}
					}
					fields = fields[n:]
				}
				return out, nil
			}
			if sd, err = merge(head, get); err != nil {
				return err
			}
			if sd == nil || sd.Head == nil {
				return errors.New("merge returned no head")
			}
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, pd := range parts {
				s.writeDelta(ctx, p, name, pd.Part, pd.Delta)
			}
			if sd != nil {
				s.writeDelta(ctx, p, name, shared, sd)
			}
			return nil
		})
		return err
	}
	var err error
	for attempt := range maxMergeAttempts {
		// A failed EXEC means a watched key changed: the shared head
		// (another writer's commit: merge again) or an epoch (the next
		// attempt's check refuses).
		if err = s.rdb.Watch(ctx, txn, watch...); !errors.Is(err, redis.TxFailedErr) {
			break
		}
		// Writers that collided back off by a random, growing pause, so
		// two of them committing in lockstep do not collide again.
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("features: commit parts %q: %w", name, ctx.Err())
		case <-time.After(pause):
		}
	}
	if err != nil {
		return fmt.Errorf("features: commit parts %q: %w", name, err)
	}
	return nil
}

// DeleteParts removes parts (and the shared part) of name's state, with
// the given hashes (tests, and starting a variant's learning over).
func (s *Store) DeleteParts(ctx context.Context, name string, parts []string, hashes ...string) error {
	var keys []string
	for _, p := range parts {
		keys = append(keys, s.partKey(name, p, "head"), s.partKey(name, p, "epoch"))
		for _, h := range hashes {
			keys = append(keys, s.partKey(name, p, "h:"+h))
		}
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("features: delete state %q: %w", name, err)
	}
	return nil
}
