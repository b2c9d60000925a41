package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/backend"
	"github.com/novarec/novarec/internal/envflag"
	"github.com/novarec/novarec/recommend"
)

// rebuildMain is `trainer rebuild`: it rebuilds Redis from Kafka after Redis
// lost its data. The catalog comes back from rec.catalog (as recsvc does by
// itself); user history, statistics and sessions are recomputed from every
// event rec.feedback still retains, with the same recommend.Observe the
// feature updater applies, and written over whatever Redis holds for those
// users. It reads each partition up to the end it has when the rebuild
// starts; a user's events are all on one partition (they are keyed by user
// id), so users are rebuilt a partition at a time and memory holds one
// partition's users.
//
// Run it with the feature updaters stopped (trainer -feature-updater=false,
// or the trainer scaled to 0): on restart they resume from their committed
// offsets and skip, by event_id, the events the rebuild already applied.
func rebuildMain(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(out)
	redisAddr := fs.String("redis", envflag.String("REDIS_ADDR", ""), "Redis address(es) (env REDIS_ADDR; required)")
	brokers := fs.String("kafka", envflag.String("KAFKA_BROKERS", ""), "Kafka bootstrap brokers (env KAFKA_BROKERS; required)")
	prefix := fs.String("prefix", envflag.String("NOVAREC_PREFIX", "nr:"), "Redis key prefix (env NOVAREC_PREFIX)")
	dryRun := fs.Bool("dry-run", false, "read and recompute, but write nothing to Redis")
	redisConn, kafkaConn := backend.RedisFlags(fs), backend.KafkaFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: trainer rebuild [flags]\n\nRebuilds the catalog and every user's state in Redis from rec.catalog and rec.feedback\n(run it with the feature updaters stopped). Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *redisAddr == "" || *brokers == "" {
		return errors.New("REDIS_ADDR (or -redis) and KAFKA_BROKERS (or -kafka) are required")
	}
	redisOpts, err := redisConn.Options(envflag.List(*redisAddr))
	if err != nil {
		return err
	}
	sec, err := kafkaConn.Security()
	if err != nil {
		return err
	}
	rdb := redis.NewUniversalClient(redisOpts)
	defer rdb.Close()
	store := features.NewStore(rdb, features.Options{Prefix: *prefix})
	kafkaAddrs := envflag.List(*brokers)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := events.NewProducer(kafkaAddrs, events.ProducerOptions{Security: sec, Logger: log})
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	}()

	snap, err := rebuildCatalog(ctx, store, events.NewCatalogLog(p, kafkaAddrs, sec), *dryRun, log, out)
	if err != nil {
		return err
	}
	st, err := rebuildUsers(ctx, kafkaAddrs, sec, snap, store, *dryRun, time.Now())
	if err != nil {
		return err
	}
	verb := "wrote"
	if *dryRun {
		verb = "would write"
	}
	fmt.Fprintf(out, "rec.feedback: %d events on %d partitions (%d duplicates, %d undecodable); %s the state of %d users\n",
		st.events, st.partitions, st.duplicates, st.undecodable, verb, st.users)
	return nil
}

// rebuildCatalog re-seeds the catalog if Redis has lost it and returns the
// snapshot user states are computed against.
func rebuildCatalog(ctx context.Context, store *features.Store, log *events.CatalogLog, dryRun bool, logger *slog.Logger, out io.Writer) (*catalog.Snapshot, error) {
	var items []catalog.Item
	if dryRun {
		var err error
		if items, _, err = log.Items(ctx); err != nil {
			return nil, err
		}
	} else {
		n, err := features.NewCatalogKeeper(store, log, nil, logger, nil).Check(ctx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			fmt.Fprintf(out, "rec.catalog: re-seeded %d items\n", n)
		}
		if _, items, err = store.LoadItems(ctx); err != nil {
			return nil, err
		}
	}
	if len(items) == 0 {
		return nil, errors.New("no catalog in Redis or rec.catalog: load one first (PUT /v1/items)")
	}
	return catalog.Build(0, catalog.DefaultDim, items)
}

type rebuildStats struct {
	partitions, events, duplicates, undecodable, users int
}

// rebuildUsers replays rec.feedback partition by partition and writes each
// user's recomputed state (unless dryRun).
func rebuildUsers(ctx context.Context, brokers []string, sec events.Security, snap *catalog.Snapshot, store *features.Store, dryRun bool, now time.Time) (rebuildStats, error) {
	var st rebuildStats
	type user struct {
		state   recommend.UserState
		applied []features.AppliedEvent
		seen    map[string]bool
	}
	users := map[string]*user{}
	flush := func() error {
		for id, u := range users {
			if now.UnixMilli()-u.state.Session.Last > recommend.SessionGap.Milliseconds() {
				u.state.Session = recommend.Session{} // long over: not a live session
			}
			if !dryRun {
				if err := store.SaveRebuilt(ctx, u.state, u.applied); err != nil {
					return fmt.Errorf("user %q: %w", id, err)
				}
			}
			st.users++
		}
		clear(users)
		return nil
	}
	current := -1
	err := events.ReadTopic(ctx, brokers, sec, events.TopicFeedback, func(partition int, m kafka.Message) error {
		if partition != current {
			if err := flush(); err != nil {
				return err
			}
			current = partition
			st.partitions++
		}
		st.events++
		ev, err := events.DecodeFeedback(m.Value)
		if err != nil {
			st.undecodable++
			return nil
		}
		u := users[ev.UserID]
		if u == nil {
			u = &user{state: recommend.UserState{UserID: ev.UserID}, seen: map[string]bool{}}
			users[ev.UserID] = u
		}
		if u.seen[ev.EventID] {
			st.duplicates++
			return nil
		}
		u.seen[ev.EventID] = true
		recommend.Observe(&u.state, snap, recommend.Feedback{UserID: ev.UserID, SessionID: ev.SessionID, ItemID: ev.ItemID, Type: ev.Type, Value: ev.Value, TS: ev.TS}, 0, intent.ModeModel{}) // no shown slates: no mode evidence
		u.applied = append(u.applied, features.AppliedEvent{ID: ev.EventID, TS: ev.TS})
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, flush()
}
