package features

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

func TestShownWriterBatchesAndAnswersPending(t *testing.T) {
	s, _ := newStore(t, Options{})
	w := NewShownWriter(s, nil)
	ctx := context.Background()
	if err := w.Record(ctx, "u", "s", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(ctx, "u", "s", []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if got := w.Pending("u", "s"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("pending %v before the flush", got)
	}
	if got := w.Pending("u", "other"); got != nil {
		t.Fatalf("pending of another session: %v", got)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Load(ctx, "u", "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Session.Shown) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shown items never written: %v", st.Session.Shown)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := w.Pending("u", "s"); got != nil {
		t.Fatalf("still pending after the write: %v", got)
	}
	// Records made just before shutdown are flushed on the way out.
	if err := w.Record(ctx, "u", "s", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	st, err := s.Load(ctx, "u", "s")
	if err != nil || !slices.Contains(st.Session.Shown, "d") {
		t.Fatalf("final flush lost a record: %v %v", st.Session.Shown, err)
	}
}

func TestShownWriterKeepsRecordsWhileRedisIsDown(t *testing.T) {
	mr, client := redistest.Miniredis(t)
	s := NewStore(client, Options{Prefix: "t:"})
	w := NewShownWriter(s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	down, cancelDown := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelDown()
	mr.Close()
	if err := w.Record(ctx, "u", "s", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if w.flush(down) {
		t.Fatal("flush reported success with Redis down")
	}
	if got := w.Pending("u", "s"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("record lost after a failed write: %v", got)
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	if !w.flush(ctx) {
		t.Fatal("flush failed after Redis came back")
	}
	st, err := s.Load(ctx, "u", "s")
	if err != nil || !slices.Equal(st.Session.Shown, []string{"a"}) {
		t.Fatalf("after recovery: %v %v", st.Session.Shown, err)
	}
	// Too much pending: Record writes synchronously and reports the error.
	w.MaxPending = 0
	mr.Close()
	down2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if err := w.Record(down2, "u", "s", []string{"b"}); err == nil {
		t.Fatal("synchronous fallback did not report the failure")
	}
}

// Flush writes one session's pending records at once (the feedback
// handler's guarantee that a click never overtakes its slate), in order,
// and leaves the other sessions' records to the batch.
func TestShownWriterFlushesOneSession(t *testing.T) {
	s, _ := newStore(t, Options{})
	w := NewShownWriter(s, nil) // Run is not started: only Flush writes
	ctx := context.Background()
	for _, rec := range [][]string{{"", "a", "b"}, {"", "c"}} {
		if err := w.Record(ctx, "u", "s", rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Record(ctx, "v", "s", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx, "u", "s"); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, "u", "s")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "a", "b", "", "c"}; !slices.Equal(st.Session.Shown, want) {
		t.Fatalf("shown %q after Flush, want %q", st.Session.Shown, want)
	}
	if got := w.Pending("u", "s"); got != nil {
		t.Fatalf("still pending after Flush: %v", got)
	}
	if got := w.Pending("v", "s"); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("another session's records: %v", got)
	}
	if err := w.Flush(ctx, "nobody", ""); err != nil {
		t.Fatalf("Flush with nothing pending: %v", err)
	}
}

func TestShownPackedPerSlate(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	key := s.shownKey("u", "s")
	// A list written before packing, an element per entry, newest first.
	legacy := recommend.ShownRecord("r0", []string{"a", "b"})
	for _, e := range legacy {
		if err := client.LPush(ctx, key, e).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Then slates recorded packed, one with a plain mark, one record
	// without a mark (it continues the slate before it).
	var want []string
	want = append(want, legacy...)
	for _, rec := range [][]string{
		recommend.ShownRecord("r1", []string{"c", "d", "e"}),
		recommend.ShownRecord("", []string{"f"}),
		{"g", "h"},
		append(recommend.ShownRecord("r2", []string{"i"}), recommend.ShownRecord("r3", []string{"j", "k"})...),
	} {
		if err := s.RecordShown(ctx, "u", "s", rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec...)
	}
	st, err := s.Load(ctx, "u", "s")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Session.Shown, want) {
		t.Fatalf("Load's shown = %q, want %q", st.Session.Shown, want)
	}
	if got, err := s.Shown(ctx, "u", "s"); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Shown = %q, %v; want %q", got, err, want)
	}
	// Three legacy entries, then an element per record (the last call's
	// two slates are two).
	if n := client.LLen(ctx, key).Val(); n != 3+5 {
		t.Errorf("list of %d elements, want 8", n)
	}

	// Save writes the packed form too.
	saved := recommend.UserState{UserID: "v", Session: recommend.Session{ID: "s", Start: 1, Shown: want}}
	if err := s.Save(ctx, saved); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Load(ctx, "v", "s"); err != nil || !slices.Equal(st.Session.Shown, want) {
		t.Fatalf("saved shown = %q, %v", st.Session.Shown, err)
	}
}

func TestShownCapKeepsNewestEntries(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	// Slates of every size from 1 to 12 items, more than the cap holds:
	// what is read is the newest ShownMax entries, as a list of entries
	// trimmed to ShownMax held, whatever the slates' sizes.
	var all []string
	for r := range 120 {
		ids := make([]string, 1+r%12)
		for k := range ids {
			ids[k] = fmt.Sprintf("i%d-%d", r, k)
		}
		rec := recommend.ShownRecord(fmt.Sprint("r", r), ids)
		all = append(all, rec...)
		if err := s.RecordShown(ctx, "u", "s", rec); err != nil {
			t.Fatal(err)
		}
		st, err := s.Load(ctx, "u", "s")
		if err != nil {
			t.Fatal(err)
		}
		want := all[max(len(all)-ShownMax, 0):]
		if !slices.Equal(st.Session.Shown, want) {
			t.Fatalf("after slate %d: %d entries read, want the newest %d", r, len(st.Session.Shown), len(want))
		}
	}
	if n := client.LLen(ctx, s.shownKey("u", "s")).Val(); n > shownSlates {
		t.Errorf("list of %d elements, cap %d", n, shownSlates)
	}
}

func TestUnpackShownMalformed(t *testing.T) {
	good := packShown(nil, recommend.ShownRecord("r", []string{"ab", "cd"}))[0].([]byte)
	for _, tc := range []struct {
		el   string
		want []string
	}{
		{string(good), []string{"\x00r", "ab", "cd"}},
		{string(good[:len(good)-1]), []string{"\x00r", "ab"}}, // truncated item
		{string(good[:2]), nil},                               // truncated mark
		{"\x01", nil},
		{"\x01\x00\x00", nil}, // an empty id ends it
		{"\x01\x00\x02ab\xff", []string{"ab"}},
		{"", []string{""}}, // a legacy SlateMark
		{"item-1", []string{"item-1"}},
	} {
		var got []string
		unpackShown(tc.el, func(e string) { got = append(got, e) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("unpackShown(%q) = %q, want %q", tc.el, got, tc.want)
		}
	}
}

// FuzzDecodeShown: any stored list decodes without a panic to at most
// ShownMax entries, and slates packed decode to what was recorded.
func FuzzDecodeShown(f *testing.F) {
	f.Add("\x00r1", "a,b,c", "\x01\x00\x02ab")
	f.Add("", "x", "legacy")
	f.Fuzz(func(t *testing.T, mark, items, raw string) {
		var rec []string
		if mark == "" || mark[0] == 0 {
			rec = append(rec, mark)
		}
		for _, id := range strings.Split(items, ",") {
			if id != "" && !recommend.IsSlateMark(id) && id[0] != shownPacked {
				rec = append(rec, id)
			}
		}
		var els []string
		for _, el := range packShown(nil, rec) {
			els = append(els, string(el.([]byte)))
		}
		slices.Reverse(els) // stored newest first
		if got := decodeShown(els); !slices.Equal(got, rec) && len(rec) > 0 {
			t.Fatalf("packed %q decodes to %q", rec, got)
		}
		if got := decodeShown([]string{raw, raw, raw}); len(got) > ShownMax {
			t.Fatalf("%d entries decoded", len(got))
		}
	})
}
