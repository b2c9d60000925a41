// Package events defines the wire form of novarec's Kafka topics and the
// producer and consumer that move them: an asynchronous, batched, bounded
// producer that never blocks a request, and a consumer-group reader that
// commits only handled messages and sends poison messages to a dead-letter
// topic.
package events

// Topic names (DESIGN.md §5).
const (
	TopicImpressions = "rec.impressions"
	TopicFeedback    = "rec.feedback"
	TopicDeadLetter  = "rec.deadletter"
	// TopicModelUpdates carries model-snapshot announcements for deployments
	// that fan them out through Kafka instead of (or as well as) the Redis
	// channel of the same name; the embedded cluster seeds it so either works.
	TopicModelUpdates = "model-updates"
)

// SchemaVersion is the "schema" field of every event this build writes.
const SchemaVersion = 1

// Intent is the high-level decision logged with an impression.
type Intent struct {
	UserPropensity    float64 `json:"user_propensity"`
	SessionPropensity float64 `json:"session_propensity"`
	Level             int     `json:"level"`
	Probability       float64 `json:"probability"`
	// Probabilities is the whole distribution π_H(·|s_H), for off-policy learning.
	Probabilities []float64 `json:"probabilities,omitempty"`
	// State is the high-level state vector s_H the decision was made from.
	State []float64 `json:"state,omitempty"`
}

// ImpressionItem is one shown item.
type ImpressionItem struct {
	ItemID     string  `json:"item_id"`
	Position   int     `json:"position"`
	Score      float64 `json:"score"`
	Propensity float64 `json:"propensity"`
	Novel      bool    `json:"novel"`
	Novelty    float64 `json:"novelty"`
	// Features is the ranker's φ(u,i) for the item as scored.
	Features []float64 `json:"features,omitempty"`
}

// Impression records one served slate on rec.impressions.
type Impression struct {
	Schema       int    `json:"schema"`
	EventID      string `json:"event_id"`
	RequestID    string `json:"request_id"`
	UserID       string `json:"user_id"`
	SessionID    string `json:"session_id,omitempty"`
	Variant      string `json:"variant"`
	ModelVersion string `json:"model_version"`
	Intent       Intent `json:"intent"`
	// Taste is the user's taste vector u at serving time (absent for cold users).
	Taste    []float32        `json:"taste,omitempty"`
	Items    []ImpressionItem `json:"items"`
	Degraded bool             `json:"degraded,omitempty"`
	// TS is the serving time in Unix milliseconds.
	TS int64 `json:"ts"`
}

// Feedback records one user reaction on rec.feedback.
type Feedback struct {
	Schema    int     `json:"schema"`
	EventID   string  `json:"event_id"`
	RequestID string  `json:"request_id,omitempty"`
	UserID    string  `json:"user_id"`
	SessionID string  `json:"session_id,omitempty"`
	ItemID    string  `json:"item_id"`
	Type      string  `json:"type"`
	Value     float64 `json:"value,omitempty"`
	Variant   string  `json:"variant,omitempty"`
	// TS is the event time in Unix milliseconds.
	TS int64 `json:"ts"`
}

// DeadLetter wraps a message that could not be decoded or applied.
type DeadLetter struct {
	Schema    int    `json:"schema"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key,omitempty"`
	Reason    string `json:"reason"`
	// Value is the original message body, verbatim.
	Value string `json:"value"`
	TS    int64  `json:"ts"`
}
