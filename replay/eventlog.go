package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
)

// MaxLogLine bounds one line of an event log; the API caps bodies at 1 MiB,
// so an impression is far smaller.
const MaxLogLine = 4 << 20

// EventLog is the service's own event log: rec.impressions and rec.feedback
// events as JSON lines, exactly as on the topics (e.g. a dump of both
// topics concatenated). Impressions carry the logged propensities that
// off-policy evaluation needs; feedback drives the replay.
type EventLog struct {
	Impressions []events.Impression
	Feedback    []events.Feedback
	// Lines counts the non-blank lines read; Duplicates the events dropped
	// because their event_id was already read (Kafka delivers at least
	// once); Skipped the lines that were not a valid event, which are
	// left out like the consumer's dead letters, FirstError saying why the
	// first one failed.
	Lines, Duplicates, Skipped int
	FirstError                 error
}

// ReadEventLog reads JSON lines of impressions and feedback from r. A line
// is an impression when it has an "items" field and feedback when it has a
// "type" field; it is then decoded strictly by events.DecodeImpression or
// events.DecodeFeedback, the decoders of the consumers, so the replay reads
// exactly what the trainer would. Invalid lines are counted and skipped.
// name labels errors (e.g. the file name). Events are returned in input
// order.
func ReadEventLog(r io.Reader, name string) (*EventLog, error) {
	l := &EventLog{}
	if err := l.read(r, name, map[string]bool{}); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *EventLog) read(r io.Reader, name string, seen map[string]bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLogLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		l.Lines++
		if err := l.add(b, seen); err != nil {
			l.Skipped++
			if l.FirstError == nil {
				l.FirstError = fmt.Errorf("%s:%d: %w", name, line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("replay: read event log %s after line %d: %w", name, line, err)
	}
	return nil
}

var errNotEvent = errors.New("neither an impression (no \"items\") nor feedback (no \"type\")")

func (l *EventLog) add(b []byte, seen map[string]bool) error {
	var probe struct {
		Items json.RawMessage `json:"items"`
		Type  json.RawMessage `json:"type"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	switch {
	case probe.Items != nil:
		im, err := events.DecodeImpression(b)
		if err != nil {
			return err
		}
		if key := "i:" + im.EventID; seen[key] {
			l.Duplicates++
		} else {
			seen[key] = true
			l.Impressions = append(l.Impressions, im)
		}
	case probe.Type != nil:
		fb, err := events.DecodeFeedback(b)
		if err != nil {
			return err
		}
		if key := "f:" + fb.EventID; seen[key] {
			l.Duplicates++
		} else {
			seen[key] = true
			l.Feedback = append(l.Feedback, fb)
		}
	default:
		return errNotEvent
	}
	return nil
}

// LoadEventLog reads and merges the event logs at paths (e.g. one dump per
// topic), de-duplicating by event id across files.
func LoadEventLog(paths ...string) (*EventLog, error) {
	if len(paths) == 0 {
		return nil, errors.New("replay: no event log given")
	}
	l := &EventLog{}
	seen := map[string]bool{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("replay: event log: %w", err)
		}
		err = l.read(f, p, seen)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(l.Impressions) == 0 && len(l.Feedback) == 0 {
		if l.FirstError != nil {
			return nil, fmt.Errorf("replay: no valid event in %v: %w", paths, l.FirstError)
		}
		return nil, fmt.Errorf("replay: no events in %v", paths)
	}
	return l, nil
}

// Stream turns the log's feedback into a replay stream over items: every
// feedback event in time order, with its session id. Clicks (and ratings ≥
// 3.5) are the consumption events a replay tests on; views, skips and low
// ratings only change the user's state, as in the feature updater. Items
// the log names but the catalog lacks are added without categories, so
// every event can be replayed (such items are never novel, as in Observe).
func (l *EventLog) Stream(items []catalog.Item, name string) (*Stream, error) {
	if len(l.Feedback) == 0 {
		return nil, errors.New("replay: the event log has no feedback to replay")
	}
	s := &Stream{Name: name}
	var index map[string]int32
	s.Items, index = uniqueItems(items)
	item := func(id string) int32 {
		i, ok := index[id]
		if !ok {
			i = int32(len(s.Items))
			index[id] = i
			s.Items = append(s.Items, catalog.Item{ID: id})
		}
		return i
	}
	for i := range l.Impressions {
		for _, it := range l.Impressions[i].Items {
			item(it.ItemID)
		}
	}
	fbs := slices.Clone(l.Feedback)
	slices.SortStableFunc(fbs, func(a, b events.Feedback) int { return cmpTS(a.TS, b.TS) })
	users := map[string]int32{}
	s.Events = make([]Event, 0, len(fbs))
	for _, f := range fbs {
		u, ok := users[f.UserID]
		if !ok {
			u = int32(len(s.Users))
			users[f.UserID] = u
			s.Users = append(s.Users, f.UserID)
		}
		s.Events = append(s.Events, Event{TS: f.TS, User: u, Item: item(f.ItemID), Type: f.Type, Value: f.Value, Session: f.SessionID})
	}
	return s, nil
}
