// Package trainer is novarec's learning loop (DESIGN.md §4): Kafka
// consumers that turn impressions and feedback into updates of the
// Redis-backed user state (FeatureUpdater) and of one variant's model
// (Trainer), which it publishes as versioned snapshots for recsvc to
// hot-swap.
//
// The learning rules are pure code in intent, ranker and recommend
// (recommend.Learner). Core is the pure part of the trainer around them:
// joining feedback to impressions, de-duplication, when high-level
// decisions close, what a snapshot and a checkpoint contain. It has no
// Kafka, Redis or clock inside, so tests and offline tools can drive it
// directly. Trainer adds the I/O: an events.Consumer feeding the Core,
// snapshot publishing, and a commit of the Core's changes (Core.StateDelta:
// its head and the records of the join state that changed) written before
// each offset commit (events.ConsumerOptions.BeforeCommit), so that a
// crash neither loses an event (uncommitted events are redelivered) nor
// applies one twice (the stored state remembers event ids).
//
// Redis keys (under the store's prefix): model:VARIANT (snapshot, announced
// on model-updates), state:{trainer:VARIANT}:head and :h:HASH (the
// incremental state, docs/trainer-scale.md), and trainer:ckpt:trainer:VARIANT
// (the whole checkpoint of older builds, read once and deleted).
package trainer
