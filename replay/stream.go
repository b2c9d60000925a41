package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/movielens"
	"github.com/novarec/novarec/recommend"
)

// Event is one feedback event of a stream, with user and item resolved to
// dense indexes so the replay loop works on slices instead of maps.
type Event struct {
	// TS is the event time, Unix milliseconds.
	TS int64
	// User indexes Stream.Users, Item indexes Stream.Items.
	User, Item int32
	// Type is a recommend feedback type (recommend.Click, Rating, Skip,
	// View) and Value its value (the rating).
	Type  string
	Value float64
	// Session is the client's session id; empty for the implicit session,
	// which ends after recommend.SessionGap without events.
	Session string
}

// Feedback is the event as recommend.Observe takes it.
func (s *Stream) Feedback(e *Event) recommend.Feedback {
	return recommend.Feedback{
		UserID: s.Users[e.User], SessionID: e.Session, ItemID: s.Items[e.Item].ID,
		Type: e.Type, Value: e.Value, TS: e.TS,
	}
}

// Consumption reports whether the event shows the user consumed the item —
// a rating of any value (the user watched it) or an engaged click — which
// is what population novelty counts.
func (e *Event) Consumption() bool {
	return e.Type == recommend.Rating || e.Type == recommend.Click
}

// Engaged reports whether the event is a positive engagement as the service
// defines it (a click, or a rating ≥ recommend.PositiveRating): the event
// that enters the user's history, and a replay test point.
func (e *Event) Engaged() bool {
	return recommend.Feedback{Type: e.Type, Value: e.Value}.Engaged()
}

// Stream is a time-ordered sequence of feedback events over a catalog, the
// input of a prequential replay, whatever its source (MovieLens ratings or
// the service's own event log).
type Stream struct {
	// Name says where the stream came from, for reports.
	Name string
	// Items is the catalog. Popularity is used only by CatalogStatic
	// replays; the others count consumptions as the replay goes.
	Items []catalog.Item
	// Users are the user ids, indexed by Event.User.
	Users []string
	// Events are sorted by TS (ties keep the source's order).
	Events []Event
}

// Len is the number of events.
func (s *Stream) Len() int { return len(s.Events) }

// Head returns a stream of the first n events (all when n ≤ 0 or beyond
// the end), sharing the catalog: for quick trials and tests, never for a
// reported result.
func (s *Stream) Head(n int) *Stream {
	if n <= 0 || n >= len(s.Events) {
		return s
	}
	c := *s
	c.Events = s.Events[:n]
	return &c
}

// FromMovieLens turns a loaded MovieLens dataset into a stream: every rating
// is a feedback event of type rating (so ratings ≥ 3.5 are engagements,
// exactly as the service's feature updater treats an imported rating), in
// the dataset's time order; genres are categories. MovieLens has no session
// ids, so sessions are implicit (30-minute gaps).
func FromMovieLens(ds *movielens.Dataset, name string) (*Stream, error) {
	if ds == nil || len(ds.Items) == 0 {
		return nil, errors.New("replay: MovieLens dataset has no movies")
	}
	if len(ds.Ratings) == 0 {
		return nil, errors.New("replay: MovieLens dataset has no ratings to replay")
	}
	s := &Stream{Name: name, Events: make([]Event, 0, len(ds.Ratings))}
	var items map[string]int32
	s.Items, items = uniqueItems(ds.Items)
	users := map[string]int32{}
	for _, r := range ds.Ratings {
		it, ok := items[r.ItemID]
		if !ok {
			return nil, fmt.Errorf("replay: user %s rated movie %s, which the movies file does not list", r.UserID, r.ItemID)
		}
		u, ok := users[r.UserID]
		if !ok {
			u = int32(len(s.Users))
			users[r.UserID] = u
			s.Users = append(s.Users, r.UserID)
		}
		s.Events = append(s.Events, Event{TS: r.TS, User: u, Item: it, Type: recommend.Rating, Value: r.Value})
	}
	if !slices.IsSortedFunc(s.Events, func(a, b Event) int { return cmpTS(a.TS, b.TS) }) {
		slices.SortStableFunc(s.Events, func(a, b Event) int { return cmpTS(a.TS, b.TS) })
	}
	return s, nil
}

// uniqueItems copies items keeping one entry per id, a later duplicate
// replacing an earlier one in place (as catalog.Build does), and indexes
// them by id.
func uniqueItems(items []catalog.Item) ([]catalog.Item, map[string]int32) {
	out := make([]catalog.Item, 0, len(items))
	index := make(map[string]int32, len(items))
	for _, it := range items {
		if i, ok := index[it.ID]; ok {
			out[i] = it
			continue
		}
		index[it.ID] = int32(len(out))
		out = append(out, it)
	}
	return out, index
}

func cmpTS(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LoadMovieLens loads a MovieLens directory in any layout movielens.LoadDir
// knows (ml-latest(-small), ML-1M ratings.dat/movies.dat, ML-100K
// u.data/u.item) as a stream.
func LoadMovieLens(dir string) (*Stream, error) {
	ds, err := movielens.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("replay: load MovieLens: %w", err)
	}
	s, err := FromMovieLens(ds, "movielens:"+dir)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return s, nil
}

// ReadCatalogJSON reads catalog items as the service takes them: the body
// of PUT /v1/items ({"items":[...]}) or a bare JSON array of items. Every
// item is validated (catalog.Item.Validate at catalog.DefaultDim), since a
// replay over a malformed catalog would mislead.
func ReadCatalogJSON(r io.Reader) ([]catalog.Item, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("replay: read catalog: %w", err)
	}
	b = bytes.TrimSpace(b)
	var items []catalog.Item
	if len(b) > 0 && b[0] == '[' {
		err = json.Unmarshal(b, &items)
	} else {
		var body struct {
			Items []catalog.Item `json:"items"`
		}
		err = json.Unmarshal(b, &body)
		items = body.Items
	}
	if err != nil {
		return nil, fmt.Errorf("replay: catalog JSON: %w", err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("replay: catalog JSON: %w", catalog.ErrNoItems)
	}
	for i := range items {
		if err := items[i].Validate(catalog.DefaultDim); err != nil {
			return nil, fmt.Errorf("replay: catalog item %d: %w", i, err)
		}
	}
	return items, nil
}

// LoadCatalog reads the catalog for an event-log replay from path: a
// MovieLens directory (its movies) or a JSON file (see ReadCatalogJSON).
func LoadCatalog(path string) ([]catalog.Item, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("replay: catalog: %w", err)
	}
	if st.IsDir() {
		ds, err := movielens.LoadDir(path)
		if err != nil {
			return nil, fmt.Errorf("replay: catalog: %w", err)
		}
		return ds.Items, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: catalog: %w", err)
	}
	defer f.Close()
	items, err := ReadCatalogJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return items, nil
}
