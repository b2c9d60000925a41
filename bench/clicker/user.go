package main

import (
	"hash/fnv"
	"math/rand/v2"
)

// Behaviour is the click model every simulated user shares: how far down a
// slate they look and how likely they are to click what they look at. It is
// the clicker's own model, written from the client's side and independent of
// the service's simulator (package sim), so that the service is not judged
// only by the model it was built against.
type Behaviour struct {
	// ClickRate is the click probability of an item that fully appeals.
	ClickRate float64
	// Continue is the probability of examining the next position after an
	// examined item was not clicked, ContinueClick after a click: a
	// position-biased cascade (Craswell et al. 2008, with more than one click).
	Continue, ContinueClick float64
	// MaxClicks ends the examination of a slate after this many clicks.
	MaxClicks int
	// OffIntent is the appeal of an item of the other intent (a familiar
	// item to an exploring user, a novel one to an exploiting user), times
	// the user's taste for it.
	OffIntent float64
	// SeenDiscount scales an exploring user's appeal of a novel item shown
	// to them before and not clicked: explorers want what they have not
	// seen.
	SeenDiscount float64
	// LikedShare is the share of categories a user likes (taste 0.6–1);
	// the others get a taste of at most 0.2.
	LikedShare float64
}

// DefaultBehaviour is the model the clicker runs with unless flags say
// otherwise.
func DefaultBehaviour() Behaviour {
	return Behaviour{ClickRate: 0.5, Continue: 0.85, ContinueClick: 0.5, MaxClicks: 3, OffIntent: 0.1, SeenDiscount: 0.3, LikedShare: 0.25}
}

// Item is what the client knows of an item: its id and categories, read
// from the service's item route (or from MovieLens' movies file).
type Item struct {
	ID         string
	Categories []string
}

// User is one simulated user: whether they are an explorer, how often their
// sessions explore, their latent taste, and what they have clicked and been
// shown, which is all the client-side notion of novelty rests on.
type User struct {
	ID       string
	Explorer bool
	// Rho is the probability that a session of this user explores.
	Rho float64
	b   Behaviour
	// tasteSeed makes the taste of a category a function of (seed, user,
	// category), so it does not depend on the order categories are met.
	tasteSeed uint64
	// tastes, when set (from MovieLens ratings), override the hashed taste
	// for the categories it holds.
	tastes      map[string]float64
	clicked     map[string]bool
	clickedCats map[string]bool
	shown       map[string]bool
}

// NewUser returns a user with no history.
func NewUser(id string, explorer bool, rho float64, b Behaviour, tasteSeed uint64, tastes map[string]float64) *User {
	return &User{ID: id, Explorer: explorer, Rho: rho, b: b, tasteSeed: tasteSeed, tastes: tastes,
		clicked: map[string]bool{}, clickedCats: map[string]bool{}, shown: map[string]bool{}}
}

// Taste is the user's latent liking of a category, in [0, 1].
func (u *User) Taste(category string) float64 {
	if t, ok := u.tastes[category]; ok {
		return t
	}
	h := fnv.New64a()
	var seed [8]byte
	for i := range seed {
		seed[i] = byte(u.tasteSeed >> (8 * i))
	}
	h.Write(seed[:])
	h.Write([]byte(category))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x7a57e))
	if r.Float64() < u.b.LikedShare {
		return 0.6 + 0.4*r.Float64()
	}
	return 0.2 * r.Float64()
}

// taste is the user's liking of an item: that of its best category.
func (u *User) taste(it Item) float64 {
	best := 0.0
	for _, c := range it.Categories {
		best = max(best, u.Taste(c))
	}
	return best
}

// Novel reports whether the item is new to the user as the client sees it:
// not clicked before and none of its categories among those of the items
// the user clicked. A user with no clicks finds everything novel.
func (u *User) Novel(it Item) bool {
	if u.clicked[it.ID] {
		return false
	}
	for _, c := range it.Categories {
		if u.clickedCats[c] {
			return false
		}
	}
	return true
}

// familiarity is the share of the item's categories the user has clicked.
func (u *User) familiarity(it Item) float64 {
	if len(it.Categories) == 0 {
		return 0
	}
	n := 0
	for _, c := range it.Categories {
		if u.clickedCats[c] {
			n++
		}
	}
	return float64(n) / float64(len(it.Categories))
}

// Appeal is how much the item draws the user in the given mode, in [0, 1]:
// exploring, novel items they have not been shown before, by taste;
// exploiting, items like those they clicked (a user with no clicks yet goes
// by taste alone, to what they already like elsewhere).
func (u *User) Appeal(it Item, explore bool) float64 {
	t := u.taste(it)
	novel := u.Novel(it)
	switch {
	case explore && novel:
		a := 0.4 + 0.6*t
		if u.shown[it.ID] {
			a *= u.b.SeenDiscount
		}
		return a
	case explore:
		return u.b.OffIntent * t
	case len(u.clickedCats) == 0:
		return t * (0.4 + 0.6*t)
	case novel:
		return u.b.OffIntent * t
	default:
		return u.familiarity(it) * (0.4 + 0.6*t)
	}
}

// Browse examines the slate top down as a cascade and returns the positions
// clicked, in order. It changes nothing: Record does.
func (u *User) Browse(rng *rand.Rand, slate []Item, explore bool) []int {
	var clicks []int
	for p, it := range slate {
		if rng.Float64() < u.b.ClickRate*u.Appeal(it, explore) {
			clicks = append(clicks, p)
			if len(clicks) >= u.b.MaxClicks || rng.Float64() >= u.b.ContinueClick {
				break
			}
			continue
		}
		if rng.Float64() >= u.b.Continue {
			break
		}
	}
	return clicks
}

// Record remembers a served slate and the clicks on it.
func (u *User) Record(slate []Item, clicks []int) {
	for _, p := range clicks {
		u.clicked[slate[p].ID] = true
		for _, c := range slate[p].Categories {
			u.clickedCats[c] = true
		}
	}
	for _, it := range slate {
		u.shown[it.ID] = true
	}
}
