package features

import (
	"testing"

	"github.com/novarec/novarec/recommend"
)

// A read asks for every field of the stats hash that the writers write
// (HMGET of statsRead): a field added to statsFields but not to statsRead
// would be written and never read.
func TestStatsReadCoversWhatIsWritten(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	for _, f := range statsRead {
		read[f] = true
	}
	written := append(statsFields(recommend.Stats{}), fConsumed, "0")
	for i := 0; i < len(written); i += 2 {
		if f := written[i].(string); !read[f] {
			t.Errorf("stats field %q is written but not read", f)
		}
	}
	if len(read) != len(written)/2 {
		t.Errorf("%d fields read, %d written", len(read), len(written)/2)
	}
}

// readKeys names the keys that the key builders name.
func TestReadKeysAreTheStoresKeys(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "p:"} {
		s := NewStore(nil, Options{Prefix: prefix})
		for _, sess := range []string{"", "s1", "a:b"} {
			got := s.readKeys("u-1", sess)
			want := readKeys{s.histKey("u-1"), s.legacyHistKey("u-1"), s.userKey("u-1", "seen"), s.userKey("u-1", "stats"),
				s.sessionKey("u-1", sess), s.shownKey("u-1", sess)}
			if got != want {
				t.Errorf("prefix %q session %q: keys %+v, want %+v", prefix, sess, got, want)
			}
		}
	}
}
