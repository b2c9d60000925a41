package trainer

import (
	"slices"
	"strings"

	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// expUser is what the A/B aggregates need to remember of one user: the
// session count, and the per-user counts whose squares and cross products
// the report's delta-method and CUPED statistics sum (each increment of a
// count x adds 2x+1 to Σx², and the other factor to a cross product).
type expUser struct {
	Sessions int64
	Session  string
	Last     int64
	// Pre is the pre-period covariate (history length at first exposure);
	// Impressions, Clicked (impressions with a click), Clicks and Novel
	// (novel clicks) count the user's events in the experiment.
	Pre                                 float64
	Impressions, Clicked, Clicks, Novel int64
	// noted: the user is in the Core's change log (not stored).
	noted bool
}

// expAgg maintains the variant's A/B aggregates (experiment.Aggregates)
// from the events the trainer applies, so they inherit its de-duplication
// and checkpointing: each impression and click is counted exactly once.
type expAgg struct {
	Aggregates experiment.Aggregates
	Users      map[string]*expUser
}

// impression counts a served slate: users, sessions (a new session id or a
// gap of SessionGap starts one), impressions and the slate's diversity div
// (when divOK: the catalog knew its items). It returns the user's counts.
func (a *expAgg) impression(ls *recommend.LoggedSlate, div float64, divOK bool, gap int64) *expUser {
	if a.Users == nil {
		a.Users = map[string]*expUser{}
	}
	ag := &a.Aggregates
	u := a.Users[ls.UserID]
	switch {
	case u == nil:
		// The ids are copied: a decoded event's ids share one allocation
		// (events' decoders), which a user's entry, kept for the
		// experiment's life, would otherwise hold on to.
		u = &expUser{Sessions: 1, Session: strings.Clone(ls.SessionID), Last: ls.TS, Pre: intent.HistoryLength(ls.State)}
		a.Users[strings.Clone(ls.UserID)] = u
		ag.Users++
		ag.Sessions++
		ag.SessionsSumSq++
		ag.PreSum += u.Pre
		ag.PreSumSq += u.Pre * u.Pre
	case ls.SessionID != u.Session || ls.TS-u.Last > gap:
		// Σx² grows by (x+1)² − x² = 2x+1.
		ag.SessionsSumSq += float64(2*u.Sessions + 1)
		u.Sessions++
		ag.Sessions++
		if u.Sessions == 2 {
			ag.ReturningUsers++
		}
		u.Session, u.Last = strings.Clone(ls.SessionID), max(u.Last, ls.TS)
	default:
		u.Last = max(u.Last, ls.TS)
	}
	ag.Impressions++
	ag.UserImpressionsSumSq += float64(2*u.Impressions + 1)
	ag.UserClickedImpressionsSum += float64(u.Clicked)
	u.Impressions++
	if divOK {
		ag.ILDSum += div
		ag.ILDSumSq += div * div
		ag.ILDN++
	}
	return u
}

// click counts an applied click of user on item of a slate counted by
// impression; first says it is the slate's first click. It returns the
// user's counts.
func (a *expAgg) click(user string, it *recommend.LoggedItem, first bool) *expUser {
	ag := &a.Aggregates
	u := a.Users[user]
	if u == nil { // cannot happen: the slate's impression made the user
		if a.Users == nil {
			a.Users = map[string]*expUser{}
		}
		u = &expUser{}
		a.Users[user] = u
	}
	ag.Clicks++
	ag.UserClicksSumSq += float64(2*u.Clicks + 1)
	ag.PreClicksSum += u.Pre
	ag.UserNovelClicksSum += float64(u.Novel)
	u.Clicks++
	if first {
		ag.ClickedImpressions++
		ag.UserClickedSumSq += float64(2*u.Clicked + 1)
		ag.UserClickedImpressionsSum += float64(u.Impressions)
		u.Clicked++
	}
	if it.Novelty == 1 {
		ag.NovelClicks++
		ag.UserNovelSumSq += float64(2*u.Novel + 1)
		ag.UserNovelClicksSum += float64(u.Clicks)
		u.Novel++
	}
	return u
}

// expWire is expAgg in the checkpoint: users sorted by id, so equal states
// encode to equal bytes (gob writes maps in random order).
type expWire struct {
	Aggregates experiment.Aggregates
	UserIDs    []string
	Users      []expUser
}

func (a *expAgg) wire() expWire {
	w := expWire{Aggregates: a.Aggregates, UserIDs: make([]string, 0, len(a.Users))}
	for id := range a.Users {
		w.UserIDs = append(w.UserIDs, id)
	}
	slices.Sort(w.UserIDs)
	w.Users = make([]expUser, len(w.UserIDs))
	for i, id := range w.UserIDs {
		w.Users[i] = *a.Users[id]
		w.Users[i].noted = false
	}
	return w
}

func (w expWire) agg() expAgg {
	a := expAgg{Aggregates: w.Aggregates, Users: make(map[string]*expUser, len(w.UserIDs))}
	for i, id := range w.UserIDs {
		if i < len(w.Users) {
			u := w.Users[i]
			a.Users[id] = &u
		}
	}
	return a
}
