package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Incremental state is what replaced whole checkpoints for state that grows
// with traffic (the trainer's join state, docs/trainer-scale.md): a small
// head blob plus named hashes of records, changed by deltas. A commit
// writes the head and the records that changed since the previous commit
// and deletes the records that went away, in one MULTI/EXEC, so a reader
// (a restart) never sees half a commit. Its cost is proportional to the
// changes, not to the size of the state. The keys of one name share a hash
// tag, so the transaction also works on Redis Cluster.
//
//	state:{NAME}:head     head bytes
//	state:{NAME}:h:HASH   field → record bytes
//	state:{NAME}:owner    token of the writer that claimed it last
//
// The records' format is the writer's business, as for checkpoints.

// StateDelta is one commit of incremental state.
type StateDelta struct {
	// Head replaces the head (required: a commit without one is refused,
	// so a head always describes the records stored with it).
	Head []byte
	// Put sets fields of hashes: hash name → field → value.
	Put map[string]map[string][]byte
	// Del deletes fields of hashes: hash name → fields. A field is in Put
	// or in Del, not both.
	Del map[string][]string
	// DropCheckpoint, when set, deletes the whole-blob checkpoint of that
	// name once the transaction is done (the one-time migration from
	// SaveCheckpoint's format; not inside it, as the checkpoint's key is in
	// another Redis Cluster slot, and a reader prefers the head anyway).
	DropCheckpoint string
	// Owner, when set, makes the commit conditional: it is applied only
	// if Owner is still the token of the last ClaimState, else refused
	// with ErrStateOwner.
	Owner string
}

// ErrStateOwner refuses a commit whose writer no longer owns the state:
// another one claimed it since (ClaimState).
var ErrStateOwner = errors.New("features: state claimed by another writer")

// Bytes is the payload size of the delta (head, field names and values),
// what a commit writes.
func (d *StateDelta) Bytes() int {
	n := len(d.Head)
	for _, fs := range d.Put {
		for f, v := range fs {
			n += len(f) + len(v)
		}
	}
	for _, fs := range d.Del {
		for _, f := range fs {
			n += len(f)
		}
	}
	return n
}

// StateImage is incremental state as loaded: the head and every hash.
type StateImage struct {
	Head   []byte
	Hashes map[string]map[string]string
}

func (s *Store) stateKey(name, suffix string) string {
	return s.prefix + "state:{" + name + "}:" + suffix
}

// partKey names a key of part's state within name's ("" = name's own
// state); every part shares name's hash tag.
func (s *Store) partKey(name, part, suffix string) string {
	if part == "" {
		return s.stateKey(name, suffix)
	}
	return s.stateKey(name, part+":"+suffix)
}

// writeDelta queues d's writes to part of name's state on p (inside a
// MULTI/EXEC).
//
// go-redis takes a command's arguments as []any, and a string or []byte put
// in an interface is an allocation of its own: two per record, most of what
// queueing a commit allocated. Pointers are not: the arguments point into
// one array of field names and one of values per hash (go-redis writes a
// *string as the string, and a *bytesArg through MarshalBinary), so a
// commit allocates per batch of stateBatch records, not per record.
func (s *Store) writeDelta(ctx context.Context, p redis.Pipeliner, name, part string, d *StateDelta) {
	for hash, fs := range d.Put {
		if len(fs) == 0 {
			continue
		}
		key := s.partKey(name, part, "h:"+hash)
		fields, vals := make([]string, 0, len(fs)), make([]bytesArg, 0, len(fs))
		for f, v := range fs {
			fields, vals = append(fields, f), append(vals, v)
		}
		for i := 0; i < len(fields); i += stateBatch {
			n := min(len(fields)-i, stateBatch)
			args := make([]any, 2, 2+2*n)
			args[0], args[1] = "hset", key
			for j := i; j < i+n; j++ {
				args = append(args, &fields[j], &vals[j])
			}
			p.Do(ctx, args...)
		}
	}
	for hash, fs := range d.Del {
		key := s.partKey(name, part, "h:"+hash)
		for i := 0; i < len(fs); i += stateBatch {
			n := min(len(fs)-i, stateBatch)
			args := make([]any, 2, 2+n)
			args[0], args[1] = "hdel", key
			for j := i; j < i+n; j++ {
				args = append(args, &fs[j])
			}
			p.Do(ctx, args...)
		}
	}
	p.Set(ctx, s.partKey(name, part, "head"), d.Head, 0)
}

// bytesArg is a field value for go-redis, passed by pointer (writeDelta).
type bytesArg []byte

// MarshalBinary returns the value as it is.
func (b *bytesArg) MarshalBinary() ([]byte, error) { return *b, nil }

// stateBatch bounds the fields of one HSET, HDEL or HSCAN round trip.
const stateBatch = 1000

// CommitState applies d atomically. It returns only after Redis has
// acknowledged it, so a caller may then commit the Kafka offsets whose
// effects d contains.
func (s *Store) CommitState(ctx context.Context, name string, d *StateDelta) error {
	if name == "" {
		return errNoCheckpointName
	}
	if d.Head == nil {
		return fmt.Errorf("features: commit state %q: no head", name)
	}
	write := func(p redis.Pipeliner) error {
		s.writeDelta(ctx, p, name, "", d)
		return nil
	}
	var err error
	if d.Owner == "" {
		_, err = s.rdb.TxPipelined(ctx, write)
	} else {
		owner := s.stateKey(name, "owner")
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := tx.Get(ctx, owner).Result()
			switch {
			case errors.Is(err, redis.Nil):
				return ErrStateOwner
			case err != nil:
				return err
			case cur != d.Owner:
				return ErrStateOwner
			}
			_, err = tx.TxPipelined(ctx, write)
			return err
		}, owner)
		if errors.Is(err, redis.TxFailedErr) { // claimed between the check and the write
			err = ErrStateOwner
		}
	}
	if err != nil {
		return fmt.Errorf("features: commit state %q: %w", name, err)
	}
	if d.DropCheckpoint != "" {
		if err := s.rdb.Del(ctx, s.checkpointKey(d.DropCheckpoint)).Err(); err != nil {
			return fmt.Errorf("features: commit state %q: drop old checkpoint: %w", name, err)
		}
	}
	return nil
}

// ClaimState makes token the owner of name's state: from now on, commits
// of any other owner are refused (ErrStateOwner). A writer claims before it
// loads, so whatever the previous owner committed before the claim is in
// what it loads, and nothing after.
func (s *Store) ClaimState(ctx context.Context, name, token string) error {
	if err := s.rdb.Set(ctx, s.stateKey(name, "owner"), token, 0).Err(); err != nil {
		return fmt.Errorf("features: claim state %q: %w", name, err)
	}
	return nil
}

// StateHead returns the head of name's state (wrapping ErrNotFound when
// there is none), for tools and tests that read counters without loading
// the records.
func (s *Store) StateHead(ctx context.Context, name string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.stateKey(name, "head")).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: state %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("features: load state %q: %w", name, err)
	}
	return b, nil
}

// LoadState reads name's head and the named hashes (HSCAN, so a large hash
// does not block Redis). The error wraps ErrNotFound when there is no head.
// The head is read first and hashes after it: a commit between the two
// would mix states, so call it only while no one commits name (at start-up,
// before consuming).
func (s *Store) LoadState(ctx context.Context, name string, hashes ...string) (*StateImage, error) {
	return s.LoadPart(ctx, name, "", hashes...)
}

// LoadPart is LoadState for one part of name's state (CommitParts); the
// error wraps ErrNotFound when the part has no head. Call it right after
// ClaimPart, so no one else commits the part while it is read.
func (s *Store) LoadPart(ctx context.Context, name, part string, hashes ...string) (*StateImage, error) {
	head, err := s.rdb.Get(ctx, s.partKey(name, part, "head")).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: state %q %s: %w", name, part, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("features: load state %q %s: %w", name, part, err)
	}
	img := &StateImage{Head: head, Hashes: make(map[string]map[string]string, len(hashes))}
	for _, h := range hashes {
		m := map[string]string{}
		it := s.rdb.HScan(ctx, s.partKey(name, part, "h:"+h), 0, "", stateBatch).Iterator()
		for it.Next(ctx) {
			f := it.Val()
			if !it.Next(ctx) {
				break
			}
			m[f] = it.Val()
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("features: load state %q hash %s: %w", name, h, err)
		}
		img.Hashes[h] = m
	}
	return img, nil
}

// DeleteState removes name's head and hashes (tests, and starting a
// variant's learning over).
func (s *Store) DeleteState(ctx context.Context, name string, hashes ...string) error {
	keys := []string{s.stateKey(name, "head"), s.stateKey(name, "owner")}
	for _, h := range hashes {
		keys = append(keys, s.stateKey(name, "h:"+h))
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("features: delete state %q: %w", name, err)
	}
	return nil
}
