package recommend

import (
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
)

// Consumed is one entry of a user's history: an item the user engaged with.
type Consumed struct {
	ItemID string
	// TS is the event time in Unix milliseconds.
	TS int64
	// Novel records whether the item was surprising to the user when consumed.
	Novel bool
}

// Stats are a user's long-run counters, the evidence for the user-level
// (static) novelty propensity.
type Stats struct {
	Clicks         int64 `json:"clicks"`
	NovelClicks    int64 `json:"novel_clicks"`
	FamiliarClicks int64 `json:"familiar_clicks"`
	Skips          int64 `json:"skips"`
	Sessions       int64 `json:"sessions"`
	// LastTS is the time of the last feedback event, Unix milliseconds.
	LastTS int64 `json:"last_ts"`

	// Rho is the posterior over the user's ρ_u from their closed sessions.
	Rho intent.RhoPosterior `json:"-"`
	// ModeSession names the session whose mode evidence ModeChain (its
	// closed slates) and ModeEvidence (its open slate) hold (see modeKey),
	// the latest with feedback; it is folded into Rho when feedback of a
	// later session arrives (or, for a decision, in memory). ModeAccounted
	// counts the entries of its Shown list that the evidence covers. A
	// record from before ModeChain has the whole session's evidence in
	// ModeEvidence, which then reads as one slate. (A session that outgrows the stored list,
	// 300 entries or about 30 slates, loses the oldest ones and with them
	// this count's alignment: its later evidence is then approximate.)
	ModeSession   string           `json:"-"`
	ModeChain     intent.ModeChain `json:"-"`
	ModeEvidence  float64          `json:"-"`
	ModeAccounted int              `json:"-"`
}

// Session is the state of the user's current session, the evidence for the
// session-level (dynamic) novelty propensity.
type Session struct {
	ID string
	// Start and Last are Unix milliseconds; zero for a session with no events.
	Start, Last int64
	Clicks      int64
	Skips       int64
	NovelClicks int64
	// NovelEWMA is the recency-weighted novelty of the session's clicks
	// (weight SessionDecay on the past), meaningful when Clicks > 0.
	NovelEWMA float64
	// CategoryClicks counts clicks per category name in this session.
	CategoryClicks map[string]int64
	// Shown lists the items shown in this session, oldest first, each
	// slate after a SlateMark (see ShownRecord).
	Shown []string
}

// UserState is everything the policy needs to know about a user for one
// decision. The features package loads it from Redis in one round trip;
// replay and the simulator keep it in memory.
type UserState struct {
	UserID string
	// History holds the most recent engaged items, newest first.
	History []Consumed
	// Consumed holds every item the user has consumed (engaged with or
	// rated, however long ago): the engine never recommends them.
	Consumed Filter
	Stats    Stats
	Session  Session
}

// Feedback types.
const (
	Click  = "click"
	View   = "view"
	Skip   = "skip"
	Rating = "rating"
)

// PositiveRating is the rating value from which a rating counts as engagement.
const PositiveRating = 3.5

// SessionDecay is the weight of the past in the session's NovelEWMA.
const SessionDecay = 0.6

// DefaultHistory is the default history window H.
const DefaultHistory = 200

// SessionGap ends an implicit session after this much inactivity.
const SessionGap = 30 * time.Minute

// Feedback is one user reaction, as the feature updater and the learners see it.
type Feedback struct {
	UserID    string
	SessionID string
	ItemID    string
	Type      string
	Value     float64
	// TS is the event time in Unix milliseconds.
	TS int64
}

// Consumption reports whether the feedback shows the user consumed the
// item: a click, or a rating of any value (the user watched it). Consumed
// items are never recommended to the user again.
func (f Feedback) Consumption() bool { return f.Type == Click || f.Type == Rating }

// Engaged reports whether the feedback is a positive engagement (a click or a
// good rating), the event that enters history and counts as a click.
func (f Feedback) Engaged() bool {
	return f.Type == Click || (f.Type == Rating && f.Value >= PositiveRating)
}

// Observation says what Observe made of one feedback event.
type Observation struct {
	// Engaged is true when the event entered the history.
	Engaged bool
	// Novelty is nov(u,i) in [0,1] against the history before the event.
	Novelty float64
	// Surprising is true when the item was novel to the user (see Seen).
	Surprising bool
	// NewSession is true when the event started a new session.
	NewSession bool
}

// Observe applies one feedback event to the user's state: history, long-run
// statistics and session. It is the single definition of how feedback
// changes state, shared by the feature updater (which persists the result),
// replay and the simulator. Items unknown to the snapshot are treated as
// having no categories. history caps the history length (0 = DefaultHistory).
// mm reads the event as evidence of the session's mode: the served model's
// (Model.ModeModel), or the zero value for DefaultModeModel.
func Observe(st *UserState, snap *catalog.Snapshot, fb Feedback, history int, mm intent.ModeModel) Observation {
	if history <= 0 {
		history = DefaultHistory
	}
	var obs Observation
	s := &st.Session
	if s.Last == 0 || (fb.SessionID == "" && fb.TS-s.Last > SessionGap.Milliseconds()) || (fb.SessionID != "" && fb.SessionID != s.ID) {
		shown := s.Shown
		if fb.SessionID != s.ID {
			shown = nil
		}
		// What was shown belongs to the session, not to its feedback:
		// the first event keeps it.
		*s = Session{ID: fb.SessionID, Start: fb.TS, Shown: shown}
		st.Stats.Sessions++
		obs.NewSession = true
	}
	s.Last = max(s.Last, fb.TS)
	st.Stats.LastTS = max(st.Stats.LastTS, fb.TS)

	idx, known := snap.Index(fb.ItemID)
	if known && (fb.Type == Click || fb.Type == Skip) {
		// Before the history changes: novelty as it was when shown.
		mm := mm.OrDefault()
		openSession(st, mm)
		account(st, snap, SeenOf(snap, st.History), fb.ItemID, fb.Type == Click, mm)
	}
	if known && fb.Consumption() {
		st.Consumed.Add(snap.Hash(idx))
	}
	switch {
	case fb.Engaged():
		obs.Engaged = true
		if known {
			obs.Novelty, obs.Surprising = SeenOf(snap, st.History).Novelty(snap, idx)
		}
		st.Stats.Clicks++
		s.Clicks++
		if obs.Surprising {
			st.Stats.NovelClicks++
			s.NovelClicks++
		} else {
			st.Stats.FamiliarClicks++
		}
		if s.Clicks == 1 {
			s.NovelEWMA = obs.Novelty
		} else {
			s.NovelEWMA = SessionDecay*s.NovelEWMA + (1-SessionDecay)*obs.Novelty
		}
		if known {
			if s.CategoryClicks == nil {
				s.CategoryClicks = map[string]int64{}
			}
			for _, c := range snap.Categories(idx) {
				s.CategoryClicks[snap.CategoryName(c)]++
			}
		}
		st.History = append([]Consumed{{ItemID: fb.ItemID, TS: fb.TS, Novel: obs.Surprising}}, st.History...)
		if len(st.History) > history {
			st.History = st.History[:history]
		}
	case fb.Type == Skip || fb.Type == Rating:
		st.Stats.Skips++
		s.Skips++
	}
	return obs
}
