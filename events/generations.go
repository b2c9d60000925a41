package events

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// Commit before every rebalance (ConsumerOptions.Assigned).
//
// kafka-go's group Reader rebalances out of sight: when a member joins or
// leaves, the others' partitions move at once, and whatever a member had
// handled but not committed is delivered again to the new owner. For a
// consumer whose commits are cheap that is harmless; for the partitioned
// trainer it was not: a replica learned on one model from all its
// partitions, so losing one meant dropping everything uncommitted and
// rejoining — which moved the other replica's partitions in turn, and two
// replicas could hand partitions back and forth for many seconds
// (docs/trainer-scale.md). Here the consumer drives the group's
// generations itself (kafka.ConsumerGroup): it reads each assigned
// partition with a reader of its own, and when the coordinator announces a
// rebalance, it stops reading, calls BeforeCommit and commits its offsets
// before it lets the group rejoin. Under Kafka's eager protocol the
// coordinator hands out no partition before every member has rejoined (or
// its rebalance timeout passed), so nothing is taken from a member before
// it has committed it.

// runGenerations is Run with Assigned set.
func (c *Consumer) runGenerations(ctx context.Context, h Handler) error {
	cfg := c.rcfg
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: cfg.GroupID, Brokers: cfg.Brokers, Dialer: cfg.Dialer, Topics: cfg.GroupTopics,
		HeartbeatInterval: cfg.HeartbeatInterval, SessionTimeout: cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout, JoinGroupBackoff: cfg.JoinGroupBackoff,
		WatchPartitionChanges: cfg.WatchPartitionChanges, StartOffset: cfg.StartOffset, GroupBalancers: cfg.GroupBalancers,
		Logger: cfg.Logger, ErrorLogger: cfg.ErrorLogger,
	})
	if err != nil {
		return err
	}
	defer group.Close() // leaves the group
	for failures := 0; ctx.Err() == nil; {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("events: joining the group failed; retrying", "attempt", failures+1, "err", err)
			if !sleepCtx(ctx, backoff(failures, c.opts.RetryBackoff, c.opts.MaxRetryBackoff)) {
				return nil
			}
			failures++
			continue
		}
		failures = 0
		if !c.runGeneration(ctx, gen, h) {
			return nil
		}
	}
	return nil
}

// runGeneration consumes the partitions gen assigned until the generation
// ends (true: join the next one) or ctx does (false), and commits either
// way before returning.
func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation, h Handler) bool {
	assigned := make(map[string][]int, len(gen.Assignments))
	msgs := make(chan kafka.Message, 1024)
	for topic, parts := range gen.Assignments {
		for _, pa := range parts {
			assigned[topic] = append(assigned[topic], pa.ID)
			gen.Start(func(gctx context.Context) { c.readPartition(gctx, topic, pa, msgs) })
		}
	}
	// The group rejoins once every function started on gen has returned:
	// this one returns after the generation's last commit.
	ended, committed := make(chan struct{}), make(chan struct{})
	defer close(committed)
	gen.Start(func(gctx context.Context) {
		<-gctx.Done()
		close(ended)
		<-committed
	})
	c.opts.Assigned(ctx, assigned)

	st := &runState{marks: make(map[topicPartition]kafka.Message), gen: gen, lastCommit: time.Now()}
	// The lag gauge sums this member's partitions, each as of the last
	// message read from it.
	lags, lag := make(map[topicPartition]int64, len(gen.Assignments)), int64(0)
	tick := time.NewTimer(c.opts.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			st.final = true
			c.commit(context.WithoutCancel(ctx), st)
			return false
		case <-ended:
			c.commit(ctx, st)
			return true
		case <-tick.C:
			c.commit(ctx, st)
			tick.Reset(c.opts.CommitInterval)
		case m := <-msgs:
			tp := topicPartition{m.Topic, m.Partition}
			l := max(m.HighWaterMark-m.Offset-1, 0)
			lag += l - lags[tp]
			lags[tp] = l
			c.mLag.Set(float64(lag))
			if !c.handle(ctx, h, m, st) {
				st.final = true
				c.commit(context.WithoutCancel(ctx), st)
				return false
			}
			st.mark(m)
			if st.n >= c.opts.CommitEvery {
				c.commit(ctx, st)
			}
		}
	}
}

// readPartition sends partition pa of topic to msgs from its assigned
// offset until the generation ends.
func (c *Consumer) readPartition(ctx context.Context, topic string, pa kafka.PartitionAssignment, msgs chan<- kafka.Message) {
	cfg := c.rcfg
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Dialer: cfg.Dialer, Topic: topic, Partition: pa.ID,
		MinBytes: cfg.MinBytes, MaxBytes: cfg.MaxBytes, MaxWait: cfg.MaxWait,
		Logger: cfg.Logger, ErrorLogger: cfg.ErrorLogger,
	})
	defer r.Close()
	if err := r.SetOffset(pa.Offset); err != nil {
		c.log.Warn("events: cannot position a partition reader", "topic", topic, "partition", pa.ID, "err", err)
		return // ends the generation: the group rejoins
	}
	for failures := 0; ; {
		m, err := r.FetchMessage(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			c.log.Warn("events: fetch failed; retrying", "topic", topic, "partition", pa.ID, "attempt", failures+1, "err", err)
			if !sleepCtx(ctx, backoff(failures, c.opts.RetryBackoff, c.opts.MaxRetryBackoff)) {
				return
			}
			failures++
			continue
		}
		failures = 0
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// commitGeneration commits the offsets after msgs in gen.
func commitGeneration(gen *kafka.Generation, msgs []kafka.Message) error {
	offsets := map[string]map[int]int64{}
	for _, m := range msgs {
		if offsets[m.Topic] == nil {
			offsets[m.Topic] = map[int]int64{}
		}
		offsets[m.Topic][m.Partition] = m.Offset + 1
	}
	return gen.CommitOffsets(offsets)
}
