package features

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// Field names of the stats and session hashes.
const (
	fClicks   = "clicks"
	fNovel    = "novel"
	fFamiliar = "familiar"
	fSkips    = "skips"
	fSessions = "sessions"
	fLast     = "last"
	fConsumed = "consumed"
	fID       = "id"
	fStart    = "start"
	fEWMA     = "ewma"
	fClickNov = "cnov" // written by earlier versions
	fSkipNov  = "snov" // written by earlier versions
	// The intent posterior (recommend.Stats.Rho and the open session's
	// mode evidence).
	fRho      = "rho"
	fModeSess = "msid"
	fModeEv   = "mev"
	fModeAcc  = "macc"
	fModeCh   = "mch" // the closed slates' chain (recommend.Stats.ModeChain)
	catField  = "c:"
)

// userReads are the commands of one pipelined read of a user's state:
// four commands, and no reply element that the decoding does not use. The
// packed history and the consumed filter are read by one MGET; the stats
// hash by HMGET of the fields decodeStats reads (statsRead), values only,
// which spares a string per field name and a map per read. The legacy
// history list is read only for a user who needs it (needsLegacy), by a
// second round trip (readLegacy).
type userReads struct {
	strs   *redis.StringSliceCmd // packed history, consumed filter ("" when absent)
	legacy *redis.StringSliceCmd // history list of users not rewritten since; nil when not read
	stats  *redis.StringSliceCmd // the statsRead fields' values
	sess   *redis.MapStringStringCmd
	shown  *redis.StringSliceCmd // nil when not read
}

// The stats hash's fields a read decodes (decodeStats, consumedCount), in
// the order of userReads.stats's values.
const (
	sClicks = iota
	sNovel
	sFamiliar
	sSkips
	sSessions
	sLast
	sRho
	sModeSess
	sModeEv
	sModeAcc
	sModeCh
	sConsumed
	nStatsRead
)

// statsRead are their names, and statsArgs the same as HMGET's arguments
// (made once: a string put in an interface is an allocation).
var (
	statsRead = [nStatsRead]string{
		sClicks: fClicks, sNovel: fNovel, sFamiliar: fFamiliar, sSkips: fSkips, sSessions: fSessions, sLast: fLast,
		sRho: fRho, sModeSess: fModeSess, sModeEv: fModeEv, sModeAcc: fModeAcc, sModeCh: fModeCh, sConsumed: fConsumed,
	}
	statsArgs = func() []any {
		a := make([]any, len(statsRead))
		for i, f := range statsRead {
			a[i] = f
		}
		return a
	}()
)

// newReads builds the commands that read a user's state, for a pipeline
// (queueReads) or the batched loads (batch.go).
func (s *Store) newReads(ctx context.Context, userID, sessionID string, withShown bool) userReads {
	k := s.readKeys(userID, sessionID)
	stats := make([]any, 2, 2+len(statsArgs))
	stats[0], stats[1] = "hmget", k.stats
	stats = append(stats, statsArgs...)
	r := userReads{
		strs:  redis.NewStringSliceCmd(ctx, "mget", k.hist, k.seen),
		stats: redis.NewStringSliceCmd(ctx, stats...),
		sess:  redis.NewMapStringStringCmd(ctx, "hgetall", k.sess),
	}
	if withShown {
		r.shown = redis.NewStringSliceCmd(ctx, "lrange", k.shown, 0, ShownMax-1)
	}
	return r
}

// readKeys are the keys of a user's read, as histKey, legacyHistKey,
// userKey (seen, stats), sessionKey and shownKey name them.
type readKeys struct{ hist, legacy, seen, stats, sess, shown string }

// readKeys builds the keys of a read in one allocation (they share it), not
// one a key.
func (s *Store) readKeys(userID, sessionID string) readKeys {
	user := len(s.prefix) + len("{u:") + len(userID) + len("}:")
	sess := sessionName(sessionID)
	var b strings.Builder
	b.Grow(6*user + len("h") + len("hist") + len("seen") + len("stats") + len("s:") + len(sess) + len(":shown"))
	var ends [5]int
	for i, suffix := range [...]string{"h", "hist", "seen", "stats", "s:"} {
		b.WriteString(s.prefix)
		b.WriteString("{u:")
		b.WriteString(userID)
		b.WriteString("}:")
		b.WriteString(suffix)
		ends[i] = b.Len()
	}
	b.WriteString(sess)
	sessEnd := b.Len()
	b.WriteString(":shown")
	all := b.String()
	shownStart := ends[3]
	return readKeys{
		hist: all[:ends[0]], legacy: all[ends[0]:ends[1]], seen: all[ends[1]:ends[2]], stats: all[ends[2]:ends[3]],
		sess: all[shownStart:sessEnd], shown: all[shownStart:],
	}
}

// cmds puts r's commands in buf, in the order they are sent.
func (r *userReads) cmds(buf *[4]redis.Cmder) []redis.Cmder {
	buf[0], buf[1], buf[2] = r.strs, r.stats, r.sess
	if r.shown == nil {
		return buf[:3]
	}
	buf[3] = r.shown
	return buf[:4]
}

// packedAbsent reports whether the user has no packed history.
func (r *userReads) packedAbsent() bool { return value(r.strs.Val(), 0) == "" }

// needsLegacy reports whether the read must also look for a legacy history
// list: the user has no packed history but has a stats hash. Every version
// that wrote a history list wrote the stats hash in the same transaction,
// and every writer now leaves a packed history (empty, if need be) where it
// writes the stats (queueSave, ApplyFeedback), so a user with stats and no
// packed history is one of those versions' not rewritten since; a user
// never written (no stats) has no list either.
func (r *userReads) needsLegacy() bool {
	if !r.packedAbsent() {
		return false
	}
	for _, v := range r.stats.Val() {
		if v != "" {
			return true
		}
	}
	return false
}

// readLegacy reads the user's legacy history list into r when needsLegacy
// says so: a second round trip, for users not rewritten since packed
// histories.
func (s *Store) readLegacy(ctx context.Context, r *userReads, userID string) error {
	if !r.needsLegacy() {
		return nil
	}
	r.legacy = s.rdb.LRange(ctx, s.legacyHistKey(userID), 0, int64(s.history)-1)
	if err := r.legacy.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	return nil
}

func (s *Store) queueReads(ctx context.Context, p redis.Pipeliner, userID, sessionID string, withShown bool) userReads {
	r := s.newReads(ctx, userID, sessionID, withShown)
	var buf [4]redis.Cmder
	_ = p.BatchProcess(ctx, r.cmds(&buf)...) // a pipeline only queues: no error
	return r
}

// value is v[i], or "" past its end (a reply cut short reads as absent).
func value(v []string, i int) string {
	if i < len(v) {
		return v[i]
	}
	return ""
}

func (r userReads) state(userID, sessionID string) recommend.UserState {
	strs, stats := r.strs.Val(), r.stats.Val()
	var legacy []string
	if r.legacy != nil {
		legacy = r.legacy.Val()
	}
	st := recommend.UserState{
		UserID:  userID,
		History: readHistory(value(strs, 0), legacy, -1),
		Stats:   decodeStats(stats),
		Session: decodeSession(r.sess.Val()),
	}
	if b := value(strs, 1); b != "" {
		st.Consumed = recommend.Filter{N: consumedCount(stats), Bits: []byte(b)}
	}
	st.Session.ID = sessionID
	if r.shown != nil {
		st.Session.Shown = decodeShown(r.shown.Val())
	}
	return st
}

// Load reads everything the policy needs about a user for one decision in a
// single pipelined round trip: history, statistics, the session's state and
// the items already shown in it. A user Redis knows nothing about (new, or
// whose session expired) yields zero values, not an error. Malformed entries
// are skipped rather than failing the request, since the state is derived
// and the next write repairs it. The returned Session.ID is sessionID ("" for
// the implicit session).
func (s *Store) Load(ctx context.Context, userID, sessionID string) (recommend.UserState, error) {
	if userID == "" {
		return recommend.UserState{}, errNoUser
	}
	var (
		r   userReads
		err error
	)
	if s.batch != nil {
		r, err = s.loadBatched(ctx, userID, sessionID)
	} else {
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			r = s.queueReads(ctx, p, userID, sessionID, true)
			return nil
		})
	}
	if err != nil && !errors.Is(err, redis.Nil) { // a user with nothing consumed has no filter
		return recommend.UserState{}, fmt.Errorf("features: load user state: %w", err)
	}
	if err := s.readLegacy(ctx, &r, userID); err != nil {
		return recommend.UserState{}, fmt.Errorf("features: load user state: legacy history: %w", err)
	}
	return r.state(userID, sessionID), nil
}

// ShownMax caps the items remembered as shown in one session (newest kept):
// a session that pages through more than this may see an old item again,
// which bounds what every later request of the session reads and excludes.
const ShownMax = 300

// Shown reads the session's shown list, oldest first (slate marks
// included, see recommend.ShownRecord): what Load puts in Session.Shown,
// without the rest of the user's state.
func (s *Store) Shown(ctx context.Context, userID, sessionID string) ([]string, error) {
	if userID == "" {
		return nil, errNoUser
	}
	v, err := s.rdb.LRange(ctx, s.shownKey(userID, sessionID), 0, ShownMax-1).Result()
	if err != nil {
		return nil, fmt.Errorf("features: shown: %w", err)
	}
	return decodeShown(v), nil
}

// RecordShown adds items to the set of items shown in the session, so later
// requests of the session exclude them, and refreshes the session's TTL: a
// user who keeps browsing without feedback is still in the session. It is
// recsvc's only write to user state and touches no key ApplyFeedback
// rewrites, so it needs no coordination with the feature updater.
func (s *Store) RecordShown(ctx context.Context, userID, sessionID string, itemIDs []string) error {
	if userID == "" {
		return errNoUser
	}
	if len(itemIDs) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		s.queueShown(ctx, p, userID, sessionID, itemIDs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("features: record shown: %w", err)
	}
	return nil
}

// queueShown queues RecordShown's commands on a pipeline.
func (s *Store) queueShown(ctx context.Context, p redis.Pipeliner, userID, sessionID string, itemIDs []string) {
	shown := s.shownKey(userID, sessionID)
	p.LPush(ctx, shown, packShown(nil, itemIDs)...) // one element per slate (shownPacked)
	p.LTrim(ctx, shown, 0, shownSlates-1)
	p.PExpire(ctx, shown, s.sessionTTL)
	p.PExpire(ctx, s.sessionKey(userID, sessionID), s.sessionTTL)
}

// Save replaces the whole stored state of st.UserID with st in one MULTI/EXEC
// transaction: history (capped), statistics, the session st.Session.ID
// (hash and shown set) with a fresh TTL. A zero session is deleted rather
// than written. It is meant for bulk import, such as seeding history from
// MovieLens ratings; live updates go through ApplyFeedback.
func (s *Store) Save(ctx context.Context, st recommend.UserState) error {
	if st.UserID == "" {
		return errNoUser
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.queueSave(ctx, p, st)
		return nil
	})
	if err != nil {
		return fmt.Errorf("features: save user state: %w", err)
	}
	return nil
}

// queueSave queues Save's commands on a transaction pipeline.
func (s *Store) queueSave(ctx context.Context, p redis.Pipeliner, st recommend.UserState) {
	hist := st.History
	if len(hist) > s.history {
		hist = hist[:s.history]
	}
	histKey := s.histKey(st.UserID)
	statsKey := s.userKey(st.UserID, "stats")
	seenKey := s.userKey(st.UserID, "seen")
	sessKey := s.sessionKey(st.UserID, st.Session.ID)
	shownKey := s.shownKey(st.UserID, st.Session.ID)
	p.Del(ctx, histKey, s.legacyHistKey(st.UserID), statsKey, seenKey, sessKey, shownKey)
	if len(st.Consumed.Bits) > 0 {
		p.Set(ctx, seenKey, st.Consumed.Bits, 0)
	}
	// Even empty: with the stats written, a read takes a missing packed
	// history for a legacy list's (userReads.needsLegacy).
	p.Set(ctx, histKey, appendPacked(nil, hist), 0)
	p.HSet(ctx, statsKey, append(statsFields(st.Stats), fConsumed, strconv.FormatInt(st.Consumed.N, 10))...)
	if !zeroSession(&st.Session) {
		p.HSet(ctx, sessKey, sessionFields(&st.Session)...)
		p.PExpire(ctx, sessKey, s.sessionTTL)
	}
	if len(st.Session.Shown) > 0 {
		p.LPush(ctx, shownKey, packShown(nil, st.Session.Shown)...) // newest first, as queueShown writes it
		p.LTrim(ctx, shownKey, 0, shownSlates-1)
		p.PExpire(ctx, shownKey, s.sessionTTL)
	}
}

// ApplyFeedback is the feature updater's step for one feedback event: it
// reads the user's state and whether eventID was already applied in one
// pipelined round trip, applies recommend.Observe, and writes the changes
// back in one MULTI/EXEC transaction that also records eventID, so a
// redelivered event (Kafka is at-least-once) is reported with applied=false
// and counted once. An empty eventID disables de-duplication.
//
// The read-modify-write is not guarded by WATCH: feedback is keyed by user
// on Kafka, so one partition consumer is the single writer of a user's
// history, stats and session hash. The shown set, which recsvc writes
// concurrently, is only read by Load and never rewritten here.
//
// snap resolves item categories for novelty; items missing from it count as
// familiar and uncategorised. mm reads the event as evidence of the
// session's mode (the zero value: the default model).
func (s *Store) ApplyFeedback(ctx context.Context, snap *catalog.Snapshot, mm intent.ModeModel, eventID string, fb recommend.Feedback) (obs recommend.Observation, applied bool, err error) {
	if fb.UserID == "" {
		return obs, false, errNoUser
	}
	if snap == nil {
		return obs, false, errors.New("features: apply feedback: nil catalog snapshot")
	}
	evKey := s.userKey(fb.UserID, "ev")
	var (
		r    userReads
		seen *redis.FloatCmd
	)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		// With what was shown in the session: the cascade reads skips
		// from it (recommend.Observe).
		r = s.queueReads(ctx, p, fb.UserID, fb.SessionID, true)
		if eventID != "" {
			seen = p.ZScore(ctx, evKey, eventID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return obs, false, fmt.Errorf("features: apply feedback: read: %w", err)
	}
	if seen != nil {
		switch err := seen.Err(); {
		case err == nil:
			return obs, false, nil // already applied
		case !errors.Is(err, redis.Nil):
			return obs, false, fmt.Errorf("features: apply feedback: dedup: %w", err)
		}
	}

	if err := s.readLegacy(ctx, &r, fb.UserID); err != nil {
		return obs, false, fmt.Errorf("features: apply feedback: read legacy history: %w", err)
	}
	st := r.state(fb.UserID, fb.SessionID)
	consumed := st.Consumed.N
	obs = recommend.Observe(&st, snap, fb, s.history, mm)

	sessKey := s.sessionKey(fb.UserID, fb.SessionID)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if obs.Engaged || r.packedAbsent() {
			// The whole history (capped by Observe), packed: this is also
			// where a user's legacy list is migrated, and where a user
			// without one gets an empty packed history next to the stats
			// written below (userReads.needsLegacy).
			p.Set(ctx, s.histKey(fb.UserID), appendPacked(nil, st.History), 0)
			p.Del(ctx, s.legacyHistKey(fb.UserID))
		}
		stats := statsFields(st.Stats)
		if st.Consumed.N != consumed {
			// The filter is the user's own key, written by this single
			// writer only: replacing it whole is as safe as SETBIT.
			p.Set(ctx, s.userKey(fb.UserID, "seen"), st.Consumed.Bits, 0)
			stats = append(stats, fConsumed, strconv.FormatInt(st.Consumed.N, 10))
		}
		p.HSet(ctx, s.userKey(fb.UserID, "stats"), stats...)
		if obs.NewSession {
			p.Del(ctx, sessKey)
		}
		p.HSet(ctx, sessKey, sessionFields(&st.Session)...)
		p.PExpire(ctx, sessKey, s.sessionTTL)
		p.PExpire(ctx, s.shownKey(fb.UserID, fb.SessionID), s.sessionTTL)
		if eventID != "" {
			p.ZAdd(ctx, evKey, redis.Z{Score: float64(fb.TS), Member: eventID})
			p.ZRemRangeByRank(ctx, evKey, 0, -DedupMax-1)
			p.PExpire(ctx, evKey, DedupTTL)
		}
		return nil
	})
	if err != nil {
		return recommend.Observation{}, false, fmt.Errorf("features: apply feedback: write: %w", err)
	}
	return obs, true, nil
}

func statsFields(st recommend.Stats) []any {
	return []any{
		fClicks, strconv.FormatInt(st.Clicks, 10),
		fNovel, strconv.FormatInt(st.NovelClicks, 10),
		fFamiliar, strconv.FormatInt(st.FamiliarClicks, 10),
		fSkips, strconv.FormatInt(st.Skips, 10),
		fSessions, strconv.FormatInt(st.Sessions, 10),
		fLast, strconv.FormatInt(st.LastTS, 10),
		fRho, encodeRho(&st.Rho),
		fModeSess, st.ModeSession,
		fModeEv, strconv.FormatFloat(st.ModeEvidence, 'g', -1, 64),
		fModeAcc, strconv.Itoa(st.ModeAccounted),
		fModeCh, encodeChain(st.ModeChain),
	}
}

// encodeChain packs the chain as four little-endian float64s.
func encodeChain(c intent.ModeChain) string {
	b := make([]byte, 0, 32)
	for _, row := range c {
		for _, v := range row {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	return string(b)
}

// decodeChain unpacks encodeChain; anything malformed (or a record from
// before chains, without the field) is the empty chain, under which the
// session's evidence so far reads as one slate.
func decodeChain(s string) intent.ModeChain {
	var c intent.ModeChain
	if len(s) != 32 {
		return c
	}
	for k := range 4 {
		c[k/2][k%2] = math.Float64frombits(binary.LittleEndian.Uint64([]byte(s[8*k:])))
	}
	if !c.Valid() {
		return intent.ModeChain{}
	}
	return c
}

// encodeRho packs the posterior as little-endian float32s.
func encodeRho(r *intent.RhoPosterior) string {
	b := make([]byte, 0, 4*len(r))
	for _, v := range r {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return string(b)
}

// decodeRho unpacks encodeRho; anything malformed is the flat posterior
// (the user's mode evidence starts again rather than failing a request).
func decodeRho(s string) intent.RhoPosterior {
	var r intent.RhoPosterior
	if len(s) != 4*len(r) {
		return r
	}
	for g := range r {
		r[g] = math.Float32frombits(binary.LittleEndian.Uint32([]byte(s[4*g:])))
	}
	if !r.Valid() {
		return intent.RhoPosterior{}
	}
	return r
}

// consumedCount is the number of items in the user's consumed filter, from
// the statsRead values.
func consumedCount(v []string) int64 {
	n, err := strconv.ParseInt(value(v, sConsumed), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// decodeStats parses the values of the statsRead fields ("" for a field
// the hash lacks, which decodes as absent).
func decodeStats(v []string) recommend.Stats {
	var st recommend.Stats
	st.Rho = decodeRho(value(v, sRho))
	st.ModeSession = value(v, sModeSess)
	st.ModeChain = decodeChain(value(v, sModeCh))
	if f, err := strconv.ParseFloat(value(v, sModeEv), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		st.ModeEvidence = f
	}
	for i, dst := range [...]*int64{sClicks: &st.Clicks, sNovel: &st.NovelClicks, sFamiliar: &st.FamiliarClicks,
		sSkips: &st.Skips, sSessions: &st.Sessions, sLast: &st.LastTS} {
		if n, err := strconv.ParseInt(value(v, i), 10, 64); err == nil {
			*dst = n
		}
	}
	if n, err := strconv.ParseInt(value(v, sModeAcc), 10, 64); err == nil {
		st.ModeAccounted = int(max(n, 0))
	}
	return st
}

func zeroSession(s *recommend.Session) bool {
	return s.Start == 0 && s.Last == 0 && s.Clicks == 0 && s.Skips == 0 && s.NovelClicks == 0 &&
		s.NovelEWMA == 0 && len(s.CategoryClicks) == 0
}

func sessionFields(s *recommend.Session) []any {
	f := make([]any, 0, 18+2*len(s.CategoryClicks))
	f = append(f,
		fID, s.ID,
		fStart, strconv.FormatInt(s.Start, 10),
		fLast, strconv.FormatInt(s.Last, 10),
		fClicks, strconv.FormatInt(s.Clicks, 10),
		fSkips, strconv.FormatInt(s.Skips, 10),
		fNovel, strconv.FormatInt(s.NovelClicks, 10),
		fEWMA, strconv.FormatFloat(s.NovelEWMA, 'g', -1, 64),
	)
	for c, n := range s.CategoryClicks {
		f = append(f, catField+c, strconv.FormatInt(n, 10))
	}
	return f
}

// decodeSession parses the session hash; ID is left for the caller to set.
func decodeSession(h map[string]string) recommend.Session {
	var s recommend.Session
	for k, v := range h {
		if k == fID {
			continue
		}
		switch k {
		case fEWMA:
			if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				s.NovelEWMA = f
			}
			continue
		case fClickNov, fSkipNov:
			// Written by versions before the mode evidence moved to the
			// user's stats (fModeEv); no longer read.
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case fStart:
			s.Start = n
		case fLast:
			s.Last = n
		case fClicks:
			s.Clicks = n
		case fSkips:
			s.Skips = n
		case fNovel:
			s.NovelClicks = n
		default:
			if cat, ok := strings.CutPrefix(k, catField); ok && cat != "" {
				if s.CategoryClicks == nil {
					s.CategoryClicks = make(map[string]int64)
				}
				s.CategoryClicks[cat] = n
			}
		}
	}
	return s
}
