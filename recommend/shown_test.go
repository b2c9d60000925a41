package recommend

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/novarec/novarec/catalog"
)

// TestShownCacheResolvesAsFresh: the session cache resolves a shown list
// exactly as resolveShown does, as the list grows, is cut at its start (in
// a slate too), is replaced, is shared by another session of the same key,
// and across a catalog swap.
func TestShownCacheResolvesAsFresh(t *testing.T) {
	// The second catalog has the same items in reverse order: the same
	// ids at other indexes.
	items := catalog.Sample(500, 7)
	slices.Reverse(items)
	swapped, err := catalog.Build(2, catalog.DefaultDim, items)
	if err != nil {
		t.Fatal(err)
	}
	snaps := []*catalog.Snapshot{sampleSnapshot(t, 500), swapped}
	id := func(k int) string { return snaps[0].Item(int32(k % 500)).ID }
	slate := func(r int) []string {
		ids := []string{id(r), id(3 * r), "unknown", id(7*r + 1)}
		return ShownRecord(fmt.Sprint("r", r), ids)
	}
	var grown []string
	for r := range 40 {
		grown = append(grown, slate(r)...)
	}
	type step struct {
		name  string
		user  string
		snap  int
		shown []string
	}
	steps := []step{
		{"empty", "u", 0, nil},
		{"one slate", "u", 0, grown[:5]},
		{"two slates", "u", 0, grown[:10]},
		{"same again", "u", 0, grown[:10]},
		{"cut in a slate", "u", 0, grown[3:20]},
		{"cut to one entry, grown", "u", 0, grown[19:40]},
		{"long", "u", 0, grown[:200]},
		{"capped", "u", 0, grown[5:200]},
		{"capped, moved on", "u", 0, grown[37:200]},
		{"replaced", "u", 0, slices.Concat(slate(90), slate(91))},
		{"shorter", "u", 0, slate(91)},
		{"another user", "v", 0, grown[:30]},
		{"first user, after", "u", 0, slices.Concat(slate(91), slate(92))},
		{"catalog swap", "u", 1, slices.Concat(slate(91), slate(92), slate(93))},
		{"same entries, all marks", "u", 1, []string{SlateMark, SlateMark}},
	}
	c := NewEngine(Config{Sessions: 4}).shown
	c.min = 0 // every list kept, the short ones of the steps too
	// Then as served: the short lists looked up, the long ones kept.
	for _, s := range []step{{"short", "u", 0, grown[:20]}, {"long", "u", 0, grown[:150]}, {"longer", "u", 0, grown[:160]}, {"short again", "u", 0, grown[150:160]}} {
		s.name = "as served: " + s.name
		steps = append(steps, s)
	}
	for k, s := range steps {
		if k == len(steps)-4 {
			c.min = shownCacheMin
		}
		st := &UserState{UserID: s.user, Session: Session{ID: "s", Shown: s.shown}}
		snap := snaps[s.snap]
		want := resolveShown(nil, snap, s.shown)
		got := c.resolve([]int32{-7}, snap, st)
		if got[0] != -7 || !slices.Equal(got[1:], want) {
			t.Fatalf("%s: %v, want -7 then %v", s.name, got, want)
		}
	}
	// Decisions of one session at once: each resolves as resolveShown.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				shown := grown[(g+k)%50 : 100+k%60]
				st := &UserState{UserID: "w", Session: Session{ID: "s", Shown: shown}}
				if got, want := c.resolve(nil, snaps[0], st), resolveShown(nil, snaps[0], shown); !slices.Equal(got, want) {
					t.Errorf("concurrent: %v, want %v", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
