package features

import (
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// pipelinedState reads a user's state with the six commands of newReads,
// one pipeline (as ApplyFeedback does), for comparison with Load's script.
func pipelinedState(t *testing.T, s *Store, userID, sessionID string) recommend.UserState {
	t.Helper()
	var r userReads
	_, err := s.rdb.Pipelined(t.Context(), func(p redis.Pipeliner) error {
		r = s.queueReads(t.Context(), p, userID, sessionID, true)
		return nil
	})
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	raw := r.raw()
	return raw.state(userID, sessionID)
}

// Load's script reads what the six commands read: the same state for a
// packed history, a legacy list, an empty packed value, binary filters, a
// session with categories, shown slates, a missing session and a user
// Redis does not know.
func TestLoadScriptReadsWhatTheCommandsRead(t *testing.T) {
	t.Parallel()
	client, prefix := redistest.New(t)
	s := NewStore(client, Options{Prefix: prefix})
	ctx := t.Context()
	full := recommend.UserState{
		UserID: "full",
		History: []recommend.Consumed{{ItemID: "a:b*1", TS: 30, Novel: true}, {ItemID: "12:x", TS: 20},
			{ItemID: strings.Repeat("z", 300), TS: 10}},
		Stats: recommend.Stats{Clicks: 7, NovelClicks: 3, FamiliarClicks: 4, Skips: 2, Sessions: 5, LastTS: 99,
			ModeSession: "s1", ModeEvidence: 0.25, ModeAccounted: 3},
		Session: recommend.Session{ID: "s1", Start: 10, Last: 20, Clicks: 2, Skips: 1, NovelClicks: 1, NovelEWMA: 0.5,
			CategoryClicks: map[string]int64{"drama": 2, "war*": 1},
			Shown:          append(recommend.ShownRecord("r1", []string{"x", "y"}), recommend.ShownRecord("r2", []string{"z"})...)},
	}
	full.Consumed.Add(0x9e3779b97f4a7c15)
	full.Consumed.Add(7)
	if err := s.Save(ctx, full); err != nil {
		t.Fatal(err)
	}
	// A history as versions before packed ones wrote it.
	for _, e := range []string{"30|1|old-a", "20|0|old:b", "bad"} {
		if err := client.RPush(ctx, s.legacyHistKey("legacy"), e).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// An empty packed value: the legacy list is read, as by the commands.
	if err := client.Set(ctx, s.histKey("empty"), "", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.RPush(ctx, s.legacyHistKey("empty"), "5|0|e").Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, sess string }{
		{"full", "s1"}, {"full", "other"}, {"full", ""}, {"legacy", "s"}, {"empty", "s"}, {"nobody", "s"},
	} {
		want := pipelinedState(t, s, tc.user, tc.sess)
		got, err := s.Load(ctx, tc.user, tc.sess)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s in %q: script read\n %+v\nthe commands read\n %+v", tc.user, tc.sess, got, want)
		}
	}
	if st, _ := s.Load(ctx, "full", "s1"); len(st.History) != 3 || len(st.Session.Shown) == 0 || st.Consumed.N == 0 {
		t.Errorf("full state loaded as %+v", st)
	}
}

// A Redis without the script (restarted, or failed over) gets it again:
// Load falls back to EVAL, batched or not.
func TestLoadAfterScriptFlush(t *testing.T) {
	t.Parallel()
	batched, plain, client := batchedStore(t, nil)
	saveUsers(t, plain, 1)
	want := pipelinedState(t, plain, "u0", "su0")
	for _, s := range []*Store{batched, plain} {
		if err := client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(t.Context(), "u0", "su0")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after SCRIPT FLUSH:\n got %+v\nwant %+v", got, want)
		}
	}
}

// The reply's parser refuses what the script never writes.
func TestSplitLoadRefusesMalformedReplies(t *testing.T) {
	t.Parallel()
	ok := "1*5:hello0*0*2*1:a1:b0*1*0:"
	parts, err := splitLoad(ok)
	if err != nil || parts[0][0] != "hello" || len(parts[3]) != 2 || parts[5][0] != "" || parts[1] != nil {
		t.Fatalf("splitLoad(%q) = %q, %v", ok, parts, err)
	}
	for _, b := range []string{"", "1*5:hello", "1*6:hello0*0*0*0*0*", "0*0*0*0*0*0*x", "0*0*0*0*0*", "a*0*0*0*0*0*",
		"0*0*0*0*0*99999999999*", "0*0*0*0*0*1*:"} {
		if _, err := splitLoad(b); err == nil {
			t.Errorf("splitLoad(%q) accepted", b)
		}
	}
}
