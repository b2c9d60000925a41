package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Group sums up the slates of one population (explorers or loyalists).
type Group struct {
	Users, Slates  int
	ClicksPerUser  float64 `json:"clicks_per_user"`
	ClicksPerSlate float64 `json:"clicks_per_slate"`
	// NovelShare is the share of served items novel from the user's view,
	// overall and in exploring and exploiting sessions; ServiceNovelShare
	// the share the service flagged novel.
	NovelShare        float64 `json:"novel_share"`
	NovelShareExplore float64 `json:"novel_share_explore"`
	NovelShareExploit float64 `json:"novel_share_exploit"`
	ServiceNovelShare float64 `json:"service_novel_share"`
	// FlaggedClicksExploit is the share of exploiting sessions' clicks
	// that went to items the service flagged novel: what reads a loyal
	// session as exploring where the service's idea of novelty and the
	// user's part.
	FlaggedClicksExploit float64 `json:"flagged_clicks_exploit"`
	// NoNovelExplore is the share of exploring sessions' slates (after
	// their first) without a single item novel to the user.
	NoNovelExplore float64 `json:"no_novel_explore"`
	// SessionPropensity is the mean reported session propensity, overall
	// and in exploring and exploiting sessions.
	SessionPropensity        float64 `json:"session_propensity"`
	SessionPropensityExplore float64 `json:"session_propensity_explore"`
	SessionPropensityExploit float64 `json:"session_propensity_exploit"`
	// ExploitBySlate is the mean session propensity of exploiting
	// sessions by slate index: it should fall as a session's evidence
	// comes in; a rise is a drift the evidence does not hold back.
	ExploitBySlate []float64 `json:"exploit_by_slate"`
	// UserPropensitySecond is the mean user propensity on the second
	// session's first slate (after one closed session), UserPropensityLast
	// on the users' last slate.
	UserPropensitySecond float64 `json:"user_propensity_second"`
	UserPropensityLast   float64 `json:"user_propensity_last"`
	// AfterFirstClick is the mean session propensity on the slate that
	// follows a user's first click, in the same session.
	AfterFirstClick float64 `json:"after_first_click"`
}

// Summary is one server's result.
type Summary struct {
	Server   string   `json:"server"`
	Variants []string `json:"variants"`
	Models   []string `json:"models"`
	Degraded int      `json:"degraded"`
	// Disagree is the share of slates with an item flagged novel that
	// the user had already made familiar (SlateRecord.Disagree).
	Disagree  float64 `json:"novel_disagree"`
	Explorers Group   `json:"explorers"`
	Loyalists Group   `json:"loyalists"`
	// AUCGroup is the AUC of the session propensity for telling an
	// explorer's slate from a loyalist's; AUCModeFirst and AUCModeLater
	// for telling an exploring session from an exploiting one, on a
	// session's first slate and on its later ones.
	AUCGroup     float64 `json:"auc_group"`
	AUCModeFirst float64 `json:"auc_mode_first"`
	AUCModeLater float64 `json:"auc_mode_later"`
	// Cold users: the service's novel share and session propensity on a
	// user's first slate, and the session propensity after the first
	// click in an exploring and in an exploiting session.
	ColdServiceNovel       float64 `json:"cold_service_novel"`
	ColdPropensity         float64 `json:"cold_propensity"`
	AfterFirstClickExplore float64 `json:"after_first_click_explore"`
	AfterFirstClickExploit float64 `json:"after_first_click_exploit"`
	ClicksSent             int     `json:"clicks_sent"`
	ClicksRecorded         int     `json:"clicks_recorded"`
	// Retried counts requests sent again after a 503 or 429.
	Retried int64 `json:"retried"`
}

// mean accumulates an average; NaN when empty.
type mean struct{ sum, n float64 }

func (m *mean) add(v float64) { m.sum += v; m.n++ }
func (m *mean) addN(v, n float64) {
	m.sum += v
	m.n += n
}
func (m mean) get() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.sum / m.n
}

// Summarise computes a server's summary from its slates.
func Summarise(server string, recs []SlateRecord) Summary {
	s := Summary{Server: server}
	s.Explorers = group(recs, true)
	s.Loyalists = group(recs, false)
	var byGroup [2][]float64
	var first, later [2][]float64
	var coldNovel, coldProp, afterExplore, afterExploit, disagree mean
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	for i, r := range recs {
		if !slices.Contains(s.Variants, r.Variant) {
			s.Variants = append(s.Variants, r.Variant)
		}
		if !slices.Contains(s.Models, r.ModelVersion) {
			s.Models = append(s.Models, r.ModelVersion)
		}
		if r.Degraded {
			s.Degraded++
		}
		disagree.add(b2f(r.Disagree > 0))
		byGroup[b(r.Explorer)] = append(byGroup[b(r.Explorer)], r.SessionPropensity)
		if r.Slate == 0 {
			first[b(r.Explore)] = append(first[b(r.Explore)], r.SessionPropensity)
		} else {
			later[b(r.Explore)] = append(later[b(r.Explore)], r.SessionPropensity)
		}
		if r.Session == 0 && r.Slate == 0 && r.Shown > 0 {
			coldNovel.add(float64(r.ServiceNovel) / float64(r.Shown))
			coldProp.add(r.SessionPropensity)
		}
		if afterFirstClick(recs, i) {
			if r.Explore {
				afterExplore.add(r.SessionPropensity)
			} else {
				afterExploit.add(r.SessionPropensity)
			}
		}
	}
	s.AUCGroup = AUC(byGroup[1], byGroup[0])
	s.AUCModeFirst = AUC(first[1], first[0])
	s.AUCModeLater = AUC(later[1], later[0])
	s.ColdServiceNovel, s.ColdPropensity, s.Disagree = coldNovel.get(), coldProp.get(), disagree.get()
	s.AfterFirstClickExplore, s.AfterFirstClickExploit = afterExplore.get(), afterExploit.get()
	return s
}

// afterFirstClick reports whether recs[i] is the slate right after the one
// with the user's first click, in the same session.
func afterFirstClick(recs []SlateRecord, i int) bool {
	if i == 0 {
		return false
	}
	r, prev := recs[i], recs[i-1]
	return prev.User == r.User && prev.Session == r.Session && prev.ClicksBefore == 0 && prev.Clicks > 0
}

func group(recs []SlateRecord, explorers bool) Group {
	var g Group
	users := map[int]bool{}
	var clicks, novel, novelExplore, novelExploit, serviceNovel, noNovel, prop, propExplore, propExploit, second, last, after, flagged mean
	var bySlate []mean
	for i, r := range recs {
		if r.Explorer != explorers {
			continue
		}
		users[r.User] = true
		g.Slates++
		clicks.add(float64(r.Clicks))
		shown := float64(r.Shown)
		novel.addN(float64(r.ClientNovel), shown)
		serviceNovel.addN(float64(r.ServiceNovel), shown)
		prop.add(r.SessionPropensity)
		if r.Explore {
			novelExplore.addN(float64(r.ClientNovel), shown)
			propExplore.add(r.SessionPropensity)
			if r.Slate > 0 {
				noNovel.add(b2f(r.ClientNovel == 0))
			}
		} else {
			novelExploit.addN(float64(r.ClientNovel), shown)
			propExploit.add(r.SessionPropensity)
			flagged.addN(float64(r.ClicksFlagged), float64(r.Clicks))
			for len(bySlate) <= r.Slate {
				bySlate = append(bySlate, mean{})
			}
			bySlate[r.Slate].add(r.SessionPropensity)
		}
		if r.Session == 1 && r.Slate == 0 {
			second.add(r.UserProp)
		}
		if i == len(recs)-1 || recs[i+1].User != r.User {
			last.add(r.UserProp)
		}
		if afterFirstClick(recs, i) {
			after.add(r.SessionPropensity)
		}
	}
	g.Users = len(users)
	g.ClicksPerSlate = clicks.get()
	if g.Users > 0 {
		g.ClicksPerUser = clicks.sum / float64(g.Users)
	}
	g.NovelShare, g.NovelShareExplore, g.NovelShareExploit = novel.get(), novelExplore.get(), novelExploit.get()
	g.ServiceNovelShare, g.NoNovelExplore, g.FlaggedClicksExploit = serviceNovel.get(), noNovel.get(), flagged.get()
	g.SessionPropensity, g.SessionPropensityExplore, g.SessionPropensityExploit = prop.get(), propExplore.get(), propExploit.get()
	g.UserPropensitySecond, g.UserPropensityLast, g.AfterFirstClick = second.get(), last.get(), after.get()
	for _, m := range bySlate {
		g.ExploitBySlate = append(g.ExploitBySlate, m.get())
	}
	return g
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// AUC is the probability that a score of pos exceeds one of neg, ties
// counting half (the Mann–Whitney statistic); NaN when either is empty.
func AUC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	n := slices.Clone(neg)
	slices.Sort(n)
	var sum float64
	for _, p := range pos {
		lo, _ := slices.BinarySearch(n, p) // first ≥ p
		hi := lo
		for hi < len(n) && n[hi] == p {
			hi++
		}
		sum += float64(lo) + 0.5*float64(hi-lo)
	}
	return sum / float64(len(pos)*len(n))
}

// Print writes the summaries side by side, one column per server.
func Print(w io.Writer, sums []Summary) {
	row := func(name string, f func(Summary) string) {
		fmt.Fprintf(w, "%-44s", name)
		for _, s := range sums {
			fmt.Fprintf(w, " %22s", f(s))
		}
		fmt.Fprintln(w)
	}
	pair := func(f func(Group) float64, format string) func(Summary) string {
		return func(s Summary) string {
			return fmt.Sprintf(format+" / "+format, f(s.Explorers), f(s.Loyalists))
		}
	}
	one := func(f func(Summary) float64) func(Summary) string {
		return func(s Summary) string { return fmt.Sprintf("%.3f", f(s)) }
	}
	row("server", func(s Summary) string { return s.Server })
	row("variants", func(s Summary) string { return fmt.Sprint(s.Variants) })
	row("model versions seen", func(s Summary) string { return fmt.Sprint(len(s.Models)) })
	row("users (explorers / loyalists)", func(s Summary) string { return fmt.Sprintf("%d / %d", s.Explorers.Users, s.Loyalists.Users) })
	row("clicks per user", pair(func(g Group) float64 { return g.ClicksPerUser }, "%.2f"))
	row("clicks per slate", pair(func(g Group) float64 { return g.ClicksPerSlate }, "%.3f"))
	row("novel share served (client view)", pair(func(g Group) float64 { return g.NovelShare }, "%.3f"))
	row("  in exploring sessions", pair(func(g Group) float64 { return g.NovelShareExplore }, "%.3f"))
	row("  in exploiting sessions", pair(func(g Group) float64 { return g.NovelShareExploit }, "%.3f"))
	row("exploring slates without a novel item", pair(func(g Group) float64 { return g.NoNovelExplore }, "%.3f"))
	row("novel share served (service's flag)", pair(func(g Group) float64 { return g.ServiceNovelShare }, "%.3f"))
	row("exploiting sessions' clicks on items flagged novel", pair(func(g Group) float64 { return g.FlaggedClicksExploit }, "%.3f"))
	row("session propensity, mean", pair(func(g Group) float64 { return g.SessionPropensity }, "%.3f"))
	row("  in exploring sessions", pair(func(g Group) float64 { return g.SessionPropensityExplore }, "%.3f"))
	row("  in exploiting sessions", pair(func(g Group) float64 { return g.SessionPropensityExploit }, "%.3f"))
	row("  in exploiting sessions, by slate", func(s Summary) string {
		return bySlateText(s.Explorers.ExploitBySlate) + " / " + bySlateText(s.Loyalists.ExploitBySlate)
	})
	row("user propensity, 2nd session / last slate", func(s Summary) string {
		return fmt.Sprintf("%.2f %.2f / %.2f %.2f", s.Explorers.UserPropensitySecond, s.Explorers.UserPropensityLast,
			s.Loyalists.UserPropensitySecond, s.Loyalists.UserPropensityLast)
	})
	row("AUC session propensity, explorer vs loyalist", one(func(s Summary) float64 { return s.AUCGroup }))
	row("AUC session propensity, mode, 1st slate", one(func(s Summary) float64 { return s.AUCModeFirst }))
	row("AUC session propensity, mode, later", one(func(s Summary) float64 { return s.AUCModeLater }))
	row("cold: 1st slate novel (service's flag)", one(func(s Summary) float64 { return s.ColdServiceNovel }))
	row("cold: 1st slate session propensity", one(func(s Summary) float64 { return s.ColdPropensity }))
	row("after 1st click: explore / exploit session", func(s Summary) string {
		return fmt.Sprintf("%.3f / %.3f", s.AfterFirstClickExplore, s.AfterFirstClickExploit)
	})
	row("clicks sent / recorded", func(s Summary) string { return fmt.Sprintf("%d / %d", s.ClicksSent, s.ClicksRecorded) })
	row("slates flagging novel a familiar item", one(func(s Summary) float64 { return s.Disagree }))
	row("degraded slates / requests retried", func(s Summary) string { return fmt.Sprintf("%d / %d", s.Degraded, s.Retried) })
}

// bySlateText formats per-slate means compactly ("0.25 0.24 …").
func bySlateText(v []float64) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.2f", x)
	}
	return b.String()
}
